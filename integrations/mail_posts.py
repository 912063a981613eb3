"""Reading the body of an inbound mail webhook post (integrations.anymail_urls) with bounded
work, before django-anymail sees it (docs/email-integration.md, "Repeats, rate limit and
size").

- Multipart form posts (Mailgun, SendGrid) are split here, whatever their size, instead of
  by Django's parser: Django's applies DATA_UPLOAD_MAX_NUMBER_FILES (100) and
  DATA_UPLOAD_MAX_MEMORY_SIZE, which are right for the admin and the API but would refuse
  a small mail with many attachments while a larger one passed.
- A raw message carried in a post (Mailgun's `body-mime`, SendGrid's `email`, Postmark's
  `RawEmail`, Mandrill's `raw_msg`, MailerSend's `raw`, SparkPost's `email_rfc822`) is
  parsed by anymail with the email package's structured header parser, which costs tens
  of microseconds a byte on parameter lists and more on long ones (a 40 KB Content-Type
  took 2.5 s). Such a message with an absurd header section is refused before anymail
  parses it: see raw_mime_problem.
"""

import base64
import contextlib
import json
import re
from itertools import pairwise

from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import QueryDict
from django.utils.datastructures import MultiValueDict
from django.utils.http import parse_header_parameters

# A form post holds at most this many parts (fields and files together).
MAX_FORM_PARTS = 10_000
# The header block of one form part (its Content-Disposition and Content-Type).
MAX_PART_HEADER_BYTES = 2 * 1024
# The header section of a raw message, and any one header field in it (unfolded).
MAX_HEADER_SECTION = 64 * 1024
MAX_HEADER_FIELD = 8 * 1024
# All Content-Type fields of a raw message together, its parts' included: the parser
# reads every one of them with the structured parser while splitting the message.
MAX_CONTENT_TYPES = 32 * 1024
# Fields (form fields or JSON keys, at any depth) that hold a raw message.
RAW_MIME_FIELDS = {"body-mime", "email", "RawEmail", "raw_msg", "raw", "email_rfc822"}
# A form field that holds JSON to look into (Mandrill's `mandrill_events`).
JSON_FIELDS = {"mandrill_events"}
BLANK_LINE = re.compile(r"\r?\n\r?\n")
FIELD_START = re.compile(r"^(?=\S)", re.MULTILINE)
CONTENT_TYPE_FIELD = re.compile(
    r"^content-type:[^\n]*(?:\n[ \t][^\n]*)*", re.IGNORECASE | re.MULTILINE
)


class MalformedPost(ValueError):
    """The post cannot be read within the limits: answered 400."""


def part_fields(head: bytes) -> tuple[dict[str, str], str, str]:
    """(Content-Disposition parameters, content type, transfer encoding) of a form part."""
    disposition: dict[str, str] = {}
    content_type, encoding = "text/plain", ""
    for line in head.decode("latin-1").replace("\r\n", "\n").split("\n"):
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-disposition":
            disposition = parse_header_parameters(value)[1]
        elif name == "content-type":
            content_type = value.strip() or content_type
        elif name == "content-transfer-encoding":
            encoding = value.strip().lower()
    return disposition, content_type, encoding


