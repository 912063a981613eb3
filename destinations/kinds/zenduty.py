"""Zenduty generic integration (and so also another Tocsin's generic webhook).

The entity_id is the incident's dedup key, so the receiving side groups trigger,
acknowledge and resolve of one incident into one incident of its own.
"""

from destinations.kinds.base import SECRET_URL, Field, Kind, Message

ALERT_TYPES = {"acknowledged": "acknowledged", "resolved": "resolved", "test": "info"}
SEVERITY_TYPES = {"critical": "critical", "error": "error", "major": "error",
                  "warning": "warning", "minor": "warning", "info": "info"}


def alert_type(message: Message) -> str:
    if message.event in ALERT_TYPES:
        return ALERT_TYPES[message.event]
    return SEVERITY_TYPES.get(message.severity.lower(), "critical")


class Zenduty(Kind):
    FIELDS = [
        Field("webhook_url", SECRET_URL,
              help="The generic integration URL, https://www.zenduty.com/api/events/<key>/."),
    ]

    def remote_key(self, message: Message) -> str:
        # A test's dedup key is already one of its own ("tocsin-test-<delivery pk>"), and
        # receivers have grouped by it since this kind was added: kept as it is.
        return message.dedup_key

    def build(self, message: Message) -> dict:
        return {
            "alert_type": alert_type(message),
            "message": message.title[:500],
            "summary": message.summary or message.title,
            "entity_id": self.remote_key(message),
            "payload": {"tocsin": message.as_dict(), "event": message.event},
            "urls": [{"link_url": message.url, "link_text": message.link_text}],
        }

    def url(self, message: Message) -> str:
        return message.config["webhook_url"]
