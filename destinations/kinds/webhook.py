"""Generic JSON webhook: the incident and the event, signed when a secret is set.

Receivers verify ``X-Tocsin-Signature: sha256=<hex HMAC-SHA256 of the raw body>`` and drop
repeats by ``X-Tocsin-Delivery``, which stays the same across retries of one delivery.
"""

import hashlib
import hmac
import json

from destinations.kinds.base import SECRET, URL, Field, Kind, Message
from tocsin.transport import Result, http


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Webhook(Kind):
    FIELDS = [
        Field("url", URL, help="Where to POST."),
        Field("secret", SECRET, required=False, help="Signs each body with HMAC-SHA256."),
    ]

    def build(self, message: Message) -> dict:
        return {
            "event": message.event,
            "delivery_id": message.delivery_id,
            "occurred_at": message.occurred_at.isoformat(),
            "actor": message.actor or None,
            "incident": message.as_dict(),
        }

    def url(self, message: Message) -> str:
        return message.config["url"]

    def send(self, message: Message) -> Result:
        # The signature covers the exact bytes sent, so the body is encoded here and sent
        # as it is.
        body = json.dumps(self.build(message), separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": http.USER_AGENT,
            "X-Tocsin-Delivery": message.delivery_id,
            "X-Tocsin-Event": message.event,
        }
        if message.config.get("secret"):
            headers["X-Tocsin-Signature"] = signature(message.config["secret"], body)
        return self.result(http.send_raw("POST", self.url(message), body, headers))
