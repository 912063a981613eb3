"""Slack incoming webhook: one message per lifecycle event, coloured by state.

Incoming webhooks cannot edit a message they posted, so acknowledge and resolve are new
messages in the same channel, each with the same incident link.
"""

from destinations import http
from destinations.kinds.base import URL, Field, Message, Result

FIELDS = [
    Field("webhook_url", URL, help="The channel's incoming webhook URL."),
    Field("username", required=False, help="Overrides the webhook's display name."),
]

COLORS = {"triggered": "#d92d20", "acknowledged": "#f79009", "resolved": "#12b76a",
          "test": "#667085"}


def facts(message: Message) -> list[tuple[str, str]]:
    rows = [("State", message.state_label), ("Service", message.service),
            ("Urgency", message.urgency)]
    if message.severity:
        rows.append(("Severity", message.severity))
    if message.actor:
        rows.append(("By", message.actor))
    return rows


def build(message: Message) -> dict:
    summary = message.summary[:1500]
    payload = {
        "text": f"{message.headline} <{message.url}|Open incident>",
        "attachments": [{
            "color": COLORS[message.event],
            "title": message.headline,
            "title_link": message.url,
            "text": summary,
            "fields": [{"title": k, "value": v, "short": True} for k, v in facts(message)],
            "footer": "Tocsin",
            "ts": int(message.occurred_at.timestamp()),
        }],
    }
    if message.config.get("username"):
        payload["username"] = message.config["username"]
    return payload


def send(message: Message) -> Result:
    response = http.request("POST", message.config["webhook_url"], json_body=build(message))
    return Result(response.status, response.text)
