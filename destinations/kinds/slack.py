"""Slack incoming webhook: one message per lifecycle event, coloured by state.

Incoming webhooks cannot edit a message they posted, so acknowledge and resolve are new
messages in the same channel, each with the same incident link.
"""

from destinations.kinds.base import SECRET_URL, Field, Kind, Message

COLORS = {"triggered": "#d92d20", "acknowledged": "#f79009", "resolved": "#12b76a",
          "test": "#667085"}


def escape(text: str) -> str:
    """Slack's control characters: an alert title like "<!channel>" or "<https://x|y>"
    must show as text, not ping a channel or fake a link."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def facts(message: Message) -> list[tuple[str, str]]:
    rows = [("State", message.state_label), ("Service", message.service),
            ("Urgency", message.urgency)]
    if message.severity:
        rows.append(("Severity", message.severity))
    if message.actor:
        rows.append(("By", message.actor))
    return rows


class Slack(Kind):
    FIELDS = [
        Field("webhook_url", SECRET_URL, help="The channel's incoming webhook URL."),
        Field("username", required=False, help="Overrides the webhook's display name."),
    ]

    def escape(self, text: str) -> str:
        """Every text a sender controls passes through this (Mattermost, which takes the
        same payload, escapes more)."""
        return escape(text)

    def build(self, message: Message) -> dict:
        headline = message.headline_escaped(self.escape)
        payload = {
            "text": f"{headline} <{message.url}|Open incident>",
            "attachments": [{
                "color": COLORS[message.event],
                "title": headline,
                "title_link": message.url,
                "text": self.escape(message.summary[:1500]),
                "fields": [{"title": k, "value": self.escape(v), "short": True}
                           for k, v in facts(message)],
                "footer": "Tocsin",
                "ts": int(message.occurred_at.timestamp()),
            }],
        }
        if message.config.get("username"):
            payload["username"] = message.config["username"]
        return payload

    def url(self, message: Message) -> str:
        return message.config["webhook_url"]
