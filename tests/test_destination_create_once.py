"""ServiceNow and Zendesk create one record per incident, whatever the network does: a create
whose answer is lost is found again by its correlation id instead of being made twice, an
acknowledge that arrives before the trigger creates the record once, and every later event
updates the record whose id was kept.

The local sink emulates each API (ServiceNow Table API: POST, GET with sysparm_query on
correlation_id, PATCH by sys_id; Zendesk Tickets API: POST, GET ?external_id=, PUT by id)
and can hold a create's answer back past the delivery deadline after storing the record, or
answer every request slowly.
"""

import json
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from destinations import sending
from destinations.kinds import KINDS
from destinations.kinds.base import clean_config
from destinations.models import Delivery, RemoteRecord
from incidents import lifecycle
from tests.delivery_helpers import make_destination

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

SERVICENOW_TABLE = "/api/now/table/incident"


class TicketAPI:
    """Just enough of the ServiceNow Table API or the Zendesk Tickets API."""

    def __init__(self, kind: str):
        self.kind = kind
        self.records: dict[str, dict] = {}
        self.created = 0
        self.requests: list[tuple[str, str]] = []
        self.stall_creates = 0  # creates stored but answered only after the test ends
        self.fail_creates = 0  # creates refused with a 503, storing nothing
        self.delay = 0.0  # seconds every request waits before it is handled
        self.release = threading.Event()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_any(self):
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                api.requests.append((self.command, parts.path))
                if api.delay:
                    api.release.wait(api.delay)
                status, answer = api.handle(self.command, parts.path, query,
                                            json.loads(body) if body else None)
                if status is None:
                    api.release.wait(30)
                    status, answer = 201, {}
                data = json.dumps(answer).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up waiting, as it should

            do_GET = do_POST = do_PUT = do_PATCH = do_any

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def handle(self, method, path, query, body):
        if method == "POST" and self.fail_creates:
            self.fail_creates -= 1
            return 503, {"error": "maintenance"}
        if self.kind == "servicenow":
            return self.servicenow(method, path, query, body)
        return self.zendesk(method, path, query, body)

    def store(self, fields: dict) -> str:
        self.created += 1
        record_id = (f"{self.created:032x}" if self.kind == "servicenow"
                     else str(1000 + self.created))
        self.records[record_id] = fields
        return record_id

    def stalls(self) -> bool:
        if self.stall_creates:
            self.stall_creates -= 1
            return True
        return False

    def servicenow(self, method, path, query, body):
        if method == "POST" and path == SERVICENOW_TABLE:
            sys_id = self.store(dict(body))
            return (None, None) if self.stalls() else (201, {"result": {"sys_id": sys_id}})
        if method == "GET" and path == SERVICENOW_TABLE:
            wanted = query["sysparm_query"].split("^")[0].removeprefix("correlation_id=")
            found = [{"sys_id": k} for k, v in self.records.items()
                     if v["correlation_id"] == wanted]
            return 200, {"result": found[:int(query["sysparm_limit"])]}
        sys_id = path.rsplit("/", 1)[1]
        if method == "PATCH" and sys_id in self.records:
            self.records[sys_id].update(body)
            return 200, {"result": {"sys_id": sys_id, **self.records[sys_id]}}
        return 404, {"error": {"message": "No Record found"}}

    def zendesk(self, method, path, query, body):
        if method == "POST" and path == "/api/v2/tickets.json":
            ticket_id = self.store(dict(body["ticket"]))
            return (None, None) if self.stalls() else (
                201, {"ticket": {"id": int(ticket_id), **body["ticket"]}})
        if method == "GET" and path == "/api/v2/tickets.json":
            found = [{"id": int(k), **v} for k, v in self.records.items()
                     if v["external_id"] == query["external_id"]]
            return 200, {"tickets": found, "count": len(found), "next_page": None}
        ticket_id = path.rsplit("/", 1)[1].removesuffix(".json")
        if method == "PUT" and ticket_id in self.records:
            self.records[ticket_id].update(body["ticket"])
            return 200, {"ticket": {"id": int(ticket_id), **self.records[ticket_id]}}
        return 404, {"error": "RecordNotFound"}

    def state(self, record_id: str) -> str:
        return self.records[record_id]["state" if self.kind == "servicenow" else "status"]

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


