"""Values made safe to store in every supported database.

Ingest accepts what senders send, and some of it cannot be stored as it is: a lone surrogate
(an 8-bit mail header read with surrogateescape, or `"\\ud800"` in JSON) cannot be encoded
as UTF-8, PostgreSQL refuses NUL in text and jsonb, and NaN or Infinity (which Python's
JSON parser accepts) are not JSON at all. An event holding any of them must still complete,
so the text is repaired rather than refused.
"""

import math
import re

# Lone surrogates and NUL; each becomes U+FFFD, the usual mark of an unreadable character.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
REPLACEMENT = "\ufffd"
# Non-finite floats are kept as the words JavaScript and Python's JSON module spell them.
NON_FINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}


def text(value: str) -> str:
    return UNSTORABLE.sub(REPLACEMENT, value)


def number(value: float) -> float | str:
    if math.isfinite(value):
        return value
    return NON_FINITE.get(value, "NaN")


def json_value(value):
    """A copy of a JSON-like value (dicts, lists, strings, numbers) that any JSONField can
    store. Walked with a stack, not recursion, so no nesting the JSON parser accepted can
    exhaust Python's recursion limit here."""
    root: list = [None]
    pending = [(root, 0, value)]
    while pending:
        holder, slot, item = pending.pop()
        if isinstance(item, dict):
            copy: dict = {}
            for key, inner in item.items():
                key = text(key) if isinstance(key, str) else key
                copy[key] = None  # keeps the keys' order; filled in from the stack
                pending.append((copy, key, inner))
            holder[slot] = copy
        elif isinstance(item, (list, tuple)):
            copy_list: list = [None] * len(item)
            pending.extend((copy_list, index, inner) for index, inner in enumerate(item))
            holder[slot] = copy_list
        elif isinstance(item, str):
            holder[slot] = text(item)
        elif isinstance(item, float):
            holder[slot] = number(item)
        else:
            holder[slot] = item
    return root[0]
