"""What a message to a person says, for each kind of contact method (docs/on-call.md).

A page's message is written when it is sent, not when it is recorded: a rule that runs 30
minutes after the page still carries an acknowledge link valid for 24 hours from then, and
the incident's title as it is now. Tests and handoff notices have no incident: their text
is written when they are recorded and sent as it is.

SMS is kept to one segment where it can be: 160 characters of the GSM-7 alphabet. One
character outside it (an emoji, a curly quote) would switch the whole message to UCS-2 and
its limit to 70, so such characters are replaced by a close ASCII letter or "?" instead.
"""

import unicodedata
from dataclasses import dataclass

from django.template.loader import render_to_string

from incidents.links import incident_url
from oncall.acklinks import ack_url

# GSM 03.38: the basic character set (one septet each) and the extension table (an escape
# septet plus one: two each).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€")
# Typographic punctuation that NFKD leaves alone but titles often hold.
PUNCTUATION = str.maketrans({"“": '"', "”": '"', "„": '"', "‘": "'", "’": "'", "‚": "'",
                             "–": "-", "—": "-", "…": "...", "\u00a0": " "})
SMS_SEGMENT_CHARS = 160
# Below this, a shortened title says too little to be worth one segment: keep more of it
# and let the message take several.
SMS_MIN_TITLE_CHARS = 20
SMS_LONG_TITLE_CHARS = 80
ELLIPSIS = "..."  # "…" is not in GSM-7
# Titles are cut for the channels that read them out or show them in one line.
VOICE_TITLE_CHARS = 200
PUSH_TITLE_CHARS = 200


@dataclass(frozen=True)
class Message:
    subject: str
    text: str
    # The acknowledge link the message carries ("" for tests and notices).
    link: str = ""
    # Email only: the HTML alternative.
    html: str = ""
    high_urgency: bool = False


def display_name(user) -> str:
    """How a message names a person: their full name, else their username."""
    return user.get_full_name() or user.username


def headline(incident) -> str:
    drill = "[DRILL] " if incident.drill else ""
    return f"{drill}#{incident.number} {incident.get_status_display().lower()}: {incident.title}"


def page_message(kind: str, incident, user) -> Message:
    """The message paging ``user`` about ``incident`` through a contact method of ``kind``."""
    link = ack_url(user.pk, incident.pk)
    high = incident.urgency == incident.Urgency.HIGH
    if kind == "sms":
        title = f"[DRILL] {incident.title}" if incident.drill else incident.title
        return Message("", sms_page_text(incident.number, title, link), link,
                       high_urgency=high)
    if kind == "voice":
        return Message("", voice_page_text(incident), link, high_urgency=high)
    context = {"incident": incident, "user": user, "ack_url": link,
               "incident_url": incident_url(incident.pk),
               "service": incident.service.name, "urgency": incident.get_urgency_display()}
    if kind == "ntfy":
        text = render_to_string("oncall/page_push.txt", context).strip()
        return Message(clip(headline(incident), PUSH_TITLE_CHARS), text, link,
                       high_urgency=high)
    subject = one_line(f"[Tocsin] {headline(incident)}")[:255]
    return Message(subject, render_to_string("oncall/page_email.txt", context), link,
                   render_to_string("oncall/page_email.html", context), high_urgency=high)


def message_for_test(kind: str, user, *, actor=None) -> Message:
    """A test through a contact method of ``kind``: proof that it reaches ``user``
    (``actor``, when someone else asked for it, is named)."""
    if kind == "voice":
        return Message("", "This is a test call from Tocsin. Your voice contact method "
                           "works. Goodbye.")
    if kind == "sms":
        return Message("", "This is a test message from Tocsin: your SMS contact method "
                           "works.")
    name = display_name(user)
    text = (f"This is a test message from Tocsin to {name}: this contact method works. "
            "Pages will arrive like this one, each with a link that acknowledges the "
            "incident.")
    if actor is not None and getattr(actor, "pk", None) != user.pk:
        text += f" Sent at the request of {display_name(actor)}."
    return Message("[Tocsin] Test message", text)


def sms_page_text(number: int, title: str, link: str) -> str:
    """"#42 <title> Ack: <link>" in one GSM-7 segment if the title can be shortened to fit;
    the link is never cut, so a long one makes the message take several segments."""
    head, tail = f"#{number} ", f" Ack: {link}"
    title = one_line(gsm7(title))
    if not title:
        return f"#{number} Ack: {link}"
    room = SMS_SEGMENT_CHARS - gsm7_length(head + tail)
    if gsm7_length(title) <= room:
        return head + title + tail
    if room < SMS_MIN_TITLE_CHARS:
        room = SMS_LONG_TITLE_CHARS
    return head + clip_gsm7(title, room) + tail


def voice_page_text(incident) -> str:
    drill = " This is a drill." if incident.drill else ""
    return (f"Tocsin.{drill} Incident {incident.number} on {one_line(incident.service.name)}: "
            f"{clip(one_line(incident.title), VOICE_TITLE_CHARS)}. Press 1 to acknowledge.")


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def gsm7(text: str) -> str:
    """``text`` in the GSM-7 alphabet: other characters become their ASCII base letter
    (NFKD without accents: "ł" stays "?", "ő" becomes "o") or "?"."""
    out = []
    for char in text.translate(PUNCTUATION):
        if char in GSM7_BASIC or char in GSM7_EXTENSION:
            out.append(char)
            continue
        plain = "".join(c for c in unicodedata.normalize("NFKD", char)
                        if not unicodedata.combining(c))
        out.append(plain if plain and all(c in GSM7_BASIC for c in plain) else "?")
    return "".join(out)


def gsm7_length(text: str) -> int:
    """Septets: extension characters count twice."""
    return sum(2 if char in GSM7_EXTENSION else 1 for char in text)


def clip_gsm7(text: str, room: int) -> str:
    """At most ``room`` septets, ending in "..." when cut."""
    kept, used = [], gsm7_length(ELLIPSIS)
    for char in text:
        used += gsm7_length(char)
        if used > room:
            break
        kept.append(char)
    return "".join(kept).rstrip() + ELLIPSIS
