"""The regular expressions users write in mapping and rule conditions (`matches`).

They run on RE2, whose matching time grows linearly with the text, so a pattern such as
^(a+)+$ cannot hold a worker (Python's re backtracks exponentially on it). RE2 refuses what
it cannot run in linear time (backreferences, lookaround); see docs/mapping-and-rules.md.
"""

import re2
from django.conf import settings


class RegexError(ValueError):
    """A pattern that RE2 refuses or that is over TOCSIN_MAX_REGEX_LENGTH; the message says
    which, for the user."""


def _regex_options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # refusals are reported to the user, not to stderr
    # Only whether it matches counts: without groups to fill, a match is found by RE2's
    # DFA alone, never by its slower submatch engines.
    options.never_capture = True
    return options


REGEX_OPTIONS = _regex_options()
# RE2's own words for what Python allows and it does not, and what to say instead.
REGEX_HINTS = (
    ("invalid perl operator: (?=", "lookahead (?=…) is not supported"),
    ("invalid perl operator: (?!", "negative lookahead (?!…) is not supported"),
    ("invalid perl operator: (?<=", "lookbehind (?<=…) is not supported"),
    ("invalid perl operator: (?<!", "negative lookbehind (?<!…) is not supported"),
    ("invalid perl operator: (?P", "backreferences (?P=name) are not supported"),
    ("invalid escape sequence: \\Z", "\\Z is written \\z in RE2"),
)


def compile_regex(pattern: str):
    """The RE2 regex for a `matches` value; raises RegexError naming the problem."""
    limit = settings.TOCSIN_MAX_REGEX_LENGTH
    if len(pattern) > limit:
        raise RegexError(
            f"regular expression is {len(pattern)} characters long; the limit is {limit}"
        )
    try:
        return re2.compile(pattern, REGEX_OPTIONS)
    except UnicodeEncodeError:
        raise RegexError(
            f"bad regular expression {pattern!r}: it holds an unpaired surrogate"
        ) from None
    except re2.error as exc:
        raw = exc.args[0] if exc.args else b"refused"
        reason = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        if reason.startswith("invalid escape sequence: \\") and reason[-1:].isdigit():
            reason += " (backreferences are not supported)"
        else:
            reason = next((f"{reason} ({hint})" for start, hint in REGEX_HINTS
                           if reason.startswith(start)), reason)
        raise RegexError(
            f"bad regular expression {pattern!r}: {reason} (RE2 syntax, see "
            f"docs/mapping-and-rules.md)"
        ) from None


def regex_error(pattern: str) -> str | None:
    try:
        compile_regex(pattern)
    except RegexError as exc:
        return str(exc)
    return None


def search(pattern, text: str) -> bool:
    # Text is handed over as UTF-8 bytes: a payload may hold an unpaired surrogate
    # ("\ud800" is valid JSON), which str.encode would refuse.
    return pattern.search(text.encode("utf-8", "surrogatepass")) is not None
