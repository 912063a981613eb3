"""ServiceNow Table API: one incident record per Tocsin incident, found again by its
correlation id. Acknowledge moves it to In Progress, resolve to Resolved with close notes.

The record is looked up by correlation_id before every update rather than remembered, so
an update still lands when the create was made by an earlier attempt or by hand.
"""

from destinations import http
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
    response = http.request(
        "GET", message.config["instance_url"] + TABLE, auth=auth,
        params={"sysparm_query": f"correlation_id={correlation_id(message)}",
                "sysparm_fields": "sys_id", "sysparm_limit": "1"},
    )
    records = (response.json() or {}).get("result") or []
    return records[0]["sys_id"] if records else ""


def send(message: Message) -> Result:
    auth = (message.config["username"], message.config["password"])
    base = message.config["instance_url"] + TABLE
    sys_id = "" if message.event in ("triggered", "test") else find(message, auth)
    if not sys_id:
        body = create_body(message)
        if message.event in ("acknowledged", "resolved"):
            body.update(update_body(message))
        response = http.request("POST", base, json_body=body, auth=auth)
        sys_id = ((response.json() or {}).get("result") or {}).get("sys_id", "")
    else:
        response = http.request("PATCH", f"{base}/{sys_id}", json_body=update_body(message),
                                auth=auth)
    return Result(response.status, response.text, sys_id)
