"""Opsgenie Alert API v2: create with an alias, then acknowledge and close by that alias.
EU accounts use https://api.eu.opsgenie.com as api_url."""

from destinations.kinds.base import SECRET, URL, Field, Kind, Message
from tocsin.transport import Result, http

PRIORITIES = {"critical": "P1", "error": "P2", "major": "P2", "warning": "P3",
              "minor": "P3", "info": "P5"}
CREATE_EVENTS = ("triggered", "test")


def priority(message: Message) -> str:
    default = "P2" if message.urgency == "high" else "P4"
    return PRIORITIES.get(message.severity.lower(), default)


class Opsgenie(Kind):
    FIELDS = [
        Field("api_key", SECRET, help="An API integration's key (sent as 'GenieKey <key>')."),
        Field("api_url", URL, required=False, default="https://api.opsgenie.com",
              help="https://api.eu.opsgenie.com for EU accounts."),
        Field("responders", required=False,
              help="Optional team name to route to (Opsgenie 'responders' of type team)."),
    ]

    def build(self, message: Message) -> dict:
        if message.event not in CREATE_EVENTS:
            return {"source": "Tocsin", "user": (message.actor or "Tocsin")[:100],
                    "note": f"{message.state_label} in Tocsin: {message.url}"}
        body = {
            "message": message.headline[:130],
            "alias": self.remote_key(message),
            "description": (message.summary or message.title)[:15000] + f"\n\n{message.url}",
            "priority": priority(message),
            "source": "Tocsin",
            "entity": message.entity_id[:512],
            # Opsgenie allows 20 tags of 50 characters each.
            "tags": [tag[:50] for tag in [f"service:{message.service}", *message.tags][:20]],
            "details": {"incident_url": message.url,
                        "incident_number": str(message.number or "test"),
                        "service": message.service, "urgency": message.urgency},
        }
        if message.config.get("responders"):
            body["responders"] = [{"name": message.config["responders"], "type": "team"}]
        return body

    def url(self, message: Message) -> str:
        alerts = f"{message.config['api_url']}/v2/alerts"
        if message.event in CREATE_EVENTS:
            return alerts
        action = "acknowledge" if message.event == "acknowledged" else "close"
        return f"{alerts}/{self.remote_key(message)}/{action}"

    def headers(self, message: Message) -> dict:
        return {"Authorization": f"GenieKey {message.config['api_key']}"}

    def send(self, message: Message) -> Result:
        # Acknowledge and close name the alert by its alias, which Opsgenie must be told.
        params = {} if message.event in CREATE_EVENTS else {"identifierType": "alias"}
        response = http.request("POST", self.url(message), json_body=self.build(message),
                                headers=self.headers(message), params=params)
        return self.result(response)

    def result(self, response: http.Response) -> Result:
        return Result(response.status, response.text,
                      (response.json() or {}).get("requestId", ""))
