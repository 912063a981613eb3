"""Alert mail (docs/email-integration.md, ServiceNow's email integration): the `key: value`
lines of a stored RFC 822 message turned into the fields of an alert.

Runs in the worker, on the raw message kept in the inbound event, so a parsing rule fixed
later applies when a failed event is reprocessed. Never fails on a strange body: whatever
cannot be read falls back to a default and leaves a warning on the alert.

Parsing takes time linear in the size of the mail, whatever its shape: no regex here can
backtrack over a run of spaces, and HTML is read by a scanner that moves forward only
(html.parser rescans the rest of the document after every `<` that opens no complete tag,
which made a 40 KB mail of `<a ` take 15 s).
"""

import html
import re
from datetime import UTC, datetime, timedelta
from email.contentmanager import raw_data_manager
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser, BytesParser
from email.policy import Compat32, compat32

from integrations import storable
from integrations.alert_fields import AlertFields
from integrations.models import AlertType

KNOWN_KEYS = [
    "severity", "description", "source", "source_id", "event_time", "resource_name", "type",
    "metric_name", "other_info",
]
DEFAULT_SEVERITY = 4

# ServiceNow's severities: 0 Clear, 1 Critical, 2 Major, 3 Minor, 4 Warning, 5 Info.
# (alert type that decides grouping, severity text given to an incident it opens)
SEVERITIES = {
    0: (AlertType.RESOLVED, "clear"),
    1: (AlertType.CRITICAL, "critical"),
    2: (AlertType.ERROR, "major"),
    3: (AlertType.WARNING, "minor"),
    4: (AlertType.WARNING, "warning"),
    5: (AlertType.INFO, "info"),
}

# A key is a word or a few (`source id`, `Source-ID`): letters, digits, spaces, - and _,
# up to 40 characters. It is matched only against the text before a line's first colon,
# stripped, so a long line costs one pass (the former whole-line regex backtracked over a
# run of spaces in the value: an 80 KB mail took 29 s).
KEY = re.compile(r"[A-Za-z][A-Za-z0-9_ \-]{0,39}")
# Epoch values from this one up are milliseconds: as seconds they would be past year 5000.
MILLISECONDS_FROM = 100_000_000_000
# An event time more than this after the mail arrived is a sender's mistake, not clock skew.
FUTURE_TOLERANCE = timedelta(days=1)
SUMMARY_LIMIT = 10_000
# Of a header value, only this many characters are read (a title keeps 500).
HEADER_LIMIT = 4_000


class BoundedHeaders(Compat32):
    """Header values as the text they are, cut at HEADER_LIMIT characters.

    The structured header parser of policy.default is quadratic on long address lists and
    parameter lists (a 20 KB From took 1 s, a 20 KB Content-Type 4 s), and compat32's
    parameter splitting is too, so the worker reads headers unparsed and only their start."""

    def header_fetch_parse(self, name, value):
        return super().header_fetch_parse(name, value[:HEADER_LIMIT])


def read_headers(raw: bytes) -> Message:
    """The header section of a message, unparsed, as ingest reads it to route the mail
    (recipients, Message-ID). Reading headers only, the parser never looks at a
    Content-Type, so this is one linear pass however long a header is; raw_items() then
    gives each value as it came (8-bit bytes as lone surrogates)."""
    return BytesHeaderParser(policy=compat32).parsebytes(raw)


def read_message(raw: bytes) -> EmailMessage:
    """The message as the worker reads it: see BoundedHeaders."""
    return BytesParser(_class=EmailMessage, policy=BoundedHeaders()).parsebytes(raw)


def part_text(part) -> str:
    """A text part decoded (quoted-printable, base64, charset); bad charsets are replaced."""
    try:
        return part.get_content(content_manager=raw_data_manager)
    except (LookupError, UnicodeError, KeyError):
        payload = part.get_payload(decode=True) or b""
        return payload.decode("utf-8", errors="replace")


# Tags that start a new line of text, that separate cells, and whose content is not text.
LINE_TAGS = {"br", "p", "div", "tr", "li", "table", "ul", "ol", "pre", "blockquote",
             "h1", "h2", "h3", "h4", "h5", "h6", "hr"}
CELL_TAGS = {"td", "th"}
HIDDEN_TAGS = {"script", "style", "head", "title"}
# A `<` that opens a tag, an end tag, a comment, a doctype or a processing instruction;
# any other `<` is text.
TAG_START = re.compile(r"<(?:/?[A-Za-z]|[!?])")
TAG_NAME = re.compile(r"(/?)([A-Za-z][A-Za-z0-9]*)")
HIDDEN_END = {tag: re.compile(f"</{tag}", re.IGNORECASE) for tag in HIDDEN_TAGS}
WHITESPACE = re.compile(r"\s+")


def html_text(data: str) -> str:
    # Line breaks in HTML source are spaces; only tags break lines.
    return WHITESPACE.sub(" ", html.unescape(data))


