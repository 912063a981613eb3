"""Stakeholder messages (docs/notifications.md): when an alert opens an incident, the people
it names get its ``stakeholders_comms`` message.

``stakeholders`` is ``{"users": […], "teams": […], "emails": […]}``: users by username,
email or id; teams by id or name (every member with an address); plain addresses. Entries
that lead to no address are ignored, and recorded on the notification and the timeline.
``stakeholders_comms`` is ``{"subject", "body", "timezone", "created_by"}``; dates in the
message are rendered in that timezone (UTC when it is missing or unknown).

Whoever holds an integration key writes the subject, the body and the list, so the list is
bounded: plain addresses only in the domains of ``TOCSIN_STAKEHOLDER_EMAIL_DOMAINS`` (portal
users and teams are always allowed) and at most ``TOCSIN_STAKEHOLDER_MAX_RECIPIENTS``
addresses per alert. Without that, Tocsin would mail anyone anything: an open relay.
Everything not mailed is recorded with its reason on the alert (``stakeholders_dropped``).
"""

from collections import defaultdict
from collections.abc import Iterator
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db.models import Q

from incidents.models import Team, TimelineEntry
from notifications.models import NotificationType
from notifications.receivers import incident_url
from notifications.records import Email, record

DOMAIN_REFUSED = "domain not allowed for stakeholder email"
NO_PLAIN_ADDRESSES = "plain addresses are not allowed (no stakeholder email domain is set)"
# How many dropped entries of one reason the timeline note spells out.
NOTE_EXAMPLES = 5


def as_list(value) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def over_limit(limit: int) -> str:
    return f"over the limit of {limit} recipients per alert"


class Stakeholders:
    """Turns an alert's ``stakeholders`` into at most ``limit`` unique addresses (users
    first, then teams, then plain addresses, in the order given) and the list of what was
    dropped, each entry with its reason."""

    def __init__(self, limit: int, domains):
        self.limit = max(0, limit)
        self.domains = {normal_domain(d) for d in domains} - {""}
        self.addresses: dict[str, str] = {}  # lower-cased → as found, in order
        self.dropped: list[dict] = []

    def full(self) -> bool:
        return len(self.addresses) >= self.limit

    def add(self, address: str) -> None:
        """Keep ``address`` unless it is already kept; past the limit, drop it. Counting
        unique final addresses (after teams are expanded) bounds the mail, not the list."""
        key = address.lower()
        if key in self.addresses:
            return
        if self.full():
            self.dropped.append({"address": address, "reason": over_limit(self.limit)})
        else:
            self.addresses[key] = address

    def entries(self, kind: str, value) -> Iterator:
        """The entries of one list worth looking up. Once the limit is reached nothing more
        can be mailed, so later entries are dropped unread: a list of 100,000 names costs
        no 100,000 queries."""
        entries = as_list(value)
        for position, entry in enumerate(entries):
            if self.full():
                self.dropped.extend({kind: rest, "reason": over_limit(self.limit)}
                                    for rest in entries[position:])
                return
            yield entry

    def resolve(self, stakeholders) -> tuple[list[str], list[dict]]:
        if not isinstance(stakeholders, dict):
            return [], [{"stakeholders": stakeholders, "reason": "not an object"}]
        self.users(stakeholders.get("users"))
        self.teams(stakeholders.get("teams"))
        self.plain(stakeholders.get("emails"))
        return [address.lower() for address in self.addresses.values()], self.dropped

    def users(self, entries) -> None:
        users = get_user_model().objects.filter(is_active=True)
        for entry in self.entries("users", entries):
            text = str(entry).strip()
            match = Q(username__iexact=text) | Q(email__iexact=text)
            if text.isdigit():
                match |= Q(pk=int(text))
            user = users.filter(match).exclude(email="").first()
            if user is None:
                self.dropped.append(
                    {"users": entry, "reason": "no active user with an email address"})
            else:
                self.add(user.email)

    def teams(self, entries) -> None:
        for entry in self.entries("teams", entries):
            text = str(entry).strip()
            match = Q(name__iexact=text) | (Q(pk=int(text)) if text.isdigit() else Q(pk__in=[]))
            team = Team.objects.filter(match).first()
            if team is None:
                self.dropped.append({"teams": entry, "reason": "no such team"})
                continue
            emails = list(team.members.filter(is_active=True).exclude(email="")
                          .order_by("pk").values_list("email", flat=True))
            if not emails:
                self.dropped.append(
                    {"teams": entry, "reason": "the team has no members with email"})
            for address in emails:
                self.add(address)

    def plain(self, entries) -> None:
        for entry in self.entries("emails", entries):
            address = str(entry).strip()
            try:
                validate_email(address)
            except ValidationError:
                self.dropped.append({"emails": entry, "reason": "not an email address"})
                continue
            # Exact match: "evil.com.example.org" is not "example.org", and neither is any
            # other subdomain unless listed; whoever runs Tocsin lists each one it mails.
            if normal_domain(address.rsplit("@", 1)[1]) not in self.domains:
                self.dropped.append({"emails": entry, "reason": DOMAIN_REFUSED
                                     if self.domains else NO_PLAIN_ADDRESSES})
                continue
            self.add(address)


def normal_domain(domain: str) -> str:
    return str(domain).strip().lower().lstrip("@").rstrip(".")


def resolve_stakeholders(stakeholders) -> tuple[list[str], list[dict]]:
    """(addresses to mail, entries dropped with their reason), under the portal's limits."""
    return Stakeholders(settings.TOCSIN_STAKEHOLDER_MAX_RECIPIENTS,
                        settings.TOCSIN_STAKEHOLDER_EMAIL_DOMAINS).resolve(stakeholders)


def zone(name, ignored: list):
    if not name:
        return ZoneInfo("UTC")
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        ignored.append({"timezone": name, "reason": "unknown timezone; UTC used"})
        return ZoneInfo("UTC")


def summary(ignored: list[dict]) -> str:
    """The ignored entries grouped by reason, a few of each spelled out: a note for 2,000
    dropped addresses stays one line long."""
    by_reason = defaultdict(list)
    for item in ignored:
        by_reason[item["reason"]].append(str(next(iter(item.values())))[:100])
    parts = []
    for reason, entries in by_reason.items():
        more = len(entries) - NOTE_EXAMPLES
        parts.append(", ".join(entries[:NOTE_EXAMPLES]) + (f" and {more} more" if more > 0
                                                           else "") + f" ({reason})")
    return "; ".join(parts)


def on_alert_opened_incident(sender, alert, incident, **kwargs):
    """integration signal alert_opened_incident: send the alert's stakeholder message."""
    stakeholders = alert.extra.get("stakeholders") or {}
    if not stakeholders:
        return
    comms = alert.extra.get("stakeholders_comms") or {}
    recipients, dropped = resolve_stakeholders(stakeholders)
    if dropped:
        # Sent inside the processing transaction, after the alert's last save there.
        alert.extra["stakeholders_dropped"] = dropped
        alert.save(update_fields=["extra"])
    ignored = list(dropped)
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
    skipped = summary(ignored)
    TimelineEntry.objects.create(
        incident=incident, kind=TimelineEntry.Kind.NOTE,
        message=told + (f"; ignored: {skipped}" if skipped else ""),
        # The full list is on the alert and the notification; the note keeps the count.
        data={"stakeholders": recipients, "ignored": ignored[:NOTE_EXAMPLES],
              "ignored_count": len(ignored), "alert_id": alert.pk},
    )
