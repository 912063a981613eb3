"""ChatWork: post a message to a room (API v2, token in X-ChatWorkToken)."""

from urllib.parse import quote

from destinations.kinds.base import SECRET, URL, Field, Kind, Message
from tocsin.transport import Result, http


def plain(text: str) -> str:
    """ChatWork has no escape for its [tags]: a title holding "[toall]" would ping the
    room. A full-width bracket reads the same and is not a tag."""
    return str(text).replace("[", "\uff3b").replace("]", "\uff3d")


class ChatWork(Kind):
    FIELDS = [
        Field("api_token", SECRET, help="A ChatWork API token of the posting account."),
        Field("room_id", help="The room's numeric id (from its URL, after #!rid)."),
        Field("api_url", URL, required=False, default="https://api.chatwork.com"),
    ]

    def build(self, message: Message) -> dict:
        lines = [f"[info][title]{message.headline_escaped(plain)}[/title]"]
        if message.summary:
            lines.append(plain(message.summary[:2000]))
        by = f" / by {plain(message.actor)}" if message.actor else ""
        lines.append(f"Urgency: {message.urgency}{by}")
        lines.append(message.url + "[/info]")
        return {"body": "\n".join(lines)}

    def url(self, message: Message) -> str:
        room = quote(message.config["room_id"], safe="")
        return f"{message.config['api_url']}/v2/rooms/{room}/messages"

    def headers(self, message: Message) -> dict:
        return {"X-ChatWorkToken": message.config["api_token"]}

    def send(self, message: Message) -> Result:
        # ChatWork takes a form, not JSON.
        response = http.request("POST", self.url(message), form=self.build(message),
                                headers=self.headers(message))
        return self.result(response)

    def result(self, response: http.Response) -> Result:
        return Result(response.status, response.text,
                      str((response.json() or {}).get("message_id", "")))
