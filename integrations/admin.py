import json

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import models
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from integrations import preview, queue, samples
from integrations.forms import AlertRuleForm, IntegrationForm, pretty
from integrations.models import Alert, AlertRule, InboundEvent, Integration, IntegrationToken
from integrations.signals import announce_configuration_change
from tocsin import strictjson
from tocsin.adminkit import CSS, JS, badge, copyable
from tocsin.permissions import sees_integration_endpoints


class AlertRuleInline(admin.StackedInline):
    """Rules are edited with their integration. Where they conflict the most recently
    created wins, so the creation time is shown."""

    model = AlertRule
    form = AlertRuleForm
    fields = ["name", "position", "enabled", "conditions", "actions", "created_at"]
    readonly_fields = ["created_at"]
    extra = 0
    verbose_name_plural = "alert rules (applied after mapping; the newest wins conflicts)"


class TokenInline(admin.TabularInline):
    """Tokens are listed here; they are created on their own page (plaintext shown once)
    and revoked with the token list's action, so the inline is read-only."""

    model = IntegrationToken
    fields = ["name", "prefix", "active", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(boolean=True)
    def active(self, token):
        return token.is_active


@admin.register(Integration)
class IntegrationAdmin(admin.ModelAdmin):
    form = IntegrationForm
    list_display = ["name", "kind", "service", "status_label", "created_at"]
    list_filter = ["kind", "status", "service"]
    search_fields = ["name", "description", "service__name"]
    autocomplete_fields = ["service"]
    actions = ["enable_selected", "disable_selected"]
    # A home page typed without a scheme is taken as https (Django 6's default).
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    class Media:
        css = {"all": CSS}
        js = JS

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("service")

    def get_inlines(self, request, obj):
        if obj is None:
            return []
        if obj.kind == Integration.Kind.INCOMING_WEBHOOK:
            return [TokenInline, AlertRuleInline]
        return [AlertRuleInline]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if "mapping" in form.changed_data:
            announce_configuration_change(obj, "mapping", request.user)

    def save_formset(self, request, form, formset, change):
        super().save_formset(request, form, formset, change)
        if formset.model is AlertRule and (
            formset.new_objects or formset.changed_objects or formset.deleted_objects
        ):
            announce_configuration_change(form.instance, "rules", request.user)

    def get_urls(self):
        return [
            path("<int:pk>/tokens/new/", self.admin_site.admin_view(self.new_token_view),
                 name="integrations_integration_new_token"),
            path("<int:pk>/preview/", self.admin_site.admin_view(self.preview_view),
                 name="integrations_integration_preview"),
            path("<int:pk>/regenerate-address/",
                 self.admin_site.admin_view(self.regenerate_address_view),
                 name="integrations_integration_regenerate_address"),
        ] + super().get_urls()

    def regenerate_address_view(self, request, pk):
        """Asks first (GET), then replaces the address (POST): the old one stops working."""
        integration = get_object_or_404(Integration, pk=pk, kind=Integration.Kind.EMAIL)
        if not self.has_change_permission(request, integration):
            raise PermissionDenied
        if request.method == "POST":
            old = integration.email_address
            integration.regenerate_email_address()
            self.message_user(
                request, f"New address {integration.email_address}; mail to {old} is now "
                "rejected.", messages.SUCCESS,
            )
            return redirect("admin:integrations_integration_change", integration.pk)
        context = {**self.admin_site.each_context(request), "integration": integration,
                   "title": f"Regenerate the address of {integration}",
                   "opts": self.model._meta}
        return TemplateResponse(
            request, "admin/integrations/integration/regenerate_address.html", context
        )

    def preview_view(self, request, pk):
        """Try a payload (pasted, or one the integration received) against the saved or an
        edited mapping and rules, and see the alert they make. Nothing is stored."""
        integration = get_object_or_404(Integration, pk=pk)
        if not self.has_view_permission(request, integration):
            raise PermissionDenied
        saved_rules = integration.rules.order_by("created_at", "id")
        saved = {
            "payload": samples.sample_payload(integration),
            "mapping": pretty(integration.mapping),
            "rules": pretty([
                {"name": r.name, "position": r.position, "enabled": r.enabled,
                 "conditions": r.conditions, "actions": r.actions} for r in saved_rules
            ]),
        }
        data = saved
        if request.method == "POST":
            data = request.POST.copy()
            if not self.has_change_permission(request, integration):
                # Edited configurations run user-written regexes here: only for those who
                # could save them; others try payloads against the saved ones.
                data["mapping"], data["rules"] = saved["mapping"], saved["rules"]
        events = list(preview.recent_events(integration))
        context = {
            **self.admin_site.each_context(request), "integration": integration,
            "title": f"Preview mapping and rules of {integration}", "opts": self.model._meta,
            "events": events, "data": data,
            "takes_mapping": integration.kind == Integration.Kind.GENERIC,
        }
        if request.method == "POST":
            context.update(self._run_preview(integration, data, events))
        return TemplateResponse(
            request, "admin/integrations/integration/preview.html", context
        )

    def _run_preview(self, integration, data, events) -> dict:
        problems = {}
        overrides = {}
        # Read as strictly as the API reads them (tocsin.strictjson): deep nesting made a
        # RecursionError (a 500), and NaN or a lone surrogate would reach the validators.
        if integration.kind == Integration.Kind.GENERIC:
            try:
                text = data.get("mapping", "").strip()
                overrides["mapping_config"] = strictjson.loads(text) if text else None
            except ValueError as exc:  # JSONProblem included
                problems["mapping"] = [f"not valid JSON ({exc})"]
        try:
            overrides["rule_items"] = strictjson.loads(data.get("rules", "").strip() or "[]")
        except ValueError as exc:
            problems["rules"] = [f"not valid JSON ({exc})"]
        if problems:
            return {"problems": problems}
        event = next((e for e in events if str(e.pk) == data.get("event")), None)
        try:
            if event is not None:
                result = preview.preview_event(integration, event, **overrides)
            else:
                result = preview.preview(
                    integration, preview.body_bytes(data.get("payload", "")), **overrides
                )
        except preview.InvalidConfiguration as exc:
            return {"problems": exc.errors}
        result["payload_json"] = pretty((result["alert"] or {}).get("payload"))
        return {"result": result, "previewed_event": event}

    def new_token_view(self, request, pk):
        integration = get_object_or_404(
            Integration, pk=pk, kind=Integration.Kind.INCOMING_WEBHOOK
        )
        if not request.user.has_perm("integrations.add_integrationtoken"):
            raise PermissionDenied
        context = {**self.admin_site.each_context(request), "integration": integration,
                   "title": f"New token for {integration}", "opts": self.model._meta}
        name = request.POST.get("name", "").strip() if request.method == "POST" else ""
        if name:
            _, context["plaintext"] = IntegrationToken.issue(integration, name[:200])
        return TemplateResponse(
            request, "admin/integrations/integration/new_token.html", context
        )

    def get_fieldsets(self, request, obj=None):
        main = ["name", "kind", "service", "status", "description", "integration_url", "tags",
                "create_incidents_for", "rate_limit_per_minute", "default_severity"]
        if obj is None:
            return [(None, {"fields": main})]
        sending = ["endpoint", "sample", "curl"]
        if obj.kind == Integration.Kind.EMAIL:
            sending = ["endpoint", "sample"]
        if not sees_integration_endpoints(request.user):
            # Whoever has the URL, key or address can send alerts as this integration.
            sending = ["endpoint_hidden", "sample"]
        # The mapping reads the generic webhook's JSON; the other kinds pick their fields
        # their own way (json(path) parameters, mail keys). Rules apply to every kind.
        shaping = ["mapping", "preview_link"] if obj.kind == Integration.Kind.GENERIC else [
            "preview_link"]
        return [
            (None, {"fields": main}),
            ("Sending alerts here", {"fields": sending}),
            ("Mapping and alert rules", {"fields": shaping}),
        ]

    @admin.display(description="Preview")
    def preview_link(self, integration):
        if integration.pk is None:
            return "-"
        return format_html(
            '<a class="button" id="tocsin-preview-link" href="{}">Preview mapping and rules</a>'
            "<p>Try a sample or a received payload against the mapping and the rules below "
            "(saved or edited there) before saving.</p>",
            reverse("admin:integrations_integration_preview", args=[integration.pk]),
        )

    def get_readonly_fields(self, request, obj=None):
        readonly = ["endpoint", "endpoint_hidden", "sample", "curl", "preview_link"]
        if obj is not None:
            readonly.append("kind")
            if not obj.has_endpoint:
                # Nothing can reach it yet, so there is nothing to enable or disable.
                readonly.append("status")
        return readonly

    @admin.display(description="Status", ordering="status")
    def status_label(self, integration):
        return badge(integration.status, integration.get_status_display())

    @admin.display(description="Address")
    def endpoint(self, integration):
        if integration.kind == Integration.Kind.GENERIC:
            return copyable("tocsin-webhook-url", integration.webhook_url)
        if integration.kind == Integration.Kind.EMAIL:
            return self.email_endpoint(integration)
        new_token = reverse("admin:integrations_integration_new_token", args=[integration.pk])
        return format_html(
            "{}{}<p>Each sender authenticates with a bearer token of this integration. "
            '<a href="{}">Create a token</a> (its value is shown once). Revoking a token '
            "(Integration tokens → action <em>Revoke selected tokens</em>) makes its next "
            "request fail with 401 at once; other tokens keep working.</p>"
            "<p>Every query parameter may be <code>json(path)</code> into the request body, "
            "such as <code>json(alerts.0.labels.alertname)</code>.</p>",
            copyable("tocsin-incoming-url", samples.incoming_webhook_url()),
            copyable("tocsin-auth-header", "Authorization: Bearer <your token>"),
            new_token,
        )

    @admin.display(description="Address")
    def endpoint_hidden(self, integration):
        return "Only Managers and Administrators see where alerts are sent (docs/roles.md)."

    def email_endpoint(self, integration):
        regenerate = reverse(
            "admin:integrations_integration_regenerate_address", args=[integration.pk]
        )
        return format_html(
            "{}<p>Send alert mail to this address: its body is <code>key: value</code> lines "
            "as in the sample below (<code>severity</code> 1 critical … 5 info, 0 resolves "
            "the incident of the same <code>source_id</code>). Mail reaches Tocsin through "
            "an email provider's inbound webhook or a local mail server's pipe; see "
            "docs/email-integration.md.</p>"
            '<p><a class="button" id="tocsin-regenerate-address" href="{}">Regenerate '
            "address</a> Mail to the current address is rejected once it is replaced.</p>",
            copyable("tocsin-email-address", integration.email_address),
            regenerate,
        )

    @admin.display(description="Sample")
    def sample(self, integration):
        return copyable("tocsin-sample", samples.sample_payload(integration), block=True)

    @admin.display(description="Try it with curl")
    def curl(self, integration):
        example = samples.curl_example(integration)
        return copyable("tocsin-curl", example, block=True) if example else "-"

    def _set_status(self, request, queryset, status):
        # Integrations that nobody can reach yet keep their status (see get_readonly_fields).
        # One save per changed integration (not a bulk UPDATE) so each change is announced.
        changing = [i for i in queryset if i.has_endpoint and i.status != status]
        for integration in changing:
            integration.status = status
            integration.save(update_fields=["status"])
        count = len(changing)
        self.message_user(request, f"{count} integration(s) {status}.", messages.SUCCESS)

    @admin.action(description="Enable selected integrations", permissions=["change"])
    def enable_selected(self, request, queryset):
        self._set_status(request, queryset, Integration.Status.ENABLED)

    @admin.action(description="Disable selected integrations", permissions=["change"])
    def disable_selected(self, request, queryset):
        self._set_status(request, queryset, Integration.Status.DISABLED)


@admin.register(IntegrationToken)
class IntegrationTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "integration", "prefix", "active", "created_at", "last_used_at",
                    "revoked_at"]
    list_filter = ["integration", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix", "integration__name"]
    fields = ["integration", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["integration", "prefix", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke_selected"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("integration")

    def has_add_permission(self, request):
        # Created from the integration page, where the plaintext can be shown once.
        return False

    def has_delete_permission(self, request, obj=None):
        # Revoked, never deleted: the record says which sender used it and when.
        return False

    def has_revoke_permission(self, request):
        return request.user.has_perm("integrations.delete_integrationtoken")

    @admin.display(boolean=True)
    def active(self, token):
        return token.is_active

    @admin.action(description="Revoke selected tokens", permissions=["revoke"])
    def revoke_selected(self, request, queryset):
        for token in queryset:
            token.revoke()
        self.message_user(request, f"{queryset.count()} token(s) revoked.", messages.SUCCESS)


def describe_action(action: dict) -> str:
    label = AlertRule.Action(action["type"]).label
    return f"{label} {json.dumps(action['value'])}" if "value" in action else label


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records written by the system: browsable, never edited by hand."""

    def has_add_permission(self, request):
        return False

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields] + list(self.readonly_fields)


@admin.register(InboundEvent)
class InboundEventAdmin(ReadOnlyAdmin):
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

    def get_readonly_fields(self, request, obj=None):
        return [f for f in super().get_readonly_fields(request, obj) if f not in self.exclude]

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

    @admin.action(description="Reprocess selected failed events", permissions=["change"])
    def reprocess_selected(self, request, queryset):
        requeued = sum(1 for event in queryset if queue.requeue(event))
        self.message_user(request, f"{requeued} event(s) queued again.", messages.SUCCESS)
        skipped = queryset.count() - requeued
        if skipped:
            self.message_user(
                request, f"{skipped} event(s) skipped: only failed events are reprocessed.",
                messages.WARNING,
            )


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
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
        url = reverse("admin:incidents_incident_change", args=[alert.incident_id])
        return format_html('<a href="{}">#{}</a>', url, alert.incident.number)
