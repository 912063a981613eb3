"""Bearer tokens of incoming-webhook integrations: created on their own page, where the
plaintext is shown once, listed with their integration, revoked (never deleted)."""

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_permission_codename
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.template.response import TemplateResponse

from integrations.models import Integration, IntegrationToken
from tocsin.adminkit import AdminPages


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


class NewTokenPage:
    """The integration admin's "new token" page (an ``AdminPages`` ModelAdmin mixin)."""

    def get_urls(self):
        return [
            self.object_path("tokens/new", self.new_token_view, "new_token"),
        ] + super().get_urls()

    def has_add_token_permission(self, request):
        opts = IntegrationToken._meta
        return request.user.has_perm(f"{opts.app_label}.{get_permission_codename('add', opts)}")

    def new_token_view(self, request, object_id):
        if not self.has_add_token_permission(request):
            raise PermissionDenied
        integration = self.get_object(request, unquote(object_id))
        if integration is None:
            return self.missing_object(request, object_id)
        if integration.kind != Integration.Kind.INCOMING_WEBHOOK:
            raise Http404("Only incoming webhooks authenticate with tokens.")
        context = {**self.admin_site.each_context(request), "integration": integration,
                   "title": f"New token for {integration}", "opts": self.opts}
        name = request.POST.get("name", "").strip() if request.method == "POST" else ""
        if name:
            token, context["plaintext"] = IntegrationToken.issue(integration, name[:200])
            # Its name only: the plaintext is shown once, here, and stored nowhere.
            self.log_addition(request, token, f"Created token '{token.name}'.")
        return TemplateResponse(
            request, "admin/integrations/integration/new_token.html", context
        )


@admin.register(IntegrationToken)
class IntegrationTokenAdmin(AdminPages, admin.ModelAdmin):
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
        # Revoking takes the place of deleting, so it needs the delete permission.
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.{get_permission_codename('delete', opts)}")

    @admin.display(boolean=True)
    def active(self, token):
        return token.is_active

    @admin.action(description="Revoke selected tokens", permissions=["revoke"])
    def revoke_selected(self, request, queryset):
        tokens = list(queryset)
        revoked = [token for token in tokens if token.revoke()]
        self.log_changes(request, revoked, "Revoked.")
        self.message_user(request, f"{len(tokens)} token(s) revoked.", messages.SUCCESS)
