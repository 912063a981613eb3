"""Checks shared by the REST API and the admin, so both accept and refuse the same input.
STUB parts are filled in by the helpers that own them (see each function)."""

import functools
import re
import zoneinfo
from datetime import datetime
from urllib.parse import urlsplit

import phonenumbers
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

HANDOFF_YEARS = (1970, 2199)
# A notification rule's delay: the page's acknowledge link lasts 24 hours, so a message sent
# later could not be acknowledged from (docs/on-call.md#notification-rules-and-pages).
MAX_RULE_DELAY_MINUTES = 24 * 60
# An escalation step waits at most a day before the next one (acknowledge links last that long).
MAX_STEP_DELAY_MINUTES = 24 * 60
# A year of hours, days or weeks: longer shifts are a typo.
LONGEST_SHIFT = {"hourly": 24 * 366, "daily": 366, "weekly": 53}
CLOCK = re.compile(r"(?P<hours>[0-9]{1,2}):(?P<minutes>[0-9]{2})")
# ntfy's own rule for topic names (docs/on-call.md#contact-methods).
NTFY_TOPIC = re.compile(r"[-_A-Za-z0-9]{1,64}")
ADDRESS_MAX_CHARS = 500
CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f]")
Parse = phonenumbers.NumberParseException
PARSE_PROBLEMS = {
    Parse.INVALID_COUNTRY_CODE: "Not a phone number: unknown country code.",
    Parse.NOT_A_NUMBER: "Not a phone number.",
    Parse.TOO_SHORT_AFTER_IDD: "Not a phone number: too short.",
    Parse.TOO_SHORT_NSN: "Not a phone number: too short.",
    Parse.TOO_LONG: "Not a phone number: too long.",
}


def normalize_contact_address(kind: str, address: str) -> str:
    """The address in its stored form (E.164 for sms/voice, as given for email/ntfy);
    raises django.core.exceptions.ValidationError naming the problem. (channels helper)"""
    address = (address or "").strip()
    if not address:
        raise ValidationError("Enter an address.")
    if len(address) > ADDRESS_MAX_CHARS:
        raise ValidationError(f"At most {ADDRESS_MAX_CHARS} characters.")
    if kind == "email":
        validate_email(address)
        return address
    if kind in ("sms", "voice"):
        return normalize_phone_number(address)
    if kind == "ntfy":
        return normalize_ntfy_topic_url(address)
    raise ValidationError(f"Unknown kind of contact method: {kind!r}.")


