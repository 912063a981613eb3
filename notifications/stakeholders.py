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

This runs inside the transaction that processes the alert, holding its locks, so the work
is bounded too: at most ``ENTRIES_PER_RECIPIENT`` entries per allowed recipient are read,
names are looked up a chunk at a time, and the record of what was dropped has a size cap.
"""

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db.models import Q, Value
from django.db.models.functions import Upper

from incidents.links import incident_url
from incidents.models import Team, TimelineEntry
from notifications.models import NotificationType
from notifications.records import Email, record
from tocsin.ids import as_id

DOMAIN_REFUSED = "domain not allowed for stakeholder email"
NO_PLAIN_ADDRESSES = "plain addresses are not allowed (no stakeholder email domain is set)"
NO_USER = "no active user with an email address"
NO_TEAM = "no such team"
NO_MEMBERS = "the team has no members with email"
# How many dropped entries of one reason the timeline note spells out.
NOTE_EXAMPLES = 5
# Entries read per recipient an alert may reach (500 with the default 50). A name that
# matches nobody takes no recipient slot, so without this bound 100,000 unknown names in one
# body would all be looked up while the alert's locks are held.
ENTRIES_PER_RECIPIENT = 10
# Names looked up per query. A users query binds up to three values per name, well inside
# SQLite's limit on bound variables (999 before SQLite 3.32).
LOOKUP_CHUNK = 300
# Dropped entries are recorded one by one while the record stays under this many bytes of
# JSON, and only counted (per reason) after that: the record is stored on the alert and the
# notification and shown by the API, so 100,000 dropped names must not make it a megabyte.
RECORD_BYTES = 16_000
# A recorded entry is cut to this many characters (the longest email address).
RECORDED_CHARS = 254


def as_list(value) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def over_limit(limit: int) -> str:
    return f"over the limit of {limit} recipients per alert"


def unread(limit: int) -> str:
    return f"not examined: over the limit of {limit} entries per alert"


def recordable(value):
    """``value`` as it is recorded: a short string, number, boolean or null as sent,
    anything else as text, cut to RECORDED_CHARS."""
    scalar = value is None or isinstance(value, bool | int | float)
    if scalar and len(str(value)) <= RECORDED_CHARS:
        return value
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= RECORDED_CHARS else text[:RECORDED_CHARS] + "…"


class Dropped:
    """What was not mailed, each with its reason, in order. Entries are recorded one by one
    while the record stays under RECORD_BYTES; from the first that does not fit on, they are
    only counted, and listed at the end as ``{"more": count, "reason": reason}``."""

    def __init__(self):
        self.items: list[dict] = []
        self.size = 0
        self.recording = True
        self.more: Counter = Counter()

    def add(self, kind: str, value, reason: str) -> None:
        if self.recording:
            item = {kind: recordable(value), "reason": reason}
            size = len(json.dumps(item)) + 2  # and the ", " between items
            if self.size + size <= RECORD_BYTES:
                self.items.append(item)
                self.size += size
                return
            self.recording = False
        self.more[reason] += 1

    def add_all(self, kind: str, values: list, reason: str) -> None:
        for position, value in enumerate(values):
            if not self.recording:
                self.more[reason] += len(values) - position
                return
            self.add(kind, value, reason)

    def as_list(self) -> list[dict]:
        return self.items + [{"more": count, "reason": reason}
                             for reason, count in self.more.items()]


class Stakeholders:
    """Turns an alert's ``stakeholders`` into at most ``limit`` unique addresses (users
    first, then teams, then plain addresses, in the order given) and the list of what was
    dropped, each entry with its reason."""

    def __init__(self, limit: int, domains):
        self.limit = max(0, limit)
        self.entry_limit = self.limit * ENTRIES_PER_RECIPIENT
        self.examined = 0
        self.domains = {normal_domain(d) for d in domains} - {""}
        self.addresses: dict[str, str] = {}  # lower-cased → as found, in order
        self.dropped = Dropped()

    def full(self) -> bool:
        return len(self.addresses) >= self.limit

    def add(self, address: str) -> None:
        """Keep ``address`` unless it is already kept; past the limit, drop it. Counting
        unique final addresses (after teams are expanded) bounds the mail, not the list."""
        key = address.lower()
        if key in self.addresses:
            return
        if self.full():
            self.dropped.add("address", address, over_limit(self.limit))
        else:
            self.addresses[key] = address

    def entries(self, kind: str, value, look_up: Callable[[list], list]) -> Iterator[tuple]:
        """(entry, what ``look_up`` found for it) for the entries of one list, looked up
        LOOKUP_CHUNK at a time. Once the recipient limit is reached nothing more can be
        mailed, and past the entry limit nothing more is read: the rest is dropped unread,
        so a list of 100,000 names costs no 100,000 queries, nor 100,000 / LOOKUP_CHUNK."""
        entries = as_list(value)
        position = 0
        while position < len(entries):
            size = min(LOOKUP_CHUNK, self.entry_limit - self.examined)
            if self.full() or size <= 0:
                reason = over_limit(self.limit) if self.full() else unread(self.entry_limit)
                self.dropped.add_all(kind, entries[position:], reason)
                return
            chunk = entries[position:position + size]
            self.examined += len(chunk)
            position += len(chunk)
            for entry, found in zip(chunk, look_up(chunk), strict=True):
                # A chunk is looked up at once, but its slots are still given in order.
                if self.full():
                    self.dropped.add(kind, entry, over_limit(self.limit))
                else:
                    yield entry, found

    def resolve(self, stakeholders) -> tuple[list[str], list[dict]]:
        if not isinstance(stakeholders, dict):
            self.dropped.add("stakeholders", stakeholders, "not an object")
            return [], self.dropped.as_list()
        self.users(stakeholders.get("users"))
        self.teams(stakeholders.get("teams"))
        self.plain(stakeholders.get("emails"))
        addresses = [address.lower() for address in self.addresses.values()]
        return addresses, self.dropped.as_list()

    def users(self, value) -> None:
        for entry, email in self.entries("users", value, find_users):
            if email is None:
                self.dropped.add("users", entry, NO_USER)
            else:
                self.add(email)

    def teams(self, value) -> None:
        for entry, emails in self.entries("teams", value, find_teams):
            if emails is None:
                self.dropped.add("teams", entry, NO_TEAM)
            elif not emails:
                self.dropped.add("teams", entry, NO_MEMBERS)
            for address in emails or ():
                self.add(address)

    def plain(self, value) -> None:
        for entry, _ in self.entries("emails", value, lambda chunk: chunk):
            address = str(entry).strip()
            try:
                validate_email(address)
            except ValidationError:
                self.dropped.add("emails", entry, "not an email address")
                continue
            # Exact match: "evil.com.example.org" is not "example.org", and neither is any
            # other subdomain unless listed; whoever runs Tocsin lists each one it mails.
            if normal_domain(address.rsplit("@", 1)[1]) not in self.domains:
                self.dropped.add("emails", entry, DOMAIN_REFUSED
                                 if self.domains else NO_PLAIN_ADDRESSES)
                continue
            self.add(address)


# Names match as ``iexact`` matched them when each was looked up alone: the database folds
# both sides with UPPER(), as iexact does on PostgreSQL (on SQLite both ignore the case of
# ASCII letters only). The database picks the candidates; Python pairs them with the entries
# of the chunk, folding with str.upper. That agrees with the database but for letters that
# upper-case to two (ß → SS), which may pair differently, and never with someone no entry
# of the chunk named.


def matching(texts: list[str]) -> tuple[list[Upper], set[int]]:
    """The folded names and the ids to look ``texts`` up by."""
    names = [Upper(Value(text)) for text in dict.fromkeys(texts)]
    return names, {number for number in map(as_id, texts) if number is not None}


def first_match(text: str, by_id: dict, by_name: dict):
    """What the first candidate (in the order the database gave them) matching ``text``
    by id or by folded name is ranked at, or None."""
    ranks = [by_id.get(as_id(text)), by_name.get(text.upper())]
    return min((rank for rank in ranks if rank is not None), default=None)


def find_users(entries: list) -> list[str | None]:
    """The address of the active user each entry names by username, email or id, or None.
    Where several match, the lowest id wins, as ``.first()`` chose."""
    texts = [str(entry).strip() for entry in entries]
    names, ids = matching(texts)
    candidates = list(
        get_user_model().objects.filter(is_active=True).exclude(email="")
        .annotate(folded_username=Upper("username"), folded_email=Upper("email"))
        .filter(Q(folded_username__in=names) | Q(folded_email__in=names) | Q(pk__in=ids))
        .order_by("pk").values_list("pk", "username", "email")
    )
    by_id, by_name = {}, {}
    for rank, (pk, username, email) in enumerate(candidates):
        by_id[pk] = rank
        by_name.setdefault(username.upper(), rank)
        by_name.setdefault(email.upper(), rank)
    ranks = [first_match(text, by_id, by_name) for text in texts]
    return [None if rank is None else candidates[rank][2] for rank in ranks]


def find_teams(entries: list) -> list[list[str] | None]:
    """The addresses of the active members (by id) of the team each entry names by name or
    id, or None. Where several match, the first by name wins, as ``.first()`` chose."""
    texts = [str(entry).strip() for entry in entries]
    names, ids = matching(texts)
    candidates = list(
        Team.objects.annotate(folded_name=Upper("name"))
        .filter(Q(folded_name__in=names) | Q(pk__in=ids))
        .order_by("name").values_list("pk", "name")
    )
    by_id, by_name = {}, {}
    for rank, (pk, name) in enumerate(candidates):
        by_id[pk] = rank
        by_name.setdefault(name.upper(), rank)
    ranks = [first_match(text, by_id, by_name) for text in texts]
    teams = {candidates[rank][0] for rank in ranks if rank is not None}
    members = defaultdict(list)
    if teams:
        memberships = (Team.members.through.objects
                       .filter(team_id__in=teams, user__is_active=True)
                       .exclude(user__email="").order_by("user_id")
                       .values_list("team_id", "user__email"))
        for team, email in memberships:
            members[team].append(email)
    return [None if rank is None else members[candidates[rank][0]] for rank in ranks]


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
        ignored.append({"timezone": recordable(name), "reason": "unknown timezone; UTC used"})
        return ZoneInfo("UTC")


def counted(ignored: list[dict]) -> int:
    """How many entries ``ignored`` stands for, counting those only counted."""
    return sum(item.get("more", 1) for item in ignored)


def summary(ignored: list[dict]) -> str:
    """The ignored entries grouped by reason, a few of each spelled out: a note for 2,000
    dropped addresses stays one line long."""
    examples, counts = defaultdict(list), Counter()
    for item in ignored:
        reason = item["reason"]
        counts[reason] += item.get("more", 1)
        if "more" not in item:
            examples[reason].append(str(next(iter(item.values())))[:100])
    parts = []
    for reason, count in counts.items():
        shown = examples[reason][:NOTE_EXAMPLES]
        more = count - len(shown)
        if not shown:
            parts.append(f"{count} entries ({reason})")
            continue
        parts.append(", ".join(shown) + (f" and {more} more" if more > 0 else "")
                     + f" ({reason})")
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
        facts=facts, url=incident_url(incident.pk),
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
              "ignored_count": counted(ignored), "alert_id": alert.pk},
    )
