from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.utils.timezone import localtime

from notifications import sending
from notifications.forms import NotificationSettingsForm
from notifications.models import (
    SETTINGS_TYPES,
    Notification,
    NotificationSettings,
    NotificationType,
)
from tocsin.adminkit import CSS, JS, AdminPages, ReadOnlyLogAdmin, badge


@admin.register(NotificationSettings)
class NotificationSettingsAdmin(AdminPages, admin.ModelAdmin):
    """The one settings record: no add, no delete; the list goes straight to it."""

    form = NotificationSettingsForm
    fieldsets = [
        (None, {"fields": ["default_recipients"],
                "description": "Everyone here gets every notification type that does not "
                               "override the global settings."}),
        *[
            (kind.label, {"fields": [
                f"{kind.value}_override", f"{kind.value}_recipients",
                # The resolved switch is about incident emails, so it sits with them.
                *(["send_resolved"] if kind == NotificationType.INCIDENTS else []),
            ]})
            for kind in SETTINGS_TYPES
        ],
    ]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        # The list of one row is that row's page, for those who may see it.
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        return redirect(self.object_url(NotificationSettings.load()))


@admin.register(Notification)
class NotificationAdmin(ReadOnlyLogAdmin):
    # Short cells first, so status and time stay on screen beside the filters.
    list_display = ["created", "status_label", "subject", "type", "attempts", "recipient_list"]
    list_filter = ["status", "type", "event", "created_at"]
    search_fields = ["subject", "recipients", "error", "=dedup_key"]
    date_hierarchy = "created_at"
    actions = ["resend_selected"]
    fields = ["subject", "type", "event", "status_label", "recipient_list", "bcc", "ignored",
              "incident", "attempts", "error", "created_at", "sent_at", "next_attempt_at",
              "body_text", "dedup_key"]
    readonly_fields = fields

    class Media:
        css = {"all": CSS}
        js = JS

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("incident")

    def has_resend_permission(self, request):
        return request.user.has_perm("notifications.resend_notification")

    @admin.display(description="Status", ordering="status")
    def status_label(self, notification):
        return badge(notification.status, notification.get_status_display())

    @admin.display(description="Created", ordering="created_at")
    def created(self, notification):
        return localtime(notification.created_at).strftime("%Y-%m-%d %H:%M:%S")

    @admin.display(description="Recipients")
    def recipient_list(self, notification):
        return ", ".join(notification.recipients)

    @admin.action(description="Re-send selected notifications", permissions=["resend"])
    def resend_selected(self, request, queryset):
        re_sent = [notification for notification in queryset if sending.resend(notification)]
        self.log_changes(request, re_sent, "Re-sent notification.")
        self.message_user(request, f"{len(re_sent)} notification(s) queued to be sent again.",
                          messages.SUCCESS)
