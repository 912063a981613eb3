"""The admin for people: contact methods, notification rules, the "My profile" page and
the log of messages sent to people (docs/on-call.md#in-the-admin).

A Responder keeps their own contact methods and rules; whoever holds
``oncall.manage_everyones_contact_methods`` (Managers) keeps anyone's."""

from datetime import timedelta
from zoneinfo import ZoneInfo

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.timezone import localtime
from django.views.decorators.http import require_POST

from incidents.models import Incident
from oncall import rights, sending, shifts
from oncall.admin.forms import ContactMethodForm, NotificationRuleForm, fix_user_field
from oncall.models import ContactMethod, NotificationRule, PersonalNotification
from tocsin.adminkit import CSS, JS, AdminPages, ReadOnlyLogAdmin, admin_url, badge

User = get_user_model()

UPCOMING_DAYS = 14
SENT_A_TEST = "Sent a test."
SHIFT_TIME = "%a %d %b %H:%M %Z"


def may_keep_anyones(request) -> bool:
    return rights.keeps_everyones_contact_methods(request.user)


def safe_next(request) -> str | None:
    """Where to go back to after a form reached from another page (the profile)."""
    target = request.POST.get("next") or request.GET.get("next")
    if target and url_has_allowed_host_and_scheme(
            target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return None


def test_outcome(row: PersonalNotification) -> tuple[int, str]:
    where = f"{row.get_kind_display()} {row.address}"
    if row.status == PersonalNotification.Status.SENT:
        status = f" (HTTP {row.response_status})" if row.response_status else ""
        return messages.SUCCESS, f"Test sent to {where}{status}."
    return messages.ERROR, f"Test to {where} failed: {row.error}"


class OwnRowsAdmin(AdminPages, admin.ModelAdmin):
    """Rows that belong to one user: a Responder sees and edits only their own, with the
    user field fixed to themselves; Managers anyone's. Forms reached from the profile page
    go back there."""

    class Media:
        css = {"all": CSS}
        js = JS

    def get_queryset(self, request):
        rows = super().get_queryset(request).select_related("user")
        return rows if may_keep_anyones(request) else rows.filter(user=request.user)

    def owns(self, request, obj) -> bool:
        return obj is None or may_keep_anyones(request) or obj.user_id == request.user.pk

    def has_view_permission(self, request, obj=None):
        return super().has_view_permission(request, obj) and self.owns(request, obj)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self.owns(request, obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self.owns(request, obj)

    def get_list_filter(self, request):
        return ["user", *self.list_filter] if may_keep_anyones(request) else self.list_filter

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        fix_user_field(form, request.user, may_keep_anyones(request))
        return form

    def get_changeform_initial_data(self, request):
        initial = super().get_changeform_initial_data(request)
        initial.setdefault("user", request.user.pk)
        initial.pop("next", None)
        return initial

    def back_to_next(self, request, response):
        target = safe_next(request)
        if target and isinstance(response, HttpResponseRedirect) and not (
                {"_continue", "_addanother", "_popup"} & set(request.POST)):
            return redirect(target)
        return response

    def response_add(self, request, obj, post_url_continue=None):
        return self.back_to_next(request, super().response_add(request, obj, post_url_continue))

    def response_change(self, request, obj):
        return self.back_to_next(request, super().response_change(request, obj))


@admin.register(ContactMethod)
class ContactMethodAdmin(OwnRowsAdmin):
    form = ContactMethodForm
    list_display = ["__str__", "user", "kind", "enabled_label", "created_at"]
    list_filter = ["kind", "enabled"]
    search_fields = ["address", "label", "user__username"]
    actions = ["send_test_selected", "enable_selected", "disable_selected"]
    change_form_template = "admin/oncall/contactmethod/change_form.html"

    @admin.display(description="Enabled", ordering="enabled")
    def enabled_label(self, method):
        return badge("enabled", "Enabled") if method.enabled else badge("disabled", "Disabled")

    def get_urls(self):
        return [
            path("profile/", self.admin_site.admin_view(self.profile_view),
                 name=self.url_name("profile")),
            self.object_path("send-test", self.send_test_view, "send_test"),
            self.object_path("toggle", self.toggle_view, "toggle"),
        ] + super().get_urls()

    def render_change_form(self, request, context, *args, obj=None, **kwargs):
        context["can_send_test"] = bool(obj) and self.has_change_permission(request, obj)
        return super().render_change_form(request, context, *args, obj=obj, **kwargs)

    def changed_method(self, request, object_id):
        """The contact method of a POST that changes it, or why not."""
        method = self.get_object(request, unquote(object_id))
        if not self.has_change_permission(request, method):
            raise PermissionDenied
        return method

    @method_decorator(require_POST)
    def send_test_view(self, request, object_id):
        method = self.changed_method(request, object_id)
        if method is None:
            return self.missing_object(request, object_id)
        level, text = test_outcome(sending.send_test(method, actor=request.user))
        self.log_change(request, method, SENT_A_TEST)
        self.message_user(request, text, level)
        return redirect(safe_next(request) or self.object_url(method))

    @method_decorator(require_POST)
    def toggle_view(self, request, object_id):
        method = self.changed_method(request, object_id)
        if method is None:
            return self.missing_object(request, object_id)
        method.enabled = not method.enabled
        method.save(update_fields=["enabled"])
        state = "Enabled" if method.enabled else "Disabled"
        self.log_change(request, method, f"{state}.")
        self.message_user(request, f"{state} {method}.", messages.SUCCESS)
        return redirect(safe_next(request) or self.object_url(method))

    @admin.action(description="Send a test to selected contact methods", permissions=["change"])
    def send_test_selected(self, request, queryset):
        tested = list(queryset)
        for method in tested:
            level, text = test_outcome(sending.send_test(method, actor=request.user))
            self.message_user(request, text, level)
        self.log_changes(request, tested, SENT_A_TEST)

    def set_enabled(self, request, queryset, enabled: bool):
        changed = list(queryset.exclude(enabled=enabled))
        queryset.filter(pk__in=[method.pk for method in changed]).update(enabled=enabled)
        state = "Enabled" if enabled else "Disabled"
        self.log_changes(request, changed, f"{state}.")
        self.message_user(request, f"{state} {len(changed)} contact method(s).",
                          messages.SUCCESS)

    @admin.action(description="Enable selected contact methods", permissions=["change"])
    def enable_selected(self, request, queryset):
        self.set_enabled(request, queryset, True)

    @admin.action(description="Disable selected contact methods", permissions=["change"])
    def disable_selected(self, request, queryset):
        self.set_enabled(request, queryset, False)

    def profile_view(self, request):
        """Every signed-in user's own page: how they are reached and when they are on call."""
        user = request.user
        here = reverse(f"{self.admin_site.name}:{self.url_name('profile')}")
        now = timezone.now()
        upcoming = []
        for schedule, shift in shifts.user_shifts(user.pk, now,
                                                  now + timedelta(days=UPCOMING_DAYS)):
            zone = ZoneInfo(schedule.time_zone)
            upcoming.append({
                "schedule": schedule, "url": admin_url(schedule, current_app=self.admin_site.name),
                # Formatted here: the template's date filter would show the server's zone.
                "start": shift.start.astimezone(zone).strftime(SHIFT_TIME),
                "end": shift.end.astimezone(zone).strftime(SHIFT_TIME),
                "override": shift.override_id is not None, "now": shift.start <= now,
            })
        rule_opts = NotificationRule._meta
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts, "title": "My profile",
            "profile_user": user, "here": here,
            "methods": ContactMethod.objects.filter(user=user),
            "rules": NotificationRule.objects.filter(user=user).select_related("contact_method"),
            "upcoming": upcoming, "upcoming_days": UPCOMING_DAYS,
            "can_add_method": self.has_add_permission(request),
            "can_change_methods": user.has_perm("oncall.change_contactmethod"),
            "can_add_rule": user.has_perm("oncall.add_notificationrule"),
            "can_change_rules": user.has_perm("oncall.change_notificationrule"),
            "rule_opts": rule_opts,
            "can_view_log": user.has_perm("oncall.view_personalnotification"),
        }
        return TemplateResponse(request, "admin/oncall/profile.html", context)


@admin.register(NotificationRule)
class NotificationRuleAdmin(OwnRowsAdmin):
    form = NotificationRuleForm
    list_display = ["__str__", "user", "contact_method", "delay_minutes"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("contact_method")

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        field = form.base_fields["contact_method"]
        methods = ContactMethod.objects.select_related("user")
        if may_keep_anyones(request):
            # Managers pick among everyone's: name the owner too.
            field.label_from_instance = lambda method: f"{method.user}: {method}"
        else:
            methods = methods.filter(user=request.user)
        field.queryset = methods
        return form


class NotificationUserFilter(admin.SimpleListFilter):
    """By person, offered to those who see everyone's messages."""

    title = "person"
    parameter_name = "user__id__exact"

    def lookups(self, request, model_admin):
        # The people, not the messages: one row each, found by an index, whatever the size
        # of the log.
        return list(User.objects.filter(pk__in=PersonalNotification.objects.values("user_id"))
                    .order_by("username").values_list("pk", "username"))

    def queryset(self, request, queryset):
        return queryset.filter(user_id=self.value()) if self.value() else queryset


@admin.register(PersonalNotification)
class PersonalNotificationAdmin(ReadOnlyLogAdmin):
    list_display = ["created", "status_label", "purpose", "user", "kind", "address",
                    "incident_link", "attempts", "sent", "error_start"]
    list_filter = ["status", "purpose", "kind", "created_at"]
    search_fields = ["address", "user__username", "error", "=incident__number"]
    date_hierarchy = "created_at"
    actions = ["resend_selected"]
    list_per_page = 100
    change_form_template = "admin/oncall/personalnotification/change_form.html"
    fields = ["user", "purpose", "kind", "address", "contact_method", "incident_link", "page",
              "delay_minutes", "status_label", "attempts", "response_status", "remote_id",
              "error", "created_at", "last_attempt_at", "next_attempt_at", "sent_at",
              "subject", "text", "dedup_key"]
    readonly_fields = fields

    class Media:
        css = {"all": CSS}
        js = JS

    def get_queryset(self, request):
        rows = super().get_queryset(request).select_related("user", "incident")
        # A Responder sees the messages sent to them; Managers everyone's.
        return rows if may_keep_anyones(request) else rows.filter(user=request.user)

    def get_list_filter(self, request):
        return [NotificationUserFilter, *self.list_filter] if may_keep_anyones(request) \
            else self.list_filter

    def lookup_allowed(self, lookup, value, request=None):
        # The profile page links here filtered to the signed-in user.
        return lookup == "user__id__exact" or super().lookup_allowed(lookup, value, request)

    def has_resend_permission(self, request):
        return request.user.has_perm("oncall.resend_personalnotification")

    @admin.display(description="Status", ordering="status")
    def status_label(self, row):
        return badge(row.status, row.get_status_display())

    @admin.display(description="Created", ordering="created_at")
    def created(self, row):
        return localtime(row.created_at).strftime("%Y-%m-%d %H:%M:%S")

    @admin.display(description="Sent", ordering="sent_at")
    def sent(self, row):
        return localtime(row.sent_at).strftime("%Y-%m-%d %H:%M:%S") if row.sent_at else None

    @admin.display(description="Error")
    def error_start(self, row):
        return row.error[:80]

    @admin.display(description="Incident", ordering="incident__number")
    def incident_link(self, row):
        if row.incident is None:
            return "—"
        url = admin_url(row.incident, current_app=self.admin_site.name)
        return format_html('<a href="{}">#{} {}</a>', url, row.incident.number,
                           row.incident.title[:60])

    @admin.action(description="Re-send selected messages", permissions=["resend"])
    def resend_selected(self, request, queryset):
        re_sent = [row for row in queryset.order_by("pk") if sending.resend(row)]
        self.log_changes(request, re_sent, "Re-sent message.")
        self.message_user(request, f"{len(re_sent)} message(s) queued to be sent again.",
                          messages.SUCCESS)
        skipped = queryset.count() - len(re_sent)
        if skipped:
            self.message_user(request, f"{skipped} were still pending and were left alone.",
                              messages.WARNING)

    def get_urls(self):
        return [
            self.object_path("resend", self.resend_view, "resend"),
            # The incident page's "Page someone" button posts here (oncall/contributions.py).
            path("page-for-incident/<int:incident_id>/",
                 self.admin_site.admin_view(self.page_view), name=self.url_name("page")),
            *super().get_urls(),
        ]

    @method_decorator(require_POST)
    def page_view(self, request, incident_id):
        """Page a person about an incident by hand (add a responder)."""
        if not (request.user.has_perm("oncall.add_page")
                and request.user.has_perm("incidents.view_incident")):
            raise PermissionDenied
        incident = get_object_or_404(Incident, pk=incident_id)
        back = redirect(admin_url(incident, current_app=self.admin_site.name))
        chosen = request.POST.get("page_user", "")
        person = User.objects.filter(pk=chosen, is_active=True).first() \
            if chosen.isdigit() else None
        if person is None:
            self.message_user(request, "Choose the person to page.", messages.ERROR)
        elif not incident.is_open:
            self.message_user(request, f"Incident #{incident.number} is resolved: nobody is "
                                       "paged about it.", messages.ERROR)
        else:
            page = sending.page_user(incident, person,
                                     reason=f"paged by {request.user.get_username()}")
            self.log_addition(request, page, f"Paged {person.get_username()}.")
            self.message_user(request, f"Paged {person.get_username()}: their notification "
                                       "rules are running (see Pages below).", messages.SUCCESS)
        return back

    @method_decorator(require_POST)
    def resend_view(self, request, object_id):
        if not self.has_resend_permission(request):
            raise PermissionDenied
        row = self.get_object(request, unquote(object_id))
        if row is None:
            return self.missing_object(request, object_id)
        if sending.resend(row):
            self.log_change(request, row, "Re-sent message.")
            self.message_user(request, "Queued to be sent again.", messages.SUCCESS)
        else:
            self.message_user(request, "It is still pending; nothing was re-sent.",
                              messages.WARNING)
        return redirect(self.object_url(row))

    def render_change_form(self, request, context, *args, obj=None, **kwargs):
        context["can_resend"] = (
            bool(obj) and obj.status != PersonalNotification.Status.PENDING
            and self.has_resend_permission(request)
        )
        return super().render_change_form(request, context, *args, obj=obj, **kwargs)
