"""Checks shared by the REST API and the admin, so both accept and refuse the same input.
STUB parts are filled in by the helpers that own them (see each function)."""

import re
from urllib.parse import urlsplit

import phonenumbers
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

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


def validate_time_zone(name: str) -> str:
    """An IANA zone name, or ValidationError. (engine helper)"""
    return name


def normalize_restrictions(value) -> list[dict]:
    """[{"weekdays": [0-6], "start": "HH:MM", "end": "HH:MM"}] checked and normalized, or
    ValidationError naming the entry at fault. (engine helper)"""
    return list(value or [])
