"""Ids named in what senders write (payloads, stakeholder lists, rules)."""

# Primary keys are 64-bit; a larger number names nothing (and SQLite would overflow on it).
MAX_ID = 2**63 - 1


def as_id(value) -> int | None:
    """The id a value names: an integer, or ASCII digits (str.isdigit also takes "²" and
    "١٢", which are no ids), within the 64-bit range; None for anything else."""
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    if not (text.isascii() and text.isdigit()):
        return None
    number = int(text)
    return number if number <= MAX_ID else None