def normalize_phone_number(text: str) -> str:
    """E.164 (+4915112345678) from what a person types ("+49 151 1234 5678")."""
    # Without a leading + the country is a guess (the portal has no "home" country), and a
    # page to the wrong country's number would reach nobody, or a stranger.
    if not text.startswith("+"):
        raise ValidationError("Give the number with its country code, starting with + "
                              "(for example +49 151 12345678).")
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException as exc:
        raise ValidationError(PARSE_PROBLEMS.get(exc.error_type, "Not a phone number.")) \
            from exc
    if not phonenumbers.is_valid_number(number):
        raise ValidationError("Not a valid phone number for its country code.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_ntfy_topic_url(url: str) -> str:
    """An http(s) URL of one topic on an ntfy server (https://ntfy.sh/my-topic)."""
    if CONTROL_OR_SPACE.search(url):
        raise ValidationError("The topic URL must not contain spaces or control characters.")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("Enter the topic's http:// or https:// URL, for example "
                              "https://ntfy.sh/my-topic.")
    if parts.username is not None or parts.password is not None:
        # The HTTP client sends no credentials from a URL; they would be dropped silently.
        raise ValidationError("Credentials in the URL are not used: give a protected "
                              "topic's access token as its ?auth= parameter instead.")
    try:
        parts.port  # noqa: B018 (raises on a port that is not a number)
    except ValueError as exc:
        raise ValidationError("The topic URL's port is not a number.") from exc
    topic = parts.path.rstrip("/").rsplit("/", 1)[-1]
    if not NTFY_TOPIC.fullmatch(topic):
        raise ValidationError("The URL must end with a topic name (letters, digits, - and _, "
                              "at most 64), for example https://ntfy.sh/my-topic.")
    if parts.fragment:
        raise ValidationError("The topic URL must not have a #fragment.")
    return url


def validate_rule_delay(minutes) -> int:
    """A notification rule's delay_minutes: a whole number from 0 to 1440, or
    ValidationError."""
    if type(minutes) is not int or not 0 <= minutes <= MAX_RULE_DELAY_MINUTES:
        raise ValidationError(f"Give a whole number of minutes from 0 to "
                              f"{MAX_RULE_DELAY_MINUTES}: acknowledge links last 24 hours.",
                              code="delay_minutes")
    return minutes


def validate_time_zone(name: str) -> str:
    """An IANA zone name (Europe/Berlin, UTC), or ValidationError."""
    if not isinstance(name, str) or name.strip() not in available_zones():
        raise ValidationError(
            f"“{name}” is not a known IANA time zone: use a name like Europe/Berlin, "
            "America/New_York or UTC.", code="time_zone")
    return name.strip()


# In the database but not places: "Factory" (a zone with no offset meant for unset
# machines) and "localtime" (the server's own zone, which a schedule must not depend on).
NOT_PLACES = {"Factory", "localtime"}


@functools.cache
def available_zones() -> frozenset:
    return frozenset(zoneinfo.available_timezones()) - NOT_PLACES


def normalize_restrictions(value) -> list[dict]:
    """[{"weekdays": [0-6], "start": "HH:MM", "end": "HH:MM"}] checked and normalized, or
    ValidationError naming the entry at fault. (engine helper)

    Weekdays: Monday = 0, no duplicates, stored sorted. A window whose end is not after
    its start passes midnight into the next day; start equal to end is the whole 24 hours
    from start (docs/on-call.md#restrictions)."""
    if value is None or value == "":
        return []
    if not isinstance(value, list):
        raise ValidationError("Restrictions must be a list of "
                              '{"weekdays": [0-6], "start": "HH:MM", "end": "HH:MM"}.',
                              code="restrictions")
    normalized = []
    for number, entry in enumerate(value, start=1):
        where = f"Restriction {number}"
        if not isinstance(entry, dict):
            raise ValidationError(f'{where}: must be an object with "weekdays", "start" and '
                                  '"end".', code="restrictions")
        unknown = sorted(set(entry) - {"weekdays", "start", "end"})
        if unknown:
            raise ValidationError(f"{where}: unknown key {unknown[0]!r}.", code="restrictions")
        weekdays = entry.get("weekdays")
        if not isinstance(weekdays, list) or not weekdays:
            raise ValidationError(f"{where}: weekdays must be a non-empty list of 0–6 "
                                  "(Monday = 0).", code="restrictions")
        for day in weekdays:
            if type(day) is not int or not 0 <= day <= 6:
                raise ValidationError(f"{where}: weekday {day!r} is not one of 0–6 "
                                      "(Monday = 0).", code="restrictions")
        if len(set(weekdays)) != len(weekdays):
            raise ValidationError(f"{where}: a weekday is listed twice.", code="restrictions")
        normalized.append({
            "weekdays": sorted(weekdays),
            "start": clock_time(entry.get("start"), f"{where}: start"),
            "end": clock_time(entry.get("end"), f"{where}: end"),
        })
    return normalized


def clock_time(value, where: str) -> str:
    """"HH:MM" from 00:00 to 23:59 (one-digit hours accepted), zero-padded."""
    match = CLOCK.fullmatch(value) if isinstance(value, str) else None
    if match is None or int(match["hours"]) > 23 or int(match["minutes"]) > 59:
        raise ValidationError(f"{where} must be a time “HH:MM” from 00:00 to 23:59, "
                              f"not {value!r}.", code="restrictions")
    return f"{int(match['hours']):02d}:{match['minutes']}"


def parse_handoff(value) -> datetime:
    """A rotation's handoff: a local wall-clock date-time "YYYY-MM-DDTHH:MM[:SS]" in the
    schedule's zone, without an offset (a naive datetime), or ValidationError."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            parsed = None
    else:
        parsed = None
    if parsed is None:
        raise ValidationError(f"handoff must be a local date and time like "
                              f"“2027-01-04T09:00”, not {value!r}.", code="handoff")
    if parsed.tzinfo is not None:
        raise ValidationError("handoff is a wall-clock time in the schedule's time zone: "
                              "give it without an offset (“2027-01-04T09:00”).",
                              code="handoff")
    if not HANDOFF_YEARS[0] <= parsed.year <= HANDOFF_YEARS[1]:
        raise ValidationError(f"handoff must be between {HANDOFF_YEARS[0]} and "
                              f"{HANDOFF_YEARS[1]}.", code="handoff")
    return parsed.replace(microsecond=0)


def validate_shift_length(kind: str, length) -> int:
    """How many hours, days or weeks a shift lasts: 1 up to a year's worth."""
    longest = LONGEST_SHIFT.get(kind)
    if longest is None:
        raise ValidationError(f"shift_kind must be one of {', '.join(LONGEST_SHIFT)}.",
                              code="shift_kind")
    if type(length) is not int or not 1 <= length <= longest:
        raise ValidationError(f"shift_length for {kind} shifts must be a whole number from "
                              f"1 to {longest}.", code="shift_length")
    return length


def validate_participants(value) -> list[int]:
    """A rotation's participants: a non-empty ordered list of existing user ids (a user
    may appear more than once: they then take more of the turns), or ValidationError."""
    if not isinstance(value, list) or not value:
        raise ValidationError("participants must be a non-empty list of user ids, in "
                              "rotation order.", code="participants")
    for user_id in value:
        if type(user_id) is not int:
            raise ValidationError(f"participants: {user_id!r} is not a user id.",
                                  code="participants")
    existing = set(get_user_model().objects.filter(pk__in=set(value))
                   .values_list("pk", flat=True))
    missing = [user_id for user_id in value if user_id not in existing]
    if missing:
        raise ValidationError(f"participants: there is no user {missing[0]}.",
                              code="participants")
    return list(value)
