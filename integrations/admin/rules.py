"""Alert rules, edited with their integration, and the page that previews a payload
against an integration's mapping and rules (saved or edited) without storing anything."""

import json

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.utils.html import format_html

from integrations import preview, samples
from integrations.forms import AlertRuleForm, pretty
from integrations.models import AlertRule, Integration
from tocsin import strictjson


class AlertRuleInline(admin.StackedInline):
    """Rules are edited with their integration. Where they conflict the most recently
    created wins, so the creation time is shown."""

    model = AlertRule
    form = AlertRuleForm
    fields = ["name", "position", "enabled", "conditions", "actions", "created_at"]
    readonly_fields = ["created_at"]
    extra = 0
    verbose_name_plural = "alert rules (applied after mapping; the newest wins conflicts)"


def describe_action(action: dict) -> str:
    """A rule action as a person reads it, such as: Set urgency "high"."""
    label = AlertRule.Action(action["type"]).label
    return f"{label} {json.dumps(action['value'])}" if "value" in action else label


class PreviewPage:
    """The integration admin's preview page (an ``AdminPages`` ModelAdmin mixin)."""

    def get_urls(self):
        return [
            self.object_path("preview", self.preview_view, "preview"),
        ] + super().get_urls()

    @admin.display(description="Preview")
    def preview_link(self, integration):
        if integration.pk is None:
            return "-"
        return format_html(
            '<a class="button" id="tocsin-preview-link" href="{}">Preview mapping and rules</a>'
            "<p>Try a sample or a received payload against the mapping and the rules below "
            "(saved or edited there) before saving.</p>",
            self.object_url(integration, "preview"),
        )

    def preview_view(self, request, object_id):
        """Try a payload (pasted, or one the integration received) against the saved or an
        edited mapping and rules, and see the alert they make. Nothing is stored."""
        integration = self.get_object(request, unquote(object_id))
        if not self.has_view_permission(request, integration):
            raise PermissionDenied
        if integration is None:
            return self.missing_object(request, object_id)
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
            "title": f"Preview mapping and rules of {integration}", "opts": self.opts,
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
