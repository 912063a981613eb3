"""PagerDuty Events API v2: trigger, acknowledge and resolve with one dedup key per
incident (https://events.pagerduty.com/v2/enqueue)."""

from destinations.kinds.base import SECRET, URL, Field, Kind, Message
from tocsin.transport import Result, http

ACTIONS = {"triggered": "trigger", "acknowledged": "acknowledge", "resolved": "resolve",
           "test": "trigger"}
# PagerDuty knows four severities; Tocsin's alert types and common words map onto them.
SEVERITIES = {"critical": "critical", "error": "error", "major": "error",
              "warning": "warning", "minor": "warning", "info": "info"}


def severity(message: Message) -> str:
    default = "critical" if message.urgency == "high" else "warning"
    return SEVERITIES.get(message.severity.lower(), default)


class PagerDuty(Kind):
    FIELDS = [
        Field("integration_key", SECRET, help="The service's Events API v2 integration key."),
        Field("api_url", URL, required=False, default="https://events.pagerduty.com"),
    ]

    def build(self, message: Message) -> dict:
        event = {
            "routing_key": message.config["integration_key"],
            "event_action": ACTIONS[message.event],
            "dedup_key": self.remote_key(message),
        }
        if event["event_action"] == "trigger":
            event["payload"] = {
                "summary": message.headline[:1024],
                "source": message.entity_id or message.service,
                "severity": severity(message),
                "timestamp": message.occurred_at.isoformat(),
                "component": message.service,
                "group": message.team,
                "custom_details": {
                    "summary": message.summary, "incident_number": message.number,
                    "urgency": message.urgency, "labels": message.labels,
                    "drill": message.drill,
                },
            }
            if message.severity:
                # A string in the API: left out rather than sent as null.
                event["payload"]["class"] = message.severity
            event["links"] = [{"href": message.url, "text": message.link_text}]
            event["client"] = "Tocsin"
            event["client_url"] = message.url
        return event

    def url(self, message: Message) -> str:
        return f"{message.config['api_url']}/v2/enqueue"

    def result(self, response: http.Response) -> Result:
        return Result(response.status, response.text,
                      (response.json() or {}).get("dedup_key", ""))
