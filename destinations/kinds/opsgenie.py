"""Opsgenie Alert API v2: create with an alias, then acknowledge and close by that alias.
EU accounts use https://api.eu.opsgenie.com as api_url."""

from destinations import http
from destinations.kinds.base import SECRET, URL, Field, Message, Result

FIELDS = [
    Field("api_key", SECRET, help="An API integration's key (sent as 'GenieKey <key>')."),
    Field("api_url", URL, required=False, default="https://api.opsgenie.com",
          help="https://api.eu.opsgenie.com for EU accounts."),
    Field("responders", required=False,
          help="Optional team name to route to (Opsgenie 'responders' of type team)."),
]

PRIORITIES = {"critical": "P1", "error": "P2", "major": "P2", "warning": "P3",
              "minor": "P3", "info": "P5"}


def priority(message: Message) -> str:
    default = "P2" if message.urgency == "high" else "P4"
    return PRIORITIES.get(message.severity.lower(), default)


def alias(message: Message) -> str:
    return f"tocsin-test-{message.delivery_id}" if message.is_test else message.dedup_key


def create_body(message: Message) -> dict:
    body = {
        "message": message.headline[:130],
        "alias": alias(message),
        "description": (message.summary or message.title)[:15000] + f"\n\n{message.url}",
        "priority": priority(message),
        "source": "Tocsin",
        "entity": message.entity_id[:512],
        # Opsgenie allows 20 tags of 50 characters each.
        "tags": [tag[:50] for tag in [f"service:{message.service}", *message.tags][:20]],
        "details": {"incident_url": message.url, "incident_number": str(message.number or "test"),
                    "service": message.service, "urgency": message.urgency},
    }
    if message.config.get("responders"):
        body["responders"] = [{"name": message.config["responders"], "type": "team"}]
    return body


def send(message: Message) -> Result:
    base = f"{message.config['api_url']}/v2/alerts"
    headers = {"Authorization": f"GenieKey {message.config['api_key']}"}
    if message.event in ("triggered", "test"):
        response = http.request("POST", base, json_body=create_body(message), headers=headers)
    else:
        action = "acknowledge" if message.event == "acknowledged" else "close"
        body = {"source": "Tocsin", "user": (message.actor or "Tocsin")[:100],
                "note": f"{message.state_label} in Tocsin: {message.url}"}
        response = http.request(
            "POST", f"{base}/{alias(message)}/{action}", json_body=body, headers=headers,
            params={"identifierType": "alias"},
        )
    return Result(response.status, response.text, (response.json() or {}).get("requestId", ""))
