"""HipChat API v2 room notification, for self-hosted HipChat-compatible servers."""

from urllib.parse import quote

from destinations import http
from destinations.kinds.base import SECRET, URL, Field, Message, Result

FIELDS = [
    Field("api_url", URL, help="The server's base URL, e.g. https://chat.example.com."),
    Field("room", help="Room id or name."),
    Field("auth_token", SECRET, help="A room notification token (Bearer)."),
]

COLORS = {"triggered": "red", "acknowledged": "yellow", "resolved": "green", "test": "gray"}


def build(message: Message) -> dict:
    return {
        "color": COLORS[message.event],
        "message": f"{message.headline} — {message.url}",
        "message_format": "text",
        # Only a new incident should make clients ping people.
        "notify": message.event == "triggered",
        "from": "Tocsin",
    }


def send(message: Message) -> Result:
    config = message.config
    url = f"{config['api_url']}/v2/room/{quote(config['room'], safe='')}/notification"
    response = http.request("POST", url, json_body=build(message),
                            headers={"Authorization": f"Bearer {config['auth_token']}"})
    return Result(response.status, response.text)
