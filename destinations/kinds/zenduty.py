"""Zenduty generic integration (and so also another Tocsin's generic webhook).

The entity_id is the incident's dedup key, so the receiving side groups trigger,
acknowledge and resolve of one incident into one incident of its own.
"""

from destinations import http
from destinations.kinds.base import SECRET_URL, Field, Message, Result

FIELDS = [
    Field("webhook_url", SECRET_URL,
          help="The generic integration URL, https://www.zenduty.com/api/events/<key>/."),
]

ALERT_TYPES = {"acknowledged": "acknowledged", "resolved": "resolved", "test": "info"}
SEVERITY_TYPES = {"critical": "critical", "error": "error", "major": "error",
                  "warning": "warning", "minor": "warning", "info": "info"}


def alert_type(message: Message) -> str:
    if message.event in ALERT_TYPES:
        return ALERT_TYPES[message.event]
    return SEVERITY_TYPES.get(message.severity.lower(), "critical")


def build(message: Message) -> dict:
    return {
        "alert_type": alert_type(message),
        "message": message.title[:500],
        "summary": message.summary or message.title,
        "entity_id": message.dedup_key,
        "payload": {"tocsin": message.as_dict(), "event": message.event},
        "urls": [{"link_url": message.url, "link_text": message.link_text}],
    }


def send(message: Message) -> Result:
    response = http.request("POST", message.config["webhook_url"], json_body=build(message))
    return Result(response.status, response.text)
