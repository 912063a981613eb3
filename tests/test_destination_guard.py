"""The outbound HTTP helper: the private-address guard (on, as in production) and how
responses and network errors are classified for retrying."""

import socket
import threading
import time
from datetime import timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from destinations.models import Delivery
from incidents import lifecycle
from tests.delivery_helpers import make_destination
from tests.sinks import HTTPSink, Reply
from tocsin.transport import TransportError, http
from tocsin.transport.http import BlockedAddress

REAL_GETADDRINFO = socket.getaddrinfo


@pytest.fixture
def guard_on(settings):
    settings.TOCSIN_ALLOW_PRIVATE_DESTINATIONS = False


@pytest.fixture
def sink():
    """An HTTP sink that is NOT the http_sink fixture, so the guard stays on."""
    sink = HTTPSink()
    yield sink
    sink.close()


def fake_dns(monkeypatch, names: dict[str, list[str]]):
    """Resolve the given names to the given addresses; everything else as usual."""

    def getaddrinfo(host, port, *args, **kwargs):
        if host in names:
            return [
                (socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM,
                 socket.IPPROTO_TCP, "", (address, port))
                for address in names[host]
            ]
        return REAL_GETADDRINFO(host, port, *args, **kwargs)

    monkeypatch.setattr(http.socket, "getaddrinfo", getaddrinfo)


# --- The guard ----------------------------------------------------------------------------


@pytest.mark.parametrize("host", [
    "127.0.0.1", "127.1.2.3", "10.0.0.5", "192.168.1.1", "172.16.0.1", "172.31.255.254",
    "169.254.169.254", "100.64.0.1", "0.0.0.0", "[::1]", "[::ffff:127.0.0.1]",
    "[::ffff:169.254.169.254]", "[fe80::1]", "[fd00::1]", "[::]", "localhost",
])
def test_private_loopback_and_link_local_addresses_are_refused(guard_on, sink, host):
    port = sink.url.rsplit(":", 1)[1]
    with pytest.raises(BlockedAddress) as caught:
        http.request("POST", f"http://{host}:{port}/hook", json_body={"x": 1})
    assert caught.value.permanent is True
    assert "TOCSIN_ALLOW_PRIVATE_DESTINATIONS" in str(caught.value)
    assert sink.requests == []


@pytest.mark.parametrize("address", [
    # IPv6 forms that lead to an internal IPv4 address: NAT64 (RFC 6052), 6to4 (RFC 3056)
    # and the deprecated IPv4-compatible form.
    "64:ff9b::a00:5", "64:ff9b::7f00:1", "2002:a9fe:a9fe::1", "2002:7f00:1::", "::10.0.0.5",
    "::127.0.0.1",
    # Local-use NAT64 (RFC 8215) and the deprecated site-local range stay inside a network.
    "64:ff9b:1::a00:1", "fec0::1",
])
def test_ipv6_addresses_embedding_a_private_ipv4_address_are_not_public(address):
    assert http.is_public_address(address) is False


@pytest.mark.parametrize("address", [
    "93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "64:ff9b::808:808", "2002:808:808::1",
])
def test_public_addresses_pass_the_guard(address):
    assert http.is_public_address(address) is True


def test_multicast_and_broadcast_are_not_public():
    assert not http.is_public_address("224.0.0.1")
    assert not http.is_public_address("255.255.255.255")
    assert not http.is_public_address("ff02::1")


def test_a_name_resolving_to_loopback_is_refused_naming_the_address(guard_on, sink, monkeypatch):
    fake_dns(monkeypatch, {"hooks.example": ["127.0.0.1"]})
    port = sink.url.rsplit(":", 1)[1]
    with pytest.raises(BlockedAddress, match=r"hooks\.example resolves to 127\.0\.0\.1"):
        http.request("POST", f"http://hooks.example:{port}/", json_body={})
    assert sink.requests == []


def test_a_name_resolving_to_several_addresses_is_refused_if_any_is_private(
    guard_on, sink, monkeypatch
):
    fake_dns(monkeypatch, {"mixed.example": ["93.184.216.34", "10.0.0.7"]})
    with pytest.raises(BlockedAddress, match="10.0.0.7"):
        http.request("GET", "http://mixed.example/")