def form_data(content_type: str, body: bytes) -> tuple[QueryDict, MultiValueDict]:
    """A multipart/form-data body as Django's request.POST and request.FILES, read in one
    pass (bytes.split) with MAX_FORM_PARTS parts and MAX_PART_HEADER_BYTES of headers
    each at most; MalformedPost otherwise."""
    try:
        boundary = parse_header_parameters(content_type)[1].get("boundary", "")
        delimiter = b"--" + boundary.encode("latin-1")
    except ValueError:  # a bad RFC 2231 encoding, a boundary beyond Latin-1
        boundary = ""
    if not boundary or len(boundary) > 200:
        raise MalformedPost("multipart/form-data without a usable boundary")
    # Lines end in CRLF (RFC 7578); a sender that writes bare LF is read alike.
    newline = b"\n" if body.startswith(delimiter + b"\n") else b"\r\n"
    chunks = (newline + body).split(newline + delimiter)
    if len(chunks) - 2 > MAX_FORM_PARTS:
        raise MalformedPost(f"more than {MAX_FORM_PARTS} form parts")
    post, files = QueryDict(mutable=True), MultiValueDict()
    # chunks[0] is the preamble; the part after the closing delimiter starts with "--".
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break
        head, separator, payload = chunk.partition(newline * 2)
        if not separator or len(head) > MAX_PART_HEADER_BYTES:
            raise MalformedPost("a form part without a header block, or with one over "
                                f"{MAX_PART_HEADER_BYTES} bytes")
        try:
            disposition, part_type, encoding = part_fields(head)
            mime_type, parameters = parse_header_parameters(part_type)
        except ValueError as exc:  # parameters in a bad RFC 2231 encoding
            raise MalformedPost(f"a form part with unreadable headers ({exc})") from None
        name = disposition.get("name")
        if not name:
            continue
        if encoding == "base64":
            # A part we cannot decode is kept as sent rather than losing the mail with it.
            with contextlib.suppress(ValueError):
                payload = base64.b64decode(payload, validate=False)
        filename = disposition.get("filename")
        if filename is None:
            charset = parameters.get("charset") or "utf-8"
            try:
                post.appendlist(name, payload.decode(charset, "replace"))
            except (LookupError, ValueError):  # no such codec, or one like idna that
                # refuses instead of replacing: read it as UTF-8, as most senders mean
                post.appendlist(name, payload.decode("utf-8", "replace"))
        else:
            files.appendlist(name, SimpleUploadedFile(filename, payload, mime_type))
    post._mutable = False
    return post, files


def raw_mime_problem(message: str) -> str:
    """Why a raw message's headers are too absurd to be parsed, or ''. One pass of
    searches, no parsing; the caps are far above what mail servers and providers write."""
    blank = BLANK_LINE.search(message, 0, MAX_HEADER_SECTION + 4)
    end = blank.start() if blank else len(message)
    if end > MAX_HEADER_SECTION:
        return f"its header section is over {MAX_HEADER_SECTION} bytes"
    starts = [found.start() for found in FIELD_START.finditer(message, 0, end)] + [end]
    if any(after - before > MAX_HEADER_FIELD for before, after in pairwise(starts)):
        return f"a header field is over {MAX_HEADER_FIELD} bytes"
    total = 0
    for found in CONTENT_TYPE_FIELD.finditer(message):
        total += found.end() - found.start()
        if total > MAX_CONTENT_TYPES:
            return f"its Content-Type fields are over {MAX_CONTENT_TYPES} bytes together"
    return ""


def raw_messages(value, name: str = ""):
    """The raw messages held by a form field or JSON value, at any depth. Walked with a
    stack, like integrations.storable.json_value, so no nesting exhausts the recursion
    limit."""
    pending = [(name, value)]
    while pending:
        key, item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.items())
        elif isinstance(item, list):
            pending.extend((key, inner) for inner in item)
        elif isinstance(item, str) and key in RAW_MIME_FIELDS:
            yield item


def post_problem(request) -> str:
    """Why a post's raw messages cannot be parsed within bounds, or ''. Looks at form
    fields (after form_data) and JSON bodies; base64-encoded messages (Postal, Amazon
    SES, SparkPost's base64 option) are not decoded here."""
    values: list = []
    if request.content_type == "application/json":
        try:
            values.append(json.loads(request.body))
        except (ValueError, RecursionError):
            return ""  # anymail refuses it as malformed
    elif request.content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        for name, items in request.POST.lists():
            for item in items:
                if name in JSON_FIELDS:
                    try:
                        item = json.loads(item)
                    except (ValueError, RecursionError):
                        continue
                values.append({name: item})
    for value in values:
        for message in raw_messages(value):
            problem = raw_mime_problem(message)
            if problem:
                return f"a raw message in the post is refused: {problem}"
    return ""
