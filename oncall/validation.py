"""Checks shared by the REST API and the admin, so both accept and refuse the same input.
STUB parts are filled in by the helpers that own them (see each function)."""


def normalize_contact_address(kind: str, address: str) -> str:
    """The address in its stored form (E.164 for sms/voice, as given for email/ntfy);
    raises django.core.exceptions.ValidationError naming the problem. (channels helper)"""
    return address.strip()


def validate_time_zone(name: str) -> str:
    """An IANA zone name, or ValidationError. (engine helper)"""
    return name


def normalize_restrictions(value) -> list[dict]:
    """[{"weekdays": [0-6], "start": "HH:MM", "end": "HH:MM"}] checked and normalized, or
    ValidationError naming the entry at fault. (engine helper)"""
    return list(value or [])