CONFIGS = {
    "servicenow": lambda url: {"instance_url": url, "username": "u", "password": "p"},
    "zendesk": lambda url: {"api_url": url, "email": "a@example.com", "api_token": "t"},
}
CREATE = {"servicenow": ("POST", SERVICENOW_TABLE), "zendesk": ("POST", "/api/v2/tickets.json")}
FIND = {"servicenow": ("GET", SERVICENOW_TABLE), "zendesk": ("GET", "/api/v2/tickets.json")}
RESOLVED = {"servicenow": "6", "zendesk": "solved"}


def update(kind, record_id):
    if kind == "servicenow":
        return ("PATCH", f"{SERVICENOW_TABLE}/{record_id}")
    return ("PUT", f"/api/v2/tickets/{record_id}.json")


@pytest.fixture(params=sorted(CONFIGS))
def api(request, settings):
    settings.TOCSIN_ALLOW_PRIVATE_DESTINATIONS = True
    settings.TOCSIN_DELIVERY_DEADLINE_SECONDS = 2
    emulator = TicketAPI(request.param)
    yield emulator
    emulator.close()


@pytest.fixture
def ticketing(service, api):
    config = clean_config(KINDS[api.kind].FIELDS, CONFIGS[api.kind](api.url))
    return make_destination(service, api.kind, config)


def send_again(row: Delivery) -> Delivery:
    """Run a pending delivery's next attempt now, as the scheduled retry would."""
    Delivery.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now())
    sending.send_delivery(row.pk)
    row.refresh_from_db()
    return row


def test_a_create_whose_answer_is_lost_is_found_and_adopted_not_made_twice(
    api, ticketing, service, deliver_inline
):
    api.stall_creates = 1
    incident = lifecycle.open_incident(service=service, title="Disk full", entity_id="db-1")

    trigger = Delivery.objects.get(event="triggered")
    assert (trigger.status, trigger.attempts) == ("pending", 1)
    assert "delivery deadline of 2 s" in trigger.error
    [record_id] = api.records  # the create did land, its answer did not

    trigger = send_again(trigger)
    assert (trigger.status, trigger.remote_id) == ("sent", record_id)
    assert api.requests == [CREATE[api.kind], FIND[api.kind]]

    rita, _ = User.objects.get_or_create(username="rita")
    lifecycle.acknowledge(incident, actor=rita)
    lifecycle.resolve(incident, actor=rita)
    assert api.requests[2:] == [update(api.kind, record_id)] * 2
    assert list(api.records) == [record_id]
    assert api.state(record_id) == RESOLVED[api.kind]
    assert [d.remote_id for d in Delivery.objects.order_by("id")] == [record_id] * 3
    assert RemoteRecord.objects.get().remote_id == record_id


def test_a_lookup_and_a_create_share_one_delivery_deadline(
    api, ticketing, service, deliver_inline
):
    api.fail_creates = 1  # so the next attempt looks up before it creates
    lifecycle.open_incident(service=service, title="Disk full", entity_id="db-1")
    trigger = Delivery.objects.get()
    api.requests.clear()

    api.delay = 1.3  # each answer alone fits the 2 s deadline, a lookup and a create do not
    started = time.monotonic()
    trigger = send_again(trigger)
    elapsed = time.monotonic() - started
    assert (trigger.status, trigger.attempts) == ("pending", 2)
    assert "delivery deadline of 2 s" in trigger.error
    assert api.requests == [FIND[api.kind], CREATE[api.kind]]
    assert elapsed < 2.8  # one deadline for the whole send, not one per request

    # The cut create lands after all; the next attempt finds it instead of making another.
    api.delay = 0
    api.release.set()
    deadline = time.monotonic() + 5
    while not api.records and time.monotonic() < deadline:
        time.sleep(0.05)
    [record_id] = api.records
    trigger = send_again(trigger)
    assert (trigger.status, trigger.remote_id) == ("sent", record_id)
    assert api.requests[2:] == [FIND[api.kind]]