def test_the_guard_connects_to_the_address_it_vetted_not_a_second_lookup(
    guard_on, sink, monkeypatch
):
    """A rebinding answer (public first, loopback after) never reaches the loopback sink:
    the name is resolved once, and the connection goes to that address."""
    answers = iter([["192.0.2.1"], ["127.0.0.1"], ["127.0.0.1"]])
    seen = []

    def getaddrinfo(host, port, *args, **kwargs):
        if host == "rebind.example":
            address = next(answers)[0]
            seen.append(address)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]
        return REAL_GETADDRINFO(host, port, *args, **kwargs)

    monkeypatch.setattr(http.socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(http, "is_public_address", lambda address: address == "192.0.2.1")

    def create_connection(address, timeout=None):
        raise ConnectionRefusedError(f"refused {address[0]}")

    monkeypatch.setattr(http.socket, "create_connection", create_connection)
    port = sink.url.rsplit(":", 1)[1]
    with pytest.raises(TransportError, match="refused 192.0.2.1"):
        http.request("GET", f"http://rebind.example:{port}/")
    assert seen == ["192.0.2.1"]
    assert sink.requests == []


class RedirectingServer:
    """A one-route server on 127.0.0.2 (loopback too, so it can play a 'public' host while
    127.0.0.1 stays private) that answers every request with a redirect."""

    def __init__(self, location: str, status: int = 302):
        self.requests = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_any(self):
                length = int(self.headers.get("Content-Length") or 0)
                server.requests.append((self.command, self.path, self.rfile.read(length)))
                self.send_response(status)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = do_any

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.2", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def public_host(monkeypatch):
    """'public.example' resolves to 127.0.0.2, which the guard is told is public; every
    other address is judged by the real guard."""
    fake_dns(monkeypatch, {"public.example": ["127.0.0.2"]})
    real = http.is_public_address
    monkeypatch.setattr(http, "is_public_address",
                        lambda address: address == "127.0.0.2" or real(address))


def test_a_redirect_to_loopback_is_refused_and_the_loopback_sink_gets_nothing(
    guard_on, sink, public_host
):
    first_hop = RedirectingServer(f"{sink.url}/internal")
    try:
        with pytest.raises(BlockedAddress, match="127.0.0.1") as caught:
            http.request("GET", f"http://public.example:{first_hop.port}/hook")
    finally:
        first_hop.close()
    assert caught.value.permanent is True
    assert [(method, path) for method, path, _ in first_hop.requests] == [("GET", "/hook")]
    assert sink.requests == []


def test_a_redirect_to_a_name_resolving_to_a_private_address_is_refused(
    guard_on, sink, public_host, monkeypatch
):
    port = sink.url.rsplit(":", 1)[1]
    fake_dns(monkeypatch, {"public.example": ["127.0.0.2"], "inside.example": ["10.1.2.3"]})
    first_hop = RedirectingServer(f"http://inside.example:{port}/", status=307)
    try:
        with pytest.raises(BlockedAddress, match="inside.example resolves to 10.1.2.3"):
            http.request("GET", f"http://public.example:{first_hop.port}/")
    finally:
        first_hop.close()
    assert len(first_hop.requests) == 1


def test_the_redirect_rig_does_follow_a_redirect_to_a_public_host(guard_on, sink, public_host):
    """Control for the two tests above: the same rig follows a redirect the guard allows."""
    target = RedirectingServer("/again")
    first_hop = RedirectingServer(f"http://public.example:{target.port}/landing", status=307)
    try:
        with pytest.raises(TransportError, match="More than 3 redirects"):
            http.request("GET", f"http://public.example:{first_hop.port}/hook")
    finally:
        first_hop.close()
        target.close()
    assert len(first_hop.requests) == 1
    assert [(m, p) for m, p, _ in target.requests] == [
        ("GET", "/landing"), ("GET", "/again"), ("GET", "/again")]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_delivery_to_a_private_url_fails_after_one_attempt_naming_the_address(
    service, guard_on, sink, deliver_inline
):
    make_destination(service, "webhook", {"url": f"{sink.url}/hook"})
    lifecycle.open_incident(service=service, title="x", entity_id="e")

    failed = Delivery.objects.get()
    assert (failed.status, failed.attempts) == ("failed", 1)
    assert "127.0.0.1" in failed.error and "private" in failed.error
    assert failed.response_status is None
    assert deliver_inline == []
    assert sink.requests == []


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_same_private_url_is_reached_when_private_destinations_are_allowed(
    service, settings, sink, deliver_inline
):
    settings.TOCSIN_ALLOW_PRIVATE_DESTINATIONS = True
    make_destination(service, "webhook", {"url": f"{sink.url}/hook"})
    lifecycle.open_incident(service=service, title="x", entity_id="e")

    sent = Delivery.objects.get()
    assert (sent.status, sent.attempts, sent.response_status) == ("sent", 1, 200)
    assert [(r.method, r.path) for r in sink.requests] == [("POST", "/hook")]


# --- Status and error classification ------------------------------------------------------


@pytest.fixture
def reachable(settings):
    settings.TOCSIN_ALLOW_PRIVATE_DESTINATIONS = True


def test_a_2xx_answer_is_returned(reachable, sink):
    sink.reply(Reply(201, {"id": 7}))
    response = http.request("POST", f"{sink.url}/x", json_body={"a": 1},
                            params={"q": "1 2"}, auth=("user", "pw"))
    assert (response.status, response.json()) == (201, {"id": 7})
    received = sink.requests[0]
    assert received.query == {"q": "1 2"}
    assert received.headers["authorization"] == "Basic dXNlcjpwdw=="
    assert received.headers["user-agent"] == http.USER_AGENT


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_5xx_is_retryable(reachable, sink, status):
    sink.reply(Reply(status, {"error": "down"}))
    with pytest.raises(TransportError) as caught:
        http.request("POST", f"{sink.url}/x", json_body={})
    error = caught.value
    assert (error.permanent, error.status, error.retry_after) == (False, status, None)


def test_a_429_is_retryable_after_the_seconds_retry_after_gives(reachable, sink):
    sink.reply(Reply(429, {"error": "slow down"}, {"Retry-After": "30"}))
    with pytest.raises(TransportError) as caught:
        http.request("POST", f"{sink.url}/x", json_body={})
    assert (caught.value.permanent, caught.value.status) == (False, 429)
    assert caught.value.retry_after == 30


def test_a_retry_after_given_as_an_http_date_is_honoured(reachable, sink):
    when = timezone.now() + timedelta(seconds=120)
    sink.reply(Reply(503, {}, {"Retry-After": format_datetime(when, usegmt=True)}))
    with pytest.raises(TransportError) as caught:
        http.request("GET", f"{sink.url}/x")
    assert caught.value.permanent is False
    assert 110 <= caught.value.retry_after <= 121


def test_a_retry_after_in_the_past_or_unreadable_does_not_delay(reachable, sink):
    sink.reply(Reply(429, {}, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}),
               Reply(429, {}, {"Retry-After": "soon"}))
    retry_afters = []
    for _ in range(2):
        with pytest.raises(TransportError) as caught:
            http.request("GET", f"{sink.url}/x")
        retry_afters.append(caught.value.retry_after)
    assert retry_afters == [0.0, None]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422])
