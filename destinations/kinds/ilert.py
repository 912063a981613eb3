"""ilert Events API: ALERT, ACCEPT and RESOLVE with one alert key per incident (the
'incident key' of older ilert documentation)."""

from destinations.kinds.base import SECRET, URL, Field, Kind, Message

EVENT_TYPES = {"triggered": "ALERT", "acknowledged": "ACCEPT", "resolved": "RESOLVE",
               "test": "ALERT"}


class Ilert(Kind):
    FIELDS = [
        Field("integration_key", SECRET, help="The alert source's integration key."),
        Field("api_url", URL, required=False, default="https://api.ilert.com"),
    ]

    def build(self, message: Message) -> dict:
        event = {
            "integrationKey": message.config["integration_key"],
            "eventType": EVENT_TYPES[message.event],
            "summary": message.headline[:255],
            "alertKey": self.remote_key(message),
        }
        if event["eventType"] == "ALERT":
            event["details"] = (message.summary or message.title)[:10000]
            event["priority"] = "HIGH" if message.urgency == "high" else "LOW"
            event["links"] = [{"href": message.url, "text": message.link_text}]
            event["customDetails"] = {"service": message.service, "severity": message.severity,
                                      "entity_id": message.entity_id}
        return event

    def url(self, message: Message) -> str:
        return f"{message.config['api_url']}/api/events"
