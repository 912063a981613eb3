"""Stakeholder messages (PRODUCT.md §3.1, §5): when an alert opens an incident, the people
it names get its ``stakeholders_comms`` message.

``stakeholders`` is ``{"users": […], "teams": […], "emails": […]}``: users by username,
email or id; teams by id or name (every member with an address); plain addresses. Entries
that lead to no address are ignored, and recorded on the notification and the timeline.
``stakeholders_comms`` is ``{"subject", "body", "timezone", "created_by"}``; dates in the
message are rendered in that timezone (UTC when it is missing or unknown).
"""

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db.models import Q

from incidents.models import Team, TimelineEntry
from notifications.models import NotificationType
from notifications.receivers import incident_url
from notifications.records import Email, record


def as_list(value) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def user_addresses(entries, ignored: list) -> list[str]:
    users = get_user_model().objects.filter(is_active=True)
    found = []
    for entry in as_list(entries):
        text = str(entry).strip()
        match = Q(username__iexact=text) | Q(email__iexact=text)
        if text.isdigit():
            match |= Q(pk=int(text))
        user = users.filter(match).exclude(email="").first()
        if user is None:
            ignored.append({"users": entry, "reason": "no active user with an email address"})
        else:
            found.append(user.email)
    return found


def team_addresses(entries, ignored: list) -> list[str]:
    found = []
    for entry in as_list(entries):
        text = str(entry).strip()
        match = Q(name__iexact=text) | (Q(pk=int(text)) if text.isdigit() else Q(pk__in=[]))
        team = Team.objects.filter(match).first()
        if team is None:
            ignored.append({"teams": entry, "reason": "no such team"})
            continue
        emails = list(team.members.filter(is_active=True).exclude(email="")
                      .values_list("email", flat=True))
        if not emails:
            ignored.append({"teams": entry, "reason": "the team has no members with email"})
        found.extend(emails)
    return found


def plain_addresses(entries, ignored: list) -> list[str]:
    found = []
    for entry in as_list(entries):
        try:
            validate_email(str(entry).strip())
        except ValidationError:
            ignored.append({"emails": entry, "reason": "not an email address"})
        else:
            found.append(str(entry).strip())
    return found


def resolve_stakeholders(stakeholders: dict) -> tuple[list[str], list[dict]]:
    ignored: list[dict] = []
    if not isinstance(stakeholders, dict):
        return [], [{"stakeholders": stakeholders, "reason": "not an object"}]
    addresses = (
        user_addresses(stakeholders.get("users"), ignored)
        + team_addresses(stakeholders.get("teams"), ignored)
        + plain_addresses(stakeholders.get("emails"), ignored)
    )
    return list(dict.fromkeys(a.lower() for a in addresses)), ignored


def zone(name, ignored: list):
    if not name:
        return ZoneInfo("UTC")
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        ignored.append({"timezone": name, "reason": "unknown timezone; UTC used"})
        return ZoneInfo("UTC")


def on_alert_opened_incident(sender, alert, incident, **kwargs):
    """integration signal alert_opened_incident: send the alert's stakeholder message."""
    stakeholders = alert.extra.get("stakeholders") or {}
    if not stakeholders:
        return
    comms = alert.extra.get("stakeholders_comms") or {}
    recipients, ignored = resolve_stakeholders(stakeholders)
    tz = zone(comms.get("timezone"), ignored)
    started = incident.created_at.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")
    facts = [("Incident", f"#{incident.number} {incident.title}"),
             ("Service", incident.service.name), ("Started", started),
             ("Status", incident.get_status_display())]
    if comms.get("created_by"):
        facts.append(("From", str(comms["created_by"])))
    email = Email(
        subject=str(comms.get("subject") or f"Incident #{incident.number}: {incident.title}"),
        headline=str(comms.get("subject") or incident.title),
        text=str(comms.get("body") or incident.summary or incident.title),
        facts=facts, url=incident_url(incident),
    )
    recorded = record(NotificationType.STAKEHOLDERS, "stakeholders.incident_opened",
                      f"stakeholders:{incident.pk}:{alert.pk}", email, recipients=recipients,
                      incident=incident, ignored=ignored, bcc=True)
    told = f"Stakeholder message sent to {len(recipients)} recipient(s)" if recorded \
        else "No stakeholder could be reached"
    skipped = "; ".join(f"{next(iter(item.values()))} ({item['reason']})" for item in ignored)
    TimelineEntry.objects.create(
        incident=incident, kind=TimelineEntry.Kind.NOTE,
        message=told + (f"; ignored: {skipped}" if skipped else ""),
        data={"stakeholders": recipients, "ignored": ignored},
    )
