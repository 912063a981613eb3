"""ServiceNow Table API: one incident record per Tocsin incident. Acknowledge moves it to
In Progress, resolve to Resolved with close notes.

The record is created once (destinations/kinds/records.py): its sys_id is kept and later
events PATCH it; when an earlier create's outcome is unknown, or an update finds no kept
sys_id, the record is looked up by correlation_id first and adopted if found.
"""

from destinations.kinds import records
from destinations.kinds.base import SECRET, URL, Field, Message
from tocsin.transport import http

TABLE = "/api/now/table/incident"
STATE_IN_PROGRESS, STATE_RESOLVED = "2", "6"


def auth(message: Message) -> tuple[str, str]:
    return message.config["username"], message.config["password"]


class ServiceNow(records.CreateOnce):
    FIELDS = [
        Field("instance_url", URL, help="https://<instance>.service-now.com"),
        Field("username", help="An integration user with the itil role."),
        Field("password", SECRET),
        Field("assignment_group", required=False,
              help="sys_id or name of the group to assign."),
        Field("close_code", required=False, default="Solution provided",
              help="Resolution code used when Tocsin resolves the incident."),
    ]

    def build(self, message: Message) -> dict:
        """The new record; one first created by an acknowledge or resolve is created in
        that state."""
        urgency = "1" if message.urgency == "high" else "3"
        body = {
            "short_description": message.headline[:160],
            "description": f"{message.summary or message.title}\n\nTocsin: {message.url}",
            "correlation_id": self.remote_key(message),
            "correlation_display": "Tocsin",
            "urgency": urgency,
            "impact": urgency,
        }
        if message.config.get("assignment_group"):
            body["assignment_group"] = message.config["assignment_group"]
        if message.event in ("acknowledged", "resolved"):
            body.update(self.update_body(message))
        return body

    def update_body(self, message: Message) -> dict:
        note = f"{message.state_label} in Tocsin" + (
            f" by {message.actor}" if message.actor else "")
        if message.event == "acknowledged":
            return {"state": STATE_IN_PROGRESS, "work_notes": note}
        return {"state": STATE_RESOLVED, "close_code": message.config["close_code"],
                "close_notes": f"{note}: {message.url}"}

    def url(self, message: Message) -> str:
        return message.config["instance_url"] + TABLE

    def find(self, message: Message) -> str:
        # The oldest first: should duplicates exist (made by hand, or before Tocsin kept
        # ids), every event keeps landing on the same one.
        response = http.request(
            "GET", self.url(message), auth=auth(message),
            params={"sysparm_query": f"correlation_id={self.remote_key(message)}"
                                     "^ORDERBYsys_created_on",
                    "sysparm_fields": "sys_id", "sysparm_limit": "1"},
        )
        found = (response.json() or {}).get("result") or []
        return str(found[0].get("sys_id") or "") if found else ""

    def create(self, message: Message) -> tuple[http.Response, str]:
        # Only the sys_id is needed back, not the whole record.
        response = http.request("POST", self.url(message), json_body=self.build(message),
                                auth=auth(message), params={"sysparm_fields": "sys_id"})
        return response, str(((response.json() or {}).get("result") or {}).get("sys_id") or "")

    def update(self, message: Message, sys_id: str) -> http.Response:
        return http.request("PATCH", f"{self.url(message)}/{sys_id}",
                            json_body=self.update_body(message), auth=auth(message))
