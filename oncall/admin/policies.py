"""An escalation policy's steps on its admin page (the policy itself is incidents'; its
steps are the on-call app's, added through incidents/extensions.py). Each step is a row:
its order, its delay, and whom it pages, picked from users, schedules and teams."""

from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db import transaction

from incidents.models import Team
from oncall.models import EscalationStep, EscalationTarget, Schedule
from oncall.validation import MAX_STEP_DELAY_MINUTES

User = get_user_model()
TARGET_KINDS = EscalationTarget.KINDS


class EscalationStepForm(forms.ModelForm):
    users = forms.ModelMultipleChoiceField(
        User.objects.filter(is_active=True).order_by("username"), required=False)
    schedules = forms.ModelMultipleChoiceField(Schedule.objects.order_by("name"),
                                               required=False, help_text="Whoever is on call.")
    teams = forms.ModelMultipleChoiceField(Team.objects.order_by("name"), required=False,
                                           help_text="Every member.")
    delay_minutes = forms.IntegerField(
        min_value=1, max_value=MAX_STEP_DELAY_MINUTES, initial=5,
        help_text="Minutes to wait after this step before the next one.")

    class Meta:
        model = EscalationStep
        fields = ["position", "delay_minutes"]
        labels = {"position": "Order"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            targets = list(self.instance.targets.all())
            for kind in TARGET_KINDS:
                self.initial[f"{kind}s"] = [getattr(t, f"{kind}_id") for t in targets
                                            if t.kind == kind]

    def clean(self):
        cleaned = super().clean()
        if not self.cleaned_data.get("DELETE") and not any(
                cleaned.get(f"{kind}s") for kind in TARGET_KINDS):
            raise forms.ValidationError("Pick whom this step pages: a user, a schedule or "
                                        "a team.")
        return cleaned

    @transaction.atomic
    def save(self, commit=True):
        step = super().save(commit=commit)
        if commit:
            step.targets.all().delete()
            EscalationTarget.objects.bulk_create(
                EscalationTarget(step=step, **{kind: chosen})
                for kind in TARGET_KINDS for chosen in self.cleaned_data.get(f"{kind}s", []))
        return step


class EscalationStepInline(admin.TabularInline):
    """A policy's steps. Editing them is editing the policy: whoever may change the policy
    (a Manager) may change its steps; the steps need no permissions of their own."""

    model = EscalationStep
    form = EscalationStepForm
    extra = 0
    fields = ["position", "delay_minutes", "users", "schedules", "teams"]
    readonly_fields = ["pages"]
    verbose_name = "step"
    verbose_name_plural = "steps (run in order; each waits its delay before the next)"

    def get_queryset(self, request):
        return super().get_queryset(request).order_by("position", "id").prefetch_related(
            "targets__user", "targets__schedule", "targets__team")

    def get_fields(self, request, obj=None):
        if not self.has_change_permission(request, obj):
            # Read-only, the pickers would show nothing: whom the step pages, in words.
            return ["position", "delay_minutes", "pages"]
        return self.fields

    @admin.display(description="Pages")
    def pages(self, step):
        words = {"user": "{}", "schedule": "whoever is on call in {}",
                 "team": "every member of {}"}
        return "; ".join(words[target.kind].format(getattr(target, target.kind))
                         for target in step.targets.all()) or "nobody"

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("incidents.view_escalationpolicy")

    def has_add_permission(self, request, obj=None):
        return request.user.has_perm("incidents.change_escalationpolicy")

    def has_change_permission(self, request, obj=None):
        return request.user.has_perm("incidents.change_escalationpolicy")

    def has_delete_permission(self, request, obj=None):
        return request.user.has_perm("incidents.change_escalationpolicy")
