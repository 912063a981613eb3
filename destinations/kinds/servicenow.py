"""ServiceNow Table API: one incident record per Tocsin incident. Acknowledge moves it to
In Progress, resolve to Resolved with close notes.

The record is created once (destinations/kinds/records.py): its sys_id is kept and later
events PATCH it; when an earlier create's outcome is unknown, or an update finds no kept
sys_id, the record is looked up by correlation_id first and adopted if found.
"""

from destinations import http
from destinations.kinds import records
from destinations.kinds.base import SECRET, URL, Field, Message, Result

FIELDS = [
    Field("instance_url", URL, help="https://<instance>.service-now.com"),
    Field("username", help="An integration user with the itil role."),
    Field("password", SECRET),
    Field("assignment_group", required=False, help="sys_id or name of the group to assign."),
    Field("close_code", required=False, default="Solution provided",
          help="Resolution code used when Tocsin resolves the incident."),
]

TABLE = "/api/now/table/incident"
STATE_IN_PROGRESS, STATE_RESOLVED = "2", "6"


def correlation_id(message: Message) -> str:
    return f"tocsin-test-{message.delivery_id}" if message.is_test else message.dedup_key


def create_body(message: Message) -> dict:
    urgency = "1" if message.urgency == "high" else "3"
    body = {
        "short_description": message.headline[:160],
        "description": f"{message.summary or message.title}\n\nTocsin: {message.url}",
        "correlation_id": correlation_id(message),
        "correlation_display": "Tocsin",
        "urgency": urgency,
        "impact": urgency,
    }
    if message.config.get("assignment_group"):
        body["assignment_group"] = message.config["assignment_group"]
    return body


def update_body(message: Message) -> dict:
    note = f"{message.state_label} in Tocsin" + (f" by {message.actor}" if message.actor else "")
    if message.event == "acknowledged":
        return {"state": STATE_IN_PROGRESS, "work_notes": note}
    return {"state": STATE_RESOLVED, "close_code": message.config["close_code"],
            "close_notes": f"{note}: {message.url}"}


def find(message: Message, auth) -> str:
    # The oldest first: should duplicates exist (made by hand, or before Tocsin kept ids),
    # every event keeps landing on the same one.
    response = http.request(
        "GET", message.config["instance_url"] + TABLE, auth=auth,
        params={"sysparm_query": f"correlation_id={correlation_id(message)}"
                                 "^ORDERBYsys_created_on",
                "sysparm_fields": "sys_id", "sysparm_limit": "1"},
    )
    found = (response.json() or {}).get("result") or []
    return str(found[0].get("sys_id") or "") if found else ""


def send(message: Message) -> Result:
    auth = (message.config["username"], message.config["password"])
    base = message.config["instance_url"] + TABLE

    def create():
        body = create_body(message)
        if message.event in ("acknowledged", "resolved"):
            body.update(update_body(message))
        # Only the sys_id is needed back, not the whole record.
        response = http.request("POST", base, json_body=body, auth=auth,
                                params={"sysparm_fields": "sys_id"})
        return response, str(((response.json() or {}).get("result") or {}).get("sys_id") or "")

    def update(sys_id):
        return http.request("PATCH", f"{base}/{sys_id}", json_body=update_body(message),
                            auth=auth)

    return records.send_once(message, correlation_id(message), records.Remote(
        find=lambda: find(message, auth), create=create, update=update))
