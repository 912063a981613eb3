from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.utils.decorators import method_decorator
from django.utils.html import format_html, format_html_join
from django.utils.timezone import localtime
from django.views.decorators.http import require_POST

from destinations import sending
from destinations.forms import form_for_kind
from destinations.kinds import KINDS
from destinations.models import Delivery, Destination
from tocsin.adminkit import CSS, JS, AdminPages, ReadOnlyLogAdmin, admin_url, badge


def outcome_message(sent: Delivery) -> tuple[int, str]:
    if sent.status == Delivery.Status.SENT:
        status = f" (HTTP {sent.response_status})" if sent.response_status else ""
        return messages.SUCCESS, f"Test sent to {sent.destination.name}{status}."
    verb = "failed" if sent.status == Delivery.Status.FAILED else "failed; it will be retried"
    return messages.ERROR, f"Test to {sent.destination.name} {verb}: {sent.error}"


SENT_A_TEST = "Sent a test."
RE_SENT = "Re-sent delivery."


@admin.register(Destination)
class DestinationAdmin(AdminPages, admin.ModelAdmin):
    list_display = ["name", "kind", "health", "send_drills", "service_count", "created_at"]
    list_filter = ["kind", "failing", "send_drills"]
    search_fields = ["name"]
    actions = ["send_test_selected"]
    change_form_template = "admin/destinations/destination/change_form.html"
    readonly_fields = [
        "kind_label", "settings_summary", "health", "consecutive_failures", "last_error",
    ]

    class Media:
        css = {"all": CSS}
        js = JS

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(services_total=Count("services"))

    def requested_kind(self, request, obj=None) -> str | None:
        if obj is not None:
            return obj.kind
        kind = request.GET.get("kind") or request.POST.get("kind")
        return kind if kind in KINDS else None

    def get_form(self, request, obj=None, change=False, **kwargs):
        kind = self.requested_kind(request, obj) or "webhook"
        kwargs["form"] = form_for_kind(kind, obj.config if obj else {})
        return super().get_form(request, obj, change, **kwargs)

    def get_fieldsets(self, request, obj=None):
        kind = self.requested_kind(request, obj) or "webhook"
        specs = KINDS[kind].FIELDS
        if obj is not None and not self.has_change_permission(request, obj):
            # Read-only fields are looked up on the model, which has no config_<key>
            # attributes (they would all read "None"): show the settings as a summary.
            config_fields = ["settings_summary"]
        else:
            config_fields = [f"config_{spec.name}" for spec in specs]
        settings = {"fields": config_fields}
        if any(spec.secret for spec in specs):
            settings["description"] = "Secrets are never shown again once saved."
        fieldsets = [
            # The add page names the chosen kind above the form, so no "Kind: —" row there.
            (None, {"fields": ["name", "kind_label", "send_drills"] if obj is not None
                    else ["name", "send_drills"]}),
            ("Settings", settings),
        ]
        if obj is not None:
            fieldsets.append(("Health", {"fields": ["health", "consecutive_failures",
                                                    "last_error"]}))
        return fieldsets

    def add_view(self, request, form_url="", extra_context=None):
        # Checked before the chooser too, as Django's add view does for its form.
        if not self.has_add_permission(request):
            raise PermissionDenied
        if self.requested_kind(request) is None:
            # The form depends on the kind, so the kind is chosen first.
            context = {
                **self.admin_site.each_context(request), "opts": self.opts,
                "title": "Add destination: choose its kind",
                "kinds": Destination.Kind.choices,
            }
            return TemplateResponse(request, "admin/destinations/destination/choose_kind.html",
                                    context)
        return super().add_view(request, form_url, extra_context)

    @admin.display(description="Kind")
    def kind_label(self, destination):
        if destination.pk:
            return destination.get_kind_display()
        return "—"

    @admin.display(description="Settings")
    def settings_summary(self, destination):
        """The config for people who may only view it; secrets say only whether they are set."""
        rows = []
        for spec in KINDS[destination.kind].FIELDS:
            value = destination.config.get(spec.name)
            if spec.secret:
                shown = "Set" if value else "Not set"
            elif value in (None, "", []):
                shown = "—"
            else:
                shown = ", ".join(value) if isinstance(value, list) else str(value)
            rows.append((spec.name, shown))
        return format_html(
            '<dl class="tocsin-settings">{}</dl>',
            format_html_join("", "<dt>{}</dt><dd>{}</dd>", rows),
        )

    @admin.display(description="Health", ordering="failing")
    def health(self, destination):
        if destination.failing:
            return badge("failed", f"Failing ({destination.consecutive_failures} in a row)")
        return badge("sent", "OK")

    @admin.display(description="Services", ordering="services_total")
    def service_count(self, destination):
        return destination.services_total

    def render_change_form(self, request, context, *args, obj=None, **kwargs):
        kind = self.requested_kind(request, obj)
        context.update(
            can_send_test=bool(obj) and self.has_change_permission(request, obj),
            chosen_kind=kind,
            chosen_kind_label=Destination.Kind(kind).label if kind else "",
        )
        return super().render_change_form(request, context, *args, obj=obj, **kwargs)

    def get_urls(self):
        return [
            self.object_path("send-test", self.send_test_view, "send_test"),
        ] + super().get_urls()

    @method_decorator(require_POST)
    def send_test_view(self, request, object_id):
        destination = self.get_object(request, unquote(object_id))
        if not self.has_change_permission(request, destination):
            raise PermissionDenied
        if destination is None:
            return self.missing_object(request, object_id)
        level, text = outcome_message(sending.send_test(destination, actor=request.user))
        self.log_change(request, destination, SENT_A_TEST)
        self.message_user(request, text, level)
        return redirect(self.object_url(destination))

    @admin.action(description="Send a test to selected destinations", permissions=["change"])
    def send_test_selected(self, request, queryset):
        tested = list(queryset)
        for destination in tested:
            level, text = outcome_message(sending.send_test(destination, actor=request.user))
            self.message_user(request, text, level)
        self.log_changes(request, tested, SENT_A_TEST)


