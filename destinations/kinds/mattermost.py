"""Mattermost incoming webhook. It accepts Slack's attachment format, plus a channel
override and Markdown text.

Mattermost renders the text, attachment titles, texts and field values as Markdown and
turns @-words into notifications, so every text a sender controls (an alert's title,
summary, service…) is neutralised: Markdown punctuation is backslash-escaped (no links,
images, emphasis or code from an alert), '<', '>' and '&' become entities as for Slack, and
a zero-width space after each '@' and inside '://' and 'www.' keeps @channel, @all, @here,
@user and bare URLs from pinging people or becoming links, while reading the same.
"""

import re

from destinations.kinds import slack
from destinations.kinds.base import SECRET_URL, Field, Message

# Links and images ([x](url), ![x](url)), emphasis, code, strike-through and channel links
# (~town-square), tables and headings.
MARKDOWN = re.compile(r"([\\`*_~\[\]()!#|])")
ZWSP = "\u200b"  # zero-width space
WWW = re.compile(r"\b(www)\.", re.IGNORECASE)


def escape(text: str) -> str:
    text = slack.escape(MARKDOWN.sub(r"\\\1", str(text)))
    # Mentions and autolinks need no Markdown syntax, so escaping cannot stop them.
    text = text.replace("@", "@" + ZWSP).replace("://", ":" + ZWSP + "//")
    return WWW.sub(r"\1" + ZWSP + ".", text)


class Mattermost(slack.Slack):
    FIELDS = [
        Field("webhook_url", SECRET_URL,
              help="The incoming webhook URL (https://<server>/hooks/<id>)."),
        Field("channel", required=False, help="Channel name to post in instead of the default."),
        Field("username", required=False, help="Overrides the webhook's display name."),
    ]

    def escape(self, text: str) -> str:
        return escape(text)

    def build(self, message: Message) -> dict:
        payload = super().build(message)
        payload["text"] = (f"**{message.headline_escaped(self.escape)}** "
                           f"[Open incident]({message.url})")
        if message.config.get("channel"):
            payload["channel"] = message.config["channel"]
        return payload
