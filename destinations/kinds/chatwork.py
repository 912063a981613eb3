"""ChatWork: post a message to a room (API v2, token in X-ChatWorkToken)."""

from destinations import http
from destinations.kinds.base import SECRET, URL, Field, Message, Result

FIELDS = [
    Field("api_token", SECRET, help="A ChatWork API token of the posting account."),
    Field("room_id", help="The room's numeric id (from its URL, after #!rid)."),
    Field("api_url", URL, required=False, default="https://api.chatwork.com"),
]


def text(message: Message) -> str:
    lines = [f"[info][title]{message.headline}[/title]"]
    if message.summary:
        lines.append(message.summary[:2000])
    by = f" / by {message.actor}" if message.actor else ""
    lines.append(f"Urgency: {message.urgency}{by}")
    lines.append(message.url + "[/info]")
    return "\n".join(lines)


def send(message: Message) -> Result:
    config = message.config
    response = http.request(
        "POST", f"{config['api_url']}/v2/rooms/{config['room_id']}/messages",
        form={"body": text(message)}, headers={"X-ChatWorkToken": config["api_token"]},
    )
    return Result(response.status, response.text,
                  str((response.json() or {}).get("message_id", "")))