class KindFilter(admin.SimpleListFilter):
    title = "destination kind"
    parameter_name = "kind"

    def lookups(self, request, model_admin):
        return Destination.Kind.choices

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(destination__kind=self.value())
        return queryset


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyLogAdmin):
    list_display = [
        "id", "created", "event_label", "destination_name", "incident_link", "status_label",
        "http_status", "attempts", "last_attempt",
    ]
    list_filter = ["status", "event", KindFilter, "destination", "created_at"]
    search_fields = ["=incident__number", "destination__name", "error", "=uuid"]
    date_hierarchy = "created_at"
    actions = ["resend_selected"]
    list_per_page = 100
    change_form_template = "admin/destinations/delivery/change_form.html"
    fields = [
        "uuid", "destination", "incident_link", "event", "actor", "status_label", "attempts",
        "response_status", "response_body", "remote_id", "error", "created_at",
        "last_attempt_at", "next_attempt_at", "sent_at",
    ]
    readonly_fields = fields

    class Media:
        css = {"all": CSS}
        js = JS

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("destination", "incident").annotate(
            waiting=Delivery.behind_earlier_pending())

    def lookup_allowed(self, lookup, value, request=None):
        # The incident page links here filtered to its own deliveries.
        return lookup == "incident__id__exact" or super().lookup_allowed(lookup, value, request)

    def has_resend_permission(self, request):
        return request.user.has_perm("destinations.resend_delivery")

    @admin.display(description="Event", ordering="event")
    def event_label(self, sent):
        return sent.get_event_display()

    @admin.display(description="Status", ordering="status")
    def status_label(self, sent):
        # Pending behind an earlier delivery of the same incident and destination: its
        # error says which one.
        if getattr(sent, "waiting", False):
            return badge("waiting", "Waiting")
        return badge(sent.status, sent.get_status_display())

    # Short cells keep the log's columns on screen next to the filters: dates with seconds
    # (the stock "Nov. 24, 2026, 2:18 p.m." is wider and hides retries seconds apart), the
    # destination's name without its kind (a filter has that), an "HTTP" header.
    @admin.display(description="Destination", ordering="destination__name")
    def destination_name(self, sent):
        return sent.destination.name

    @admin.display(description="HTTP", ordering="response_status")
    def http_status(self, sent):
        return sent.response_status

    @admin.display(description="Created", ordering="created_at")
    def created(self, sent):
        return localtime(sent.created_at).strftime("%Y-%m-%d %H:%M:%S")

    @admin.display(description="Last attempt", ordering="last_attempt_at")
    def last_attempt(self, sent):
        if sent.last_attempt_at is None:
            return None
        return localtime(sent.last_attempt_at).strftime("%Y-%m-%d %H:%M:%S")

    @admin.display(description="Incident", ordering="incident__number")
    def incident_link(self, sent):
        if sent.incident is None:
            return "— (test)"
        url = admin_url(sent.incident, current_app=self.admin_site.name)
        return format_html('<a href="{}">#{} {}</a>', url, sent.incident.number,
                           sent.incident.title[:60])

    @admin.action(description="Re-send selected deliveries", permissions=["resend"])
    def resend_selected(self, request, queryset):
        re_sent, skipped, re_sent_pairs = [], 0, set()
        # Oldest first: re-sending a delivery re-sends the later ones of its incident and
        # destination after it, so a selected later one is already queued, in order.
        for sent in queryset.order_by("pk"):
            pair = (sent.destination_id, sent.incident_id)
            if sent.incident_id is not None and pair in re_sent_pairs:
                re_sent.append(sent)
            elif sending.resend(sent):
                re_sent.append(sent)
                re_sent_pairs.add(pair)
            else:
                skipped += 1
        self.log_changes(request, re_sent, RE_SENT)
        if re_sent:
            self.message_user(request, f"{len(re_sent)} delivery(ies) queued to be sent again.",
                              messages.SUCCESS)
        if skipped:
            self.message_user(
                request, f"{skipped} were left alone: they, or a later delivery for the same "
                         "incident and destination, were still pending.", messages.WARNING)

    def get_urls(self):
        return [
            self.object_path("resend", self.resend_view, "resend"),
        ] + super().get_urls()

    @method_decorator(require_POST)
    def resend_view(self, request, object_id):
        if not self.has_resend_permission(request):
            raise PermissionDenied
        sent = self.get_object(request, unquote(object_id))
        if sent is None:
            return self.missing_object(request, object_id)
        if sending.resend(sent):
            self.log_change(request, sent, RE_SENT)
            self.message_user(request, "Queued to be sent again.", messages.SUCCESS)
        else:
            self.message_user(
                request, "It, or a later delivery for the same incident and destination, is "
                         "still pending; nothing was re-sent.", messages.WARNING)
        return redirect(self.object_url(sent))

    def render_change_form(self, request, context, *args, obj=None, **kwargs):
        context["can_resend"] = (
            bool(obj) and obj.status != Delivery.Status.PENDING
            and self.has_resend_permission(request)
        )
        return super().render_change_form(request, context, *args, obj=obj, **kwargs)

