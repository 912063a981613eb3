"""What the on-call app adds to the incidents app's admin pages (incidents/extensions.py):
the incident page's "Escalation" section (oncall/admin/escalation.py) and its "Pages"
section, who was paged and how each message went, with a button to page someone by hand."""

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db.models import Prefetch, prefetch_related_objects
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.timezone import localtime

from incidents import extensions
from oncall.admin.escalation import escalation_html
from oncall.admin.policies import EscalationStepInline
from oncall.models import Page, PersonalNotification
from tocsin.adminkit import badge

User = get_user_model()


def notification_line(notification: PersonalNotification):
    """The kind and the method's label, never the address: everyone who may see the
    incident sees this, and addresses are their owner's (an ntfy topic URL may carry a
    credential). The message log shows the address to its owner and to Managers."""
    when = notification.sent_at or notification.next_attempt_at
    label = notification.contact_method.label if notification.contact_method else ""
    return format_html(
        "<li>{}{} {}{}{}</li>",
        notification.get_kind_display(), format_html(" ({})", label) if label else "",
        badge(notification.status, notification.get_status_display()),
        format_html(" at {}", localtime(when).strftime("%Y-%m-%d %H:%M:%S")) if when else "",
        format_html(": {}", notification.error[:160]) if notification.error else "",
    )


def page_someone_form(incident):
    """A person to page and a button. The incident page is itself a form, and forms do not
    nest: the button posts the page's form to the paging view (``formaction``), which reads
    only ``page_user``; ``formnovalidate`` keeps the incident's own fields out of it."""
    people = User.objects.filter(is_active=True).order_by("username").values_list(
        "pk", "username")
    return format_html(
        '<div class="tocsin-page-someone"><label for="tocsin-page-user">Page someone:</label> '
        '<select name="page_user" id="tocsin-page-user"><option value="">Choose a person…'
        "</option>{}</select> "
        '<button type="submit" class="button" formaction="{}" formmethod="post" '
        "formnovalidate>Page</button></div>",
        format_html_join("", '<option value="{}">{}</option>', people),
        reverse("admin:oncall_personalnotification_page", args=[incident.pk]),
    )


def incident_pages(incident) -> list[Page]:
    """The incident's pages with their people and messages, read once per incident page:
    the Escalation and Pages sections both show them (Django keeps the prefetched rows on
    the incident, which both sections are given)."""
    prefetch_related_objects([incident], Prefetch(
        "pages", queryset=Page.objects.select_related("user").prefetch_related(
            Prefetch("notifications",
                     queryset=PersonalNotification.objects.select_related("contact_method")
                     .order_by("next_attempt_at", "id"))
        ).order_by("created_at", "id")))
    return list(incident.pages.all())


@admin.display(description="Progress")
def escalation_section(incident, request) -> str:
    return escalation_html(incident, request, incident_pages(incident))


@admin.display(description="Pages")
def pages_html(incident, request) -> str:
    pages = incident_pages(incident)
    # Only those who may page see the form (the view refuses the others anyway).
    form = page_someone_form(incident) \
        if incident.is_open and request.user.has_perm("oncall.add_page") else ""
    if not pages:
        return format_html("<p>Nobody has been paged about this incident.</p>{}", form)
    return format_html(
        '<ul class="tocsin-pages">{}</ul>{}',
        format_html_join("", "<li><strong>{}</strong> paged {}{}<ul>{}</ul></li>", (
            (page.user.get_username(), localtime(page.created_at).strftime("%Y-%m-%d %H:%M:%S"),
             format_html(" ({})", page.reason) if page.reason else "",
             format_html_join("", "{}", ((notification_line(n),)
                                        for n in page.notifications.all())))
            for page in pages
        )),
        form,
    )


def register():
    extensions.add_incident_panel("Escalation", escalation_section, with_request=True)
    extensions.add_incident_panel("Pages", pages_html, with_request=True)
    extensions.add_escalation_policy_inline(EscalationStepInline)