def test_an_acknowledge_recorded_before_the_trigger_is_sent_waits_and_updates_its_record(
    api, ticketing, service, deliver_inline, monkeypatch
):
    with monkeypatch.context() as held:  # the trigger waits in the queue
        held.setattr(sending.delivery_outbox, "enqueue", lambda delivery_id: None)
        incident = lifecycle.open_incident(service=service, title="Disk full", entity_id="e")
    lifecycle.acknowledge(incident)
    # Deliveries of one incident go out in order: the acknowledge may not create the
    # record ahead of the trigger (docs/destinations.md).
    assert api.requests == []
    acknowledge = Delivery.objects.get(event="acknowledged")
    assert (acknowledge.status, acknowledge.attempts) == ("pending", 0)

    sending.send_delivery(Delivery.objects.get(event="triggered").pk)
    [record_id] = api.records
    assert api.requests == [CREATE[api.kind], update(api.kind, record_id)]
    assert [d.status for d in Delivery.objects.order_by("id")] == ["sent", "sent"]

    lifecycle.resolve(incident)
    assert api.requests[2:] == [update(api.kind, record_id)]
    assert list(api.records) == [record_id]
    assert api.state(record_id) == RESOLVED[api.kind]


def test_a_refused_create_is_tried_again_after_a_lookup_finds_nothing(
    api, ticketing, service, deliver_inline
):
    api.fail_creates = 1
    lifecycle.open_incident(service=service, title="Disk full", entity_id="e")
    trigger = Delivery.objects.get()
    assert (trigger.status, trigger.response_status) == ("pending", 503)

    trigger = send_again(trigger)
    [record_id] = api.records
    assert (trigger.status, trigger.remote_id) == ("sent", record_id)
    assert api.requests == [CREATE[api.kind], FIND[api.kind], CREATE[api.kind]]


def test_a_send_waits_while_another_is_creating_the_record(
    api, ticketing, service, deliver_inline
):
    incident = lifecycle.open_incident(service=service, title="Disk full", entity_id="e")
    [record_id] = api.records
    # As if the create's outcome were unknown and another worker were creating it again.
    RemoteRecord.objects.filter(incident=incident).update(
        remote_id="", creating_until=timezone.now() + timedelta(seconds=60))
    api.requests.clear()

    lifecycle.acknowledge(incident)
    ack = Delivery.objects.get(event="acknowledged")
    assert (ack.status, ack.attempts) == ("pending", 1)
    assert "Another delivery for this incident is creating its record" in ack.error
    assert 50 <= (ack.next_attempt_at - timezone.now()).total_seconds() <= 61
    assert api.requests == []
    assert list(api.records) == [record_id]


def test_a_claim_left_by_a_crashed_send_expires_and_the_record_is_adopted(
    api, ticketing, service, deliver_inline
):
    incident = lifecycle.open_incident(service=service, title="Disk full", entity_id="e")
    [record_id] = api.records
    RemoteRecord.objects.filter(incident=incident).update(
        remote_id="", creating_until=timezone.now() - timedelta(seconds=1))
    api.requests.clear()

    lifecycle.acknowledge(incident)
    ack = Delivery.objects.get(event="acknowledged")
    assert (ack.status, ack.remote_id) == ("sent", record_id)
    assert api.requests == [FIND[api.kind], update(api.kind, record_id)]
    assert RemoteRecord.objects.get().remote_id == record_id


def test_each_destination_keeps_its_own_record(api, ticketing, service, deliver_inline):
    other = make_destination(service, api.kind, ticketing.config, name="second desk")
    lifecycle.open_incident(service=service, title="Disk full", entity_id="e")
    assert len(api.records) == 2
    kept = dict(RemoteRecord.objects.values_list("destination_id", "remote_id"))
    assert set(kept) == {ticketing.pk, other.pk}
    assert sorted(kept.values()) == sorted(api.records)


def test_a_kept_record_deleted_on_the_remote_side_is_created_again_in_the_new_state(
    api, ticketing, service, deliver_inline
):
    incident = lifecycle.open_incident(service=service, title="Disk full", entity_id="e")
    [first] = api.records
    del api.records[first]  # someone deleted it over there
    api.requests.clear()

    lifecycle.resolve(incident)
    [second] = api.records
    assert second != first
    assert api.requests == [update(api.kind, first), FIND[api.kind], CREATE[api.kind]]
    assert api.state(second) == RESOLVED[api.kind]
    resolved = Delivery.objects.get(event="resolved")
    assert (resolved.status, resolved.remote_id) == ("sent", second)
    assert RemoteRecord.objects.get().remote_id == second
