"""ntfy push: POST <topic URL> with the text as body and the headers Title, Priority (5,
"urgent", for a high-urgency incident; 3, the default, otherwise) and Click (the
acknowledge link the notification opens). The topic URL is user input: it goes through
the private-address guard like any destination's URL."""

import base64
import re

from oncall.messages import Message
from oncall.models import PersonalNotification
from tocsin.transport import Result, http

HIGH_PRIORITY, DEFAULT_PRIORITY = "5", "3"
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]+")


def header_value(text: str) -> str:
    """A value http.client can send (it encodes headers as Latin-1 and refuses line
    breaks): ASCII as it is, anything else as an RFC 2047 encoded word, which ntfy
    decodes ("=?UTF-8?B?…?=")."""
    text = CONTROL_CHARACTERS.sub(" ", text).strip()
    if text.isascii():
        return text
    return f"=?UTF-8?B?{base64.b64encode(text.encode()).decode()}?="


def build(notification: PersonalNotification, message: Message) -> tuple[bytes, dict]:
    headers = {"Content-Type": "text/plain; charset=utf-8",
               "Priority": HIGH_PRIORITY if message.high_urgency else DEFAULT_PRIORITY}
    if message.subject:
        headers["Title"] = header_value(message.subject)
    if message.link:
        headers["Click"] = header_value(message.link)
    return message.text.encode(), headers


def send(notification: PersonalNotification, message: Message) -> Result:
    body, headers = build(notification, message)
    response = http.send_raw("POST", notification.address, body,
                             {"User-Agent": http.USER_AGENT, **headers})
    answer = response.json()
    remote_id = answer.get("id", "") if isinstance(answer, dict) else ""
    return Result(response.status, response.text[:http.EXCERPT_CHARS], str(remote_id)[:255])
