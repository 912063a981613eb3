"""What the on-call app adds to the incidents app's admin pages (incidents/extensions.py):
the "Pages" section of the incident page, who was paged and how each message went."""

from django.contrib import admin
from django.db.models import Prefetch
from django.utils.html import format_html, format_html_join
from django.utils.timezone import localtime

from incidents import extensions
from oncall.models import PersonalNotification
from tocsin.adminkit import badge


def notification_line(notification: PersonalNotification):
    when = notification.sent_at or notification.next_attempt_at
    return format_html(
        "<li>{} {} {}{}{}</li>",
        notification.get_kind_display(), notification.address,
        badge(notification.status, notification.get_status_display()),
        format_html(" at {}", localtime(when).strftime("%Y-%m-%d %H:%M:%S")) if when else "",
        format_html(": {}", notification.error[:160]) if notification.error else "",
    )


@admin.display(description="Pages")
def pages_html(incident) -> str:
    pages = incident.pages.select_related("user").prefetch_related(
        Prefetch("notifications",
                 queryset=PersonalNotification.objects.order_by("next_attempt_at", "id"))
    ).order_by("created_at", "id")
    if not pages:
        return "Nobody has been paged about this incident."
    return format_html(
        '<ul class="tocsin-pages">{}</ul>',
        format_html_join("", "<li><strong>{}</strong> paged {}{}<ul>{}</ul></li>", (
            (page.user.get_username(), localtime(page.created_at).strftime("%Y-%m-%d %H:%M:%S"),
             format_html(" ({})", page.reason) if page.reason else "",
             format_html_join("", "{}", ((notification_line(n),)
                                        for n in page.notifications.all())))
            for page in pages
        )),
    )


def register():
    extensions.add_incident_panel("Pages", pages_html)
