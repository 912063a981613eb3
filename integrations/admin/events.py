"""What integrations received and made: inbound events (reprocessed when they failed) and
the alerts they became, both read-only logs."""

from django.contrib import admin, messages
from django.contrib.auth import get_permission_codename
from django.db import models
from django.utils.html import format_html, format_html_join

from integrations import queue
from integrations.admin.rules import describe_action
from integrations.forms import pretty
from integrations.models import Alert, InboundEvent
from tocsin.adminkit import CSS, ReadOnlyLogAdmin, admin_url, badge
from tocsin.permissions import sees_integration_endpoints


@admin.register(InboundEvent)
class InboundEventAdmin(ReadOnlyLogAdmin):
    list_display = ["trace_id", "integration", "source", "status_label", "received_at",
                    "error_excerpt"]
    list_filter = ["status", "source", "integration"]
    search_fields = ["=trace_id", "error"]
    date_hierarchy = "received_at"
    actions = ["reprocess_selected"]
    readonly_fields = ["error_text", "headers_text", "query_text", "body_text"]
    exclude = ["body", "error", "headers", "query"]

    class Media:
        css = {"all": CSS}

    def has_reprocess_permission(self, request):
        # Reprocessing is the one change anyone makes to an event: Managers hold "change
        # inbound event" for it (docs/roles.md).
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.{get_permission_codename('change', opts)}")

    def get_search_fields(self, request):
        # Errors name the address a mail was sent to; searching them would let whoever may
        # not see addresses find one a character at a time (docs/security.md).
        if sees_integration_endpoints(request.user):
            return self.search_fields
        return ["=trace_id"]

    def get_queryset(self, request):
        # Whether this viewer may see integration addresses travels with each event.
        shows = models.Value(sees_integration_endpoints(request.user), models.BooleanField())
        return (
            super().get_queryset(request).select_related("integration").defer("body")
            .annotate(shows_endpoint=shows)
        )

    def shown(self, event, text: str) -> str:
        # A received mail names its integration's address: blanked for Responders.
        return text if getattr(event, "shows_endpoint", False) else event.hide_endpoint(text)

    @admin.display(description="Status", ordering="status")
    def status_label(self, event):
        return badge(event.status, event.get_status_display())

    @admin.display(description="Error")
    def error_excerpt(self, event):
        # Blanked before it is cut, so no cut leaves part of an address to see.
        return self.shown(event, event.error)[:120]

    @admin.display(description="Error")
    def error_text(self, event):
        return self.shown(event, event.error) or "-"

    @admin.display(description="Headers")
    def headers_text(self, event):
        return format_html("<pre>{}</pre>", self.shown(event, pretty(event.headers)))

    @admin.display(description="Query")
    def query_text(self, event):
        return format_html("<pre>{}</pre>", self.shown(event, pretty(event.query)))

    @admin.display(description="Body")
    def body_text(self, event):
        if getattr(event, "shows_endpoint", False):
            return format_html("<pre>{}</pre>", event.body_text)
        return format_html("<pre>{}</pre>", event.hidden_body())

    @admin.action(description="Reprocess selected failed events", permissions=["reprocess"])
    def reprocess_selected(self, request, queryset):
        events = list(queryset)
        requeued = [event for event in events if queue.requeue(event)]
        self.log_changes(request, requeued, "Queued for reprocessing.")
        self.message_user(request, f"{len(requeued)} event(s) queued again.", messages.SUCCESS)
        skipped = len(events) - len(requeued)
        if skipped:
            self.message_user(
                request, f"{skipped} event(s) skipped: only failed events are reprocessed.",
                messages.WARNING,
            )


@admin.register(Alert)
class AlertAdmin(ReadOnlyLogAdmin):
    list_display = ["message", "alert_type", "integration", "incident_link", "entity_id",
                    "suppressed", "created_at"]
    list_filter = ["alert_type", "suppressed", "integration"]
    search_fields = ["message", "summary", "entity_id"]
    date_hierarchy = "created_at"
    readonly_fields = ["warnings_list", "applied_rules"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("integration", "incident")

    @admin.display(description="Alert rules applied")
    def applied_rules(self, alert):
        """Why an alert was suppressed or changed: each matching rule and its actions."""
        audit = alert.extra.get("rules") or []
        if not audit:
            return "-"
        return format_html_join("", "<p><strong>{}</strong> (rule {}): {}{}</p>", (
            (entry["name"], entry["rule"] or "unsaved",
             "; ".join(describe_action(a) for a in entry["actions"]) or "nothing",
             "; overridden by newer rules: " + "; ".join(
                 f"{describe_action(a)} (by {a['by_name']})" for a in entry["overridden"]
             ) if entry.get("overridden") else "")
            for entry in audit
        ))

    @admin.display(description="Warnings")
    def warnings_list(self, alert):
        if not alert.warnings:
            return "-"
        return format_html_join("", "<p>{}</p>", ((warning,) for warning in alert.warnings))

    @admin.display(description="Incident", ordering="incident__number")
    def incident_link(self, alert):
        if alert.incident is None:
            return "-"
        url = admin_url(alert.incident, current_app=self.admin_site.name)
        return format_html('<a href="{}">#{}</a>', url, alert.incident.number)
