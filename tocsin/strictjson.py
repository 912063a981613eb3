"""Strict JSON for everything Tocsin stores from a request: the ingest webhooks' bodies and
the REST API's request bodies (docs/security.md).

Python's json module accepts what JSON has no room for and the database cannot store:
NaN and Infinity (json.dumps writes them), numbers out of float range (1e999), lone
surrogate escapes (\\ud800) and NUL characters (PostgreSQL text and jsonb refuse them).
Accepting such a body would turn into a failure later, after a 200 or 201 was given, or
into a 500 when the answer echoes the text back. So they are refused where they arrive,
naming where they were found.
"""

import json
import math

# Real alert payloads and configurations nest a few levels; a bound here means nothing
# later (storing, mapping, rendering) can run out of recursion on an accepted document.
MAX_DEPTH = 64


class JSONProblem(ValueError):
    """A body that is JSON but cannot be stored as it is: `path` names the place."""

    def __init__(self, path: str, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class NotANumber(str):
    """NaN, Infinity or a number out of float range, kept as written while parsing so the
    refusal can name where it was."""


def _finite_float(text: str):
    value = float(text)
    return NotANumber(text[:40]) if math.isinf(value) else value


def _path(parts: tuple) -> str:
    return ".".join(str(part) for part in parts) or "body"


def string_problem(text: str) -> str | None:
    if "\x00" in text:
        return "contains a NUL character (\\u0000), which cannot be stored"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate escape (such as \\ud800), which is not text"
    return None


def document_problem(data) -> tuple[str, str] | None:
    """The first (path, problem) that would keep a parsed document from being stored as
    it is, or None. Walked without recursion, so any depth is safe to look at."""
    stack = [((), data)]
    while stack:
        parts, value = stack.pop()
        if len(parts) > MAX_DEPTH:
            return "body", f"nests deeper than {MAX_DEPTH} levels"
        if isinstance(value, NotANumber):
            return _path(parts), f"is {value}, which is not a number JSON can carry"
        if isinstance(value, float) and not math.isfinite(value):
            return _path(parts), f"is {value}, which is not a number JSON can carry"
        if isinstance(value, str):
            problem = string_problem(value)
            if problem:
                return _path(parts), problem
        elif isinstance(value, dict):
            for key, item in value.items():
                problem = string_problem(key)
                if problem:
                    return _path(parts), f"has a key that {problem}"
                stack.append(((*parts, key), item))
        elif isinstance(value, list):
            stack.extend(((*parts, index), item) for index, item in enumerate(value))
    return None


def loads(body: bytes | str):
    """Parse strictly. Raises JSONProblem naming the path, or ValueError (which includes
    UnicodeDecodeError) for text that is not JSON at all."""
    try:
        data = json.loads(body, parse_constant=NotANumber, parse_float=_finite_float)
    except RecursionError:
        raise JSONProblem("body", f"nests deeper than {MAX_DEPTH} levels") from None
    found = document_problem(data)
    if found:
        raise JSONProblem(*found)
    return data
