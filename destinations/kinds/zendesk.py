"""Zendesk Tickets API: one ticket per incident. Acknowledge reopens it as 'open' with an
internal note, resolve marks it 'solved'.

The ticket is created once (destinations/kinds/records.py): its id is kept and later events
update it; when an earlier create's outcome is unknown, or an update finds no kept id, the
ticket is looked up by external_id (List Tickets, ?external_id=) first and adopted if found.
"""

from destinations import http
from destinations.kinds import records
from destinations.kinds.base import SECRET, URL, Field, Message, Result

FIELDS = [
    Field("api_url", URL, help="https://<subdomain>.zendesk.com"),
    Field("email", help="The agent the API token belongs to."),
    Field("api_token", SECRET),
    Field("group_id", required=False, help="Numeric id of the group to assign tickets to."),
]

STATUSES = {"acknowledged": "open", "resolved": "solved"}


def external_id(message: Message) -> str:
    return f"tocsin-test-{message.delivery_id}" if message.is_test else message.dedup_key


def create_body(message: Message) -> dict:
    ticket = {
        "subject": message.headline[:250],
        "comment": {"body": f"{message.summary or message.title}\n\nTocsin: {message.url}"},
        "external_id": external_id(message),
        "type": "incident",
        "priority": "urgent" if message.urgency == "high" else "normal",
        "tags": ["tocsin", f"tocsin_{message.event}"],
    }
    group_id = str(message.config.get("group_id") or "")
    if group_id:
        # The Tickets API documents group_id as an integer.
        ticket["group_id"] = int(group_id) if group_id.isdigit() else group_id
    if message.event in STATUSES:
        ticket["status"] = STATUSES[message.event]
    return {"ticket": ticket}


def update_body(message: Message) -> dict:
    note = f"{message.state_label} in Tocsin" + (f" by {message.actor}" if message.actor else "")
    return {"ticket": {"status": STATUSES[message.event],
                       "comment": {"body": f"{note}: {message.url}", "public": False}}}


def send(message: Message) -> Result:
    config = message.config
    auth = (f"{config['email']}/token", config["api_token"])
    base = f"{config['api_url']}/api/v2/tickets"

    def find():
        # External ids need not be unique in Zendesk; the oldest ticket wins, so every event
        # keeps landing on the same one.
        found = http.request("GET", f"{base}.json", auth=auth,
                             params={"external_id": external_id(message)})
        ids = [ticket.get("id") for ticket in (found.json() or {}).get("tickets") or []]
        ids = [i for i in ids if isinstance(i, int)]
        return str(min(ids)) if ids else ""

    def create():
        response = http.request("POST", f"{base}.json", json_body=create_body(message),
                                auth=auth)
        return response, str(((response.json() or {}).get("ticket") or {}).get("id") or "")

    def update(ticket_id):
        return http.request("PUT", f"{base}/{ticket_id}.json", json_body=update_body(message),
                            auth=auth)

    return records.send_once(message, external_id(message),
                             records.Remote(find=find, create=create, update=update))
