"""Mattermost incoming webhook. It accepts Slack's attachment format, plus a channel
override and Markdown text."""

from destinations import http
from destinations.kinds import slack
from destinations.kinds.base import SECRET_URL, Field, Message, Result

FIELDS = [
    Field("webhook_url", SECRET_URL, help="The incoming webhook URL (https://<server>/hooks/<id>)."),
    Field("channel", required=False, help="Channel name to post in instead of the default."),
    Field("username", required=False, help="Overrides the webhook's display name."),
]


def build(message: Message) -> dict:
    payload = slack.build(message)
    payload["text"] = f"**{message.headline_escaped(slack.escape)}** [Open incident]({message.url})"
    if message.config.get("channel"):
        payload["channel"] = message.config["channel"]
    return payload


def send(message: Message) -> Result:
    response = http.request("POST", message.config["webhook_url"], json_body=build(message))
    return Result(response.status, response.text)