def test_other_4xx_are_permanent_with_the_body_excerpt_kept(reachable, sink, status):
    sink.reply(Reply(status, {"error": "no such hook", "pad": "x" * 5000}))
    with pytest.raises(TransportError) as caught:
        http.request("POST", f"{sink.url}/x", json_body={})
    error = caught.value
    assert (error.permanent, error.status) == (True, status)
    assert error.body.startswith('{"error": "no such hook"')
    assert len(error.body) == http.EXCERPT_CHARS
    assert str(error).startswith(f"HTTP {status}: ") and "no such hook" in str(error)


def test_a_status_the_caller_allows_is_returned(reachable, sink):
    sink.reply(Reply(404, {"error": "none"}))
    response = http.request("GET", f"{sink.url}/x", allow_statuses=(404,))
    assert response.status == 404


def test_connection_refused_is_retryable(reachable):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Bound and closed again: nothing listens there now.
    with pytest.raises(TransportError) as caught:
        http.request("POST", f"http://127.0.0.1:{port}/x", json_body={})
    assert caught.value.permanent is False
    assert "ConnectionRefused" in str(caught.value)


def test_a_name_that_does_not_resolve_is_retryable(reachable, monkeypatch):
    def getaddrinfo(host, port, *args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(http.socket, "getaddrinfo", getaddrinfo)
    with pytest.raises(TransportError, match="Cannot resolve nowhere.example") as caught:
        http.request("GET", "http://nowhere.example/")
    assert caught.value.permanent is False


def test_a_server_slower_than_the_timeout_is_retryable(reachable, settings, silent_port):
    settings.TOCSIN_DELIVERY_TIMEOUT_SECONDS = 1
    started = time.monotonic()
    with pytest.raises(TransportError) as caught:
        http.request("POST", f"http://127.0.0.1:{silent_port}/x", json_body={})
    assert caught.value.permanent is False
    assert "timed out" in str(caught.value) or "Timeout" in str(caught.value)
    assert time.monotonic() - started < 5


def test_three_redirects_are_followed(reachable, sink):
    sink.reply(*[Reply(302, {}, {"Location": f"/hop{n}"}) for n in range(1, 4)])
    response = http.request("GET", f"{sink.url}/start")
    assert response.status == 200
    assert [r.path for r in sink.requests] == ["/start", "/hop1", "/hop2", "/hop3"]


def test_more_than_three_redirects_are_permanent(reachable, sink):
    sink.default = Reply(302, {}, {"Location": "/again"})
    with pytest.raises(TransportError, match="More than 3 redirects") as caught:
        http.request("GET", f"{sink.url}/start")
    assert caught.value.permanent is True
    assert len(sink.requests) == 4


def test_a_url_that_is_not_http_is_permanent(reachable):
    with pytest.raises(TransportError, match="Not an http") as caught:
        http.request("GET", "file:///etc/passwd")
    assert caught.value.permanent is True


def test_credentials_stay_on_a_same_origin_redirect(reachable, sink):
    sink.reply(Reply(307, {}, {"Location": "/moved"}))
    http.request("POST", f"{sink.url}/hook", json_body={"x": 1},
                 headers={"Authorization": "GenieKey secret", "X-ChatWorkToken": "t"})
    assert [r.headers.get("authorization") for r in sink.requests] == ["GenieKey secret"] * 2
    assert sink.requests[1].headers.get("x-chatworktoken") == "t"
    assert sink.requests[1].json == {"x": 1}  # a 307 keeps the method and the body


def test_credentials_are_dropped_when_a_redirect_leaves_the_origin(reachable, sink):
    elsewhere = HTTPSink()
    try:
        # Same machine, another origin (other host name and port).
        other = elsewhere.url.replace("127.0.0.1", "localhost")
        sink.reply(Reply(307, {}, {"Location": f"{other}/landing"}))
        http.request("GET", f"{sink.url}/hook",
                     headers={"Authorization": "Bearer secret", "X-ChatWorkToken": "t"})
    finally:
        elsewhere.close()
    [landed] = elsewhere.requests
    assert "authorization" not in landed.headers and "x-chatworktoken" not in landed.headers


def test_a_body_is_never_re_sent_to_another_origin(reachable, sink):
    # PagerDuty's routing_key and ilert's integrationKey travel in the body.
    elsewhere = HTTPSink()
    try:
        other = elsewhere.url.replace("127.0.0.1", "localhost")
        sink.reply(Reply(307, {}, {"Location": f"{other}/landing"}))
        with pytest.raises(TransportError, match="redirect to another host") as caught:
            http.request("POST", f"{sink.url}/hook", json_body={"routing_key": "secret"})
    finally:
        elsewhere.close()
    assert caught.value.permanent is True
    assert elsewhere.requests == []


def test_a_303_is_followed_with_a_get_and_no_body(reachable, sink):
    sink.reply(Reply(303, {}, {"Location": "/result"}))
    http.request("POST", f"{sink.url}/hook", json_body={"x": 1})
    assert [(r.method, r.path, r.body) for r in sink.requests] == [
        ("POST", "/hook", b'{"x":1}'), ("GET", "/result", b"")]
