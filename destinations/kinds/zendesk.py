"""Zendesk Tickets API: one ticket per incident. Acknowledge reopens it as 'open' with an
internal note, resolve marks it 'solved'.

The ticket is created once (destinations/kinds/records.py): its id is kept and later events
update it; when an earlier create's outcome is unknown, or an update finds no kept id, the
ticket is looked up by external_id (List Tickets, ?external_id=) first and adopted if found.
"""

from destinations.kinds import records
from destinations.kinds.base import SECRET, URL, Field, Message
from tocsin.transport import http

STATUSES = {"acknowledged": "open", "resolved": "solved"}


def auth(message: Message) -> tuple[str, str]:
    return f"{message.config['email']}/token", message.config["api_token"]


class Zendesk(records.CreateOnce):
    FIELDS = [
        Field("api_url", URL, help="https://<subdomain>.zendesk.com"),
        Field("email", help="The agent the API token belongs to."),
        Field("api_token", SECRET),
        Field("group_id", required=False, help="Numeric id of the group to assign tickets to."),
    ]

    def build(self, message: Message) -> dict:
        """The new ticket, in the state of the event that creates it."""
        ticket = {
            "subject": message.headline[:250],
            "comment": {"body": f"{message.summary or message.title}\n\nTocsin: {message.url}"},
            "external_id": self.remote_key(message),
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

    def update_body(self, message: Message) -> dict:
        note = f"{message.state_label} in Tocsin" + (
            f" by {message.actor}" if message.actor else "")
        return {"ticket": {"status": STATUSES[message.event],
                           "comment": {"body": f"{note}: {message.url}", "public": False}}}

    def url(self, message: Message) -> str:
        return f"{message.config['api_url']}/api/v2/tickets"

    def find(self, message: Message) -> str:
        # External ids need not be unique in Zendesk; the oldest ticket wins, so every event
        # keeps landing on the same one.
        found = http.request("GET", f"{self.url(message)}.json", auth=auth(message),
                             params={"external_id": self.remote_key(message)})
        ids = [ticket.get("id") for ticket in (found.json() or {}).get("tickets") or []]
        ids = [i for i in ids if isinstance(i, int)]
        return str(min(ids)) if ids else ""

    def create(self, message: Message) -> tuple[http.Response, str]:
        response = http.request("POST", f"{self.url(message)}.json",
                                json_body=self.build(message), auth=auth(message))
        return response, str(((response.json() or {}).get("ticket") or {}).get("id") or "")

    def update(self, message: Message, ticket_id: str) -> http.Response:
        return http.request("PUT", f"{self.url(message)}/{ticket_id}.json",
                            json_body=self.update_body(message), auth=auth(message))