def html_to_text(source: str) -> str:
    """HTML to plain text, keeping the line structure that `key: value` parsing needs.

    Every step searches forward from the current position and moves past what it found, so
    each character is looked at a bounded number of times. A tag ends at the first `>` (a
    `>` inside a quoted attribute ends it early: good enough for alert mail); a `<` that
    starts no tag, or has no `>` after it, is text."""
    chunks: list[str] = []
    position, size = 0, len(source)
    while position < size:
        found = TAG_START.search(source, position)
        if found is None:
            chunks.append(html_text(source[position:]))
            break
        start = found.start()
        chunks.append(html_text(source[position:start]))
        if source.startswith("<!--", start):
            end = source.find("-->", start + 4)
            position = size if end == -1 else end + 3
            continue
        name = TAG_NAME.match(source, start + 1)
        end = source.find(">", start + 1)
        if end == -1:
            # No tag can close anywhere after this point: the rest is text.
            chunks.append(html_text(source[start:]))
            break
        position = end + 1
        if name is None:
            continue  # <!DOCTYPE …>, <?xml …?>
        closing, tag = name.group(1), name.group(2).lower()
        if tag in LINE_TAGS:
            chunks.append("\n")
        elif tag in CELL_TAGS and not closing:
            chunks.append(" ")
        elif tag in HIDDEN_TAGS and not closing and source[end - 1] != "/":
            hidden_end = HIDDEN_END[tag].search(source, position)
            if hidden_end is None:
                break
            closed = source.find(">", hidden_end.end())
            position = size if closed == -1 else closed + 1
    lines = (line.strip() for line in "".join(chunks).split("\n"))
    return "\n".join(line for line in lines if line)


def body_text(message: EmailMessage) -> str:
    """The text/plain body, else the text/html one converted to text, else ''.

    An empty text/plain part (providers add one to HTML-only mail) counts as none."""
    part = message.get_body(preferencelist=("plain",))
    text = part_text(part) if part is not None else ""
    if text.strip():
        return text
    part = message.get_body(preferencelist=("html",))
    if part is not None:
        return html_to_text(part_text(part))
    return text


def normalise_key(key: str) -> str:
    return re.sub(r"[\s\-]+", "_", key.strip().lower())


def key_value(line: str) -> tuple[str, str] | None:
    """(key, value) of a `key: value` line, both stripped; None for any other line."""
    key, colon, value = line.partition(":")
    key = key.strip()
    if not colon or len(key) > 40 or KEY.fullmatch(key) is None:
        return None
    return key, value.strip()


def key_values(text: str) -> dict[str, str]:
    """`key: value` lines; the first occurrence of a key wins. Quoted lines (`>`) are
    skipped and a signature (`-- `) ends the body, so replies and footers add nothing."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        if line.rstrip() == "--":
            break
        if line.lstrip().startswith(">"):
            continue
        pair = key_value(line)
        if pair:
            values.setdefault(normalise_key(pair[0]), pair[1])
    return values


def parse_severity(raw: str | None, warnings: list[str]) -> int:
    if raw is None or not raw.strip():
        warnings.append(f"No severity given; using {DEFAULT_SEVERITY}.")
        return DEFAULT_SEVERITY
    try:
        number = float(raw.strip())
    except ValueError:
        number = None
    if number is None or not number.is_integer() or int(number) not in SEVERITIES:
        warnings.append(f"Severity {raw!r} is not 0-5; using {DEFAULT_SEVERITY}.")
        return DEFAULT_SEVERITY
    return int(number)


def parse_event_time(raw: str | None, received_at: datetime, warnings: list[str]) -> datetime:
    """A UNIX epoch in seconds (milliseconds when clearly so); else the received time."""
    if raw is None or not raw.strip():
        warnings.append("No event_time given; using the time the mail was received.")
        return received_at
    try:
        seconds = float(raw.strip())
        if abs(seconds) >= MILLISECONDS_FROM:
            seconds /= 1000
        when = datetime.fromtimestamp(seconds, tz=UTC)
    except (ValueError, OverflowError, OSError):
        when = None
    if when is None or seconds < 0 or when > received_at + FUTURE_TOLERANCE:
        warnings.append(
            f"event_time {raw!r} is not a UNIX epoch in seconds or milliseconds up to a day "
            "after the mail arrived; using the time the mail was received."
        )
        return received_at
    return when


def header(message: EmailMessage, name: str) -> str:
    """A header's text, its encoded words (`=?utf-8?q?…?=`) decoded; 8-bit bytes that are
    no valid encoding become U+FFFD."""
    value = message.get(name)
    if value is None:
        return ""
    try:
        text = str(make_header(decode_header(value)))
    except (HeaderParseError, LookupError, UnicodeError, ValueError):
        text = str(value)
    return storable.text(text)


def alert_fields(raw: bytes, received_at: datetime) -> AlertFields:
    message = read_message(raw)
    # Mail may hold what no database stores (NUL, or 8-bit bytes read as lone surrogates).
    text = storable.text(body_text(message))
    values = key_values(text)
    warnings: list[str] = []
    severity = parse_severity(values.get("severity"), warnings)
    event_time = parse_event_time(values.get("event_time"), received_at, warnings)
    alert_type, severity_name = SEVERITIES[severity]
    subject = header(message, "Subject").strip()
    title = values.get("description") or subject or "Alert by email"
    payload = {
        **values,
        "email": {
            "subject": subject,
            "from": header(message, "From"),
            "message_id": header(message, "Message-ID"),
        },
    }
    return AlertFields(
        message=title[:500],
        summary=(values.get("other_info") or text.strip())[:SUMMARY_LIMIT],
        alert_type=alert_type,
        entity_id=values.get("source_id", "")[:255],
        payload=payload,
        extra={
            "severity": severity_name,
            "email_severity": severity,
            "event_time": event_time.isoformat(),
            **({"warnings": warnings} if warnings else {}),
        },
    )
