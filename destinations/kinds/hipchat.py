"""HipChat API v2 room notification, for self-hosted HipChat-compatible servers."""

from urllib.parse import quote

from destinations.kinds.base import SECRET, URL, Field, Kind, Message

COLORS = {"triggered": "red", "acknowledged": "yellow", "resolved": "green", "test": "gray"}


class HipChat(Kind):
    FIELDS = [
        Field("api_url", URL, help="The server's base URL, e.g. https://chat.example.com."),
        Field("room", help="Room id or name."),
        Field("auth_token", SECRET, help="A room notification token (Bearer)."),
    ]

    def build(self, message: Message) -> dict:
        return {
            "color": COLORS[message.event],
            "message": f"{message.headline} — {message.url}",
            "message_format": "text",
            # Only a new incident should make clients ping people.
            "notify": message.event == "triggered",
            "from": "Tocsin",
        }

    def url(self, message: Message) -> str:
        room = quote(message.config["room"], safe="")
        return f"{message.config['api_url']}/v2/room/{room}/notification"

    def headers(self, message: Message) -> dict:
        return {"Authorization": f"Bearer {message.config['auth_token']}"}
