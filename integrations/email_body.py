"""Alert mail (PRODUCT.md §3.3, ServiceNow's email integration): the `key: value` lines of a
stored RFC 822 message turned into the fields of an alert.

Runs in the worker, on the raw message kept in the inbound event, so a parsing rule fixed
later applies when a failed event is reprocessed. Never fails on a strange body: whatever
cannot be read falls back to a default and leaves a warning on the alert.
"""

import re
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from html.parser import HTMLParser

from integrations.generic import AlertFields
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

# A key is a word or a few (`source id`, `Source-ID`): letters, digits, spaces, - and _.
KEY_LINE = re.compile(r"^\s*(?P<key>[A-Za-z][A-Za-z0-9_ \-]{0,39}?)\s*:\s*(?P<value>.*?)\s*$")
# Epoch values from this one up are milliseconds: as seconds they would be past year 5000.
MILLISECONDS_FROM = 100_000_000_000
# An event time more than this after the mail arrived is a sender's mistake, not clock skew.
FUTURE_TOLERANCE = timedelta(days=1)
SUMMARY_LIMIT = 10_000


def parse_message(raw: bytes) -> EmailMessage:
    return BytesParser(policy=policy.default).parsebytes(raw)


def part_text(part) -> str:
    """A text part decoded (quoted-printable, base64, charset); bad charsets are replaced."""
    try:
        return part.get_content()
    except (LookupError, UnicodeError, KeyError):
        payload = part.get_payload(decode=True) or b""
        return payload.decode("utf-8", errors="replace")


class _TextExtractor(HTMLParser):
    """HTML to plain text, keeping the line structure that `key: value` parsing needs."""

    LINE_TAGS = {"br", "p", "div", "tr", "li", "table", "ul", "ol", "pre", "blockquote",
                 "h1", "h2", "h3", "h4", "h5", "h6", "hr"}
    CELL_TAGS = {"td", "th"}
    HIDDEN_TAGS = {"script", "style", "head", "title"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag, attrs):
        if tag in self.HIDDEN_TAGS:
            self.hidden += 1
        elif tag in self.LINE_TAGS:
            self.chunks.append("\n")
        elif tag in self.CELL_TAGS:
            self.chunks.append(" ")

    def handle_startendtag(self, tag, attrs):
        if tag in self.LINE_TAGS:
            self.chunks.append("\n")

    def handle_endtag(self, tag):
        if tag in self.HIDDEN_TAGS:
            self.hidden = max(0, self.hidden - 1)
        elif tag in self.LINE_TAGS:
            self.chunks.append("\n")

    def handle_data(self, data):
        if not self.hidden:
            # Line breaks in HTML source are spaces; only tags break lines.
            self.chunks.append(re.sub(r"\s+", " ", data))


def html_to_text(html: str) -> str:
    extractor = _TextExtractor()
    extractor.feed(html)
    extractor.close()
    lines = (line.strip() for line in "".join(extractor.chunks).split("\n"))
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


def key_values(text: str) -> dict[str, str]:
    """`key: value` lines; the first occurrence of a key wins. Quoted lines (`>`) are
    skipped and a signature (`-- `) ends the body, so replies and footers add nothing."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        if line.rstrip() == "--":
            break
        if line.lstrip().startswith(">"):
            continue
        match = KEY_LINE.match(line)
        if match:
            values.setdefault(normalise_key(match.group("key")), match.group("value"))
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


def alert_fields(raw: bytes, received_at: datetime) -> AlertFields:
    message = parse_message(raw)
    text = body_text(message)
    values = key_values(text)
    warnings: list[str] = []
    severity = parse_severity(values.get("severity"), warnings)
    event_time = parse_event_time(values.get("event_time"), received_at, warnings)
    alert_type, severity_name = SEVERITIES[severity]
    subject = str(message.get("Subject", "") or "").strip()
    title = values.get("description") or subject or "Alert by email"
    payload = {
        **values,
        "email": {
            "subject": subject,
            "from": str(message.get("From", "") or ""),
            "message_id": str(message.get("Message-ID", "") or ""),
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
