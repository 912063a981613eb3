"""The integration page: its form, where senders send alerts (address, token, sample,
curl), the address regeneration of email integrations, and enabling or disabling."""

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import Http404
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.utils.html import format_html

from integrations import samples
from integrations.admin.rules import AlertRuleInline, PreviewPage
from integrations.admin.tokens import NewTokenPage, TokenInline
from integrations.forms import IntegrationForm
from integrations.models import AlertRule, Integration
from integrations.signals import announce_configuration_change
from tocsin.adminkit import CSS, JS, AdminPages, badge, copyable
from tocsin.permissions import sees_integration_endpoints


@admin.register(Integration)
class IntegrationAdmin(NewTokenPage, PreviewPage, AdminPages, admin.ModelAdmin):
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
        # The token and preview pages add their own (NewTokenPage, PreviewPage).
        return [
            self.object_path("regenerate-address", self.regenerate_address_view,
                             "regenerate_address"),
        ] + super().get_urls()

    def regenerate_address_view(self, request, object_id):
        """Asks first (GET), then replaces the address (POST): the old one stops working."""
        integration = self.get_object(request, unquote(object_id))
        if not self.has_change_permission(request, integration):
            raise PermissionDenied
        if integration is None:
            return self.missing_object(request, object_id)
        if integration.kind != Integration.Kind.EMAIL:
            raise Http404("Only email integrations have an address to regenerate.")
        if request.method == "POST":
            old = integration.email_address
            integration.regenerate_email_address()
            # Neither address goes into the history: either one lets its reader send alerts.
            self.log_change(request, integration, "Regenerated the email address.")
            self.message_user(
                request, f"New address {integration.email_address}; mail to {old} is now "
                "rejected.", messages.SUCCESS,
            )
            return redirect(self.object_url(integration))
        context = {**self.admin_site.each_context(request), "integration": integration,
                   "title": f"Regenerate the address of {integration}", "opts": self.opts}
        return TemplateResponse(
            request, "admin/integrations/integration/regenerate_address.html", context
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
        return format_html(
            "{}{}<p>Each sender authenticates with a bearer token of this integration. "
            '<a href="{}">Create a token</a> (its value is shown once). Revoking a token '
            "(Integration tokens → action <em>Revoke selected tokens</em>) makes its next "
            "request fail with 401 at once; other tokens keep working.</p>"
            "<p>Every query parameter may be <code>json(path)</code> into the request body, "
            "such as <code>json(alerts.0.labels.alertname)</code>.</p>",
            copyable("tocsin-incoming-url", samples.incoming_webhook_url()),
            copyable("tocsin-auth-header", "Authorization: Bearer <your token>"),
            self.object_url(integration, "new_token"),
        )

    @admin.display(description="Address")
    def endpoint_hidden(self, integration):
        return "Only Managers and Administrators see where alerts are sent (docs/roles.md)."

    def email_endpoint(self, integration):
        return format_html(
            "{}<p>Send alert mail to this address: its body is <code>key: value</code> lines "
            "as in the sample below (<code>severity</code> 1 critical … 5 info, 0 resolves "
            "the incident of the same <code>source_id</code>). Mail reaches Tocsin through "
            "an email provider's inbound webhook or a local mail server's pipe; see "
            "docs/email-integration.md.</p>"
            '<p><a class="button" id="tocsin-regenerate-address" href="{}">Regenerate '
            "address</a> Mail to the current address is rejected once it is replaced.</p>",
            copyable("tocsin-email-address", integration.email_address),
            self.object_url(integration, "regenerate_address"),
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
        self.log_changes(request, changing, f"{status.label}.")
        self.message_user(request, f"{len(changing)} integration(s) {status}.",
                          messages.SUCCESS)

    @admin.action(description="Enable selected integrations", permissions=["change"])
    def enable_selected(self, request, queryset):
        self._set_status(request, queryset, Integration.Status.ENABLED)

    @admin.action(description="Disable selected integrations", permissions=["change"])
    def disable_selected(self, request, queryset):
        self._set_status(request, queryset, Integration.Status.DISABLED)
