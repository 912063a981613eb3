"""ChatWork: post a message to a room (API v2, token in X-ChatWorkToken)."""

from urllib.parse import quote

from destinations import http
from destinations.kinds.base import SECRET, URL, Field, Message, Result

FIELDS = [
    Field("api_token", SECRET, help="A ChatWork API token of the posting account."),
    Field("room_id", help="The room's numeric id (from its URL, after #!rid)."),
    Field("api_url", URL, required=False, default="https://api.chatwork.com"),
]


def plain(text: str) -> str:
    """ChatWork has no escape for its [tags]: a title holding "[toall]" would ping the
    room. A full-width bracket reads the same and is not a tag."""
    return str(text).replace("[", "\uff3b").replace("]", "\uff3d")


def text(message: Message) -> str:
    lines = [f"[info][title]{message.headline_escaped(plain)}[/title]"]
    if message.summary:
        lines.append(plain(message.summary[:2000]))
    by = f" / by {plain(message.actor)}" if message.actor else ""
    lines.append(f"Urgency: {message.urgency}{by}")
    lines.append(message.url + "[/info]")
    return "\n".join(lines)


def send(message: Message) -> Result:
    config = message.config
    response = http.request(
        "POST", f"{config['api_url']}/v2/rooms/{quote(config['room_id'], safe='')}/messages",
        form={"body": text(message)}, headers={"X-ChatWorkToken": config["api_token"]},
    )
    return Result(response.status, response.text,
                  str((response.json() or {}).get("message_id", "")))
