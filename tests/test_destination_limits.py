"""The outbound HTTP helper's limits: one deadline for a whole send (DNS, connect, the full
response), at most 64 KB read of any answer, and Retry-After read in every form a server
may send, never turning a retryable answer into a failed delivery."""

import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from destinations import sending
from destinations.models import Delivery
from incidents import lifecycle
from tests.delivery_helpers import make_destination
from tests.sinks import HTTPSink, Reply
from tocsin.transport import TransportError, http

REAL_GETADDRINFO = socket.getaddrinfo


@pytest.fixture
def reachable(settings):
    settings.TOCSIN_ALLOW_PRIVATE_DESTINATIONS = True
    settings.TOCSIN_DELIVERY_RETRY_MAX_SECONDS = 3600


@pytest.fixture
def sink():
    sink = HTTPSink()
    yield sink
    sink.close()


class Drip:
    """A server that answers one byte per second, for 30 seconds, in the status line and
    headers or in the body."""

    def __init__(self, where: str):
        stop = self.stop = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                head = b"HTTP/1.1 200 OK\r\nContent-Length: 30\r\n\r\n"
                if where == "body":
                    self.wfile.write(head)
                    head = b""
                try:
                    for byte in (head or b"x" * 30)[:30]:
                        if stop.wait(1):
                            return
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                except OSError:
                    return  # the client hung up, as it should

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(params=["headers", "body"])
def drip(request):
    server = Drip(request.param)
    yield server
    server.close()


# --- One deadline per send ----------------------------------------------------------------


def test_a_server_dripping_one_byte_a_second_is_cut_off_at_the_deadline(
    reachable, settings, drip
):
    settings.TOCSIN_DELIVERY_TIMEOUT_SECONDS = 10  # each byte comes well within this
    settings.TOCSIN_DELIVERY_DEADLINE_SECONDS = 2
    started = time.monotonic()
    with pytest.raises(TransportError) as caught:
        http.request("POST", f"{drip.url}/hook", json_body={"a": 1})
    elapsed = time.monotonic() - started
    assert caught.value.permanent is False
    assert str(caught.value) == ("No complete answer within the delivery deadline of 2 s "
                                 "(DNS lookup, connect and the full response)")
    assert 1.5 < elapsed < 5


def test_a_dripping_destination_leaves_the_delivery_pending_with_the_deadline_error(
    reachable, settings, service, drip, deliver_inline, inline
):
    settings.TOCSIN_DELIVERY_DEADLINE_SECONDS = 2
    make_destination(service, "webhook", {"url": f"{drip.url}/hook"})
    inline(lifecycle.open_incident, service=service, title="Disk full", entity_id="db-1")
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    assert "delivery deadline of 2 s" in delivery.error
    assert len(deliver_inline) == 1


def test_a_slow_dns_answer_counts_towards_the_deadline(reachable, settings, sink, monkeypatch):
    settings.TOCSIN_DELIVERY_DEADLINE_SECONDS = 2
    answer = threading.Event()

    def slow_getaddrinfo(host, port, *args, **kwargs):
        answer.wait(30)
        return REAL_GETADDRINFO("127.0.0.1", port, *args, **kwargs)

    monkeypatch.setattr(http.socket, "getaddrinfo", slow_getaddrinfo)
    started = time.monotonic()
    try:
        with pytest.raises(TransportError, match="delivery deadline of 2 s") as caught:
            http.request("POST", f"http://hooks.example:{sink.url.rsplit(':', 1)[1]}/x",
                         json_body={})
    finally:
        answer.set()
    assert caught.value.permanent is False
    assert time.monotonic() - started < 4
    assert sink.requests == []


def test_a_send_test_in_the_web_request_stops_at_the_shorter_test_deadline(
    reachable, settings, service, drip, deliver_inline, monkeypatch
):
    settings.TOCSIN_DELIVERY_DEADLINE_SECONDS = 30
    monkeypatch.setattr(http, "TEST_SEND_DEADLINE_SECONDS", 1)
    target = make_destination(service, "webhook", {"url": f"{drip.url}/hook"})
    started = time.monotonic()
    test = sending.send_test(target)
    assert time.monotonic() - started < 4
    assert (test.status, test.attempts) == ("pending", 1)
    assert "delivery deadline of 1 s" in test.error


def test_a_test_send_gets_the_shorter_deadline_and_never_a_longer_one(settings):
    settings.TOCSIN_DELIVERY_DEADLINE_SECONDS = 30
    with http.shorter_deadline(http.TEST_SEND_DEADLINE_SECONDS):
        assert http.current_deadline().seconds == 10
    assert http.current_deadline().seconds == 30
    settings.TOCSIN_DELIVERY_DEADLINE_SECONDS = 4
    with http.shorter_deadline(http.TEST_SEND_DEADLINE_SECONDS):
        assert http.current_deadline().seconds == 4


# --- At most 64 KB of an answer -----------------------------------------------------------


def test_only_the_first_64_kb_of_a_1_mb_answer_is_read(reachable, sink):
    sink.reply(Reply(200, b"x" * (1024 * 1024)))
    response = http.request("POST", f"{sink.url}/x", json_body={})
    assert (response.status, len(response.body), response.truncated) == (200, 65536, True)
    assert response.text == "x" * 65536


def test_an_answer_of_exactly_64_kb_is_read_whole(reachable, sink):
    sink.reply(Reply(200, b"y" * 65536))
    response = http.request("POST", f"{sink.url}/x", json_body={})
    assert (len(response.body), response.truncated) == (65536, False)


def test_a_cut_answer_a_kind_must_parse_is_a_clear_permanent_error(reachable, sink):
    sink.reply(Reply(201, b'{"result": "' + b"x" * (1024 * 1024) + b'"}'))
    response = http.request("POST", f"{sink.url}/x", json_body={})
    with pytest.raises(TransportError) as caught:
        response.json()
    assert str(caught.value) == ("The answer from 127.0.0.1 (HTTP 201) is larger than 64 KB, "
                                 "so Tocsin cannot read it; check the destination's URL")
    assert caught.value.permanent is True


def test_a_huge_error_answer_still_fails_with_its_start_kept(reachable, sink):
    sink.reply(Reply(503, b"down " * 100_000))
    with pytest.raises(TransportError) as caught:
        http.request("POST", f"{sink.url}/x", json_body={})
    assert (caught.value.permanent, caught.value.status) == (False, 503)
    assert caught.value.body == ("down " * 400)[:2000]


# --- Retry-After --------------------------------------------------------------------------

PAST = datetime(2015, 10, 21, 7, 28, tzinfo=UTC)


def in_two_minutes() -> datetime:
    return datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=120)


# Each form RFC 9110 allows, plus RFC 5322's numeric zones that some servers send.
DATE_FORMS = {
    "IMF-fixdate": lambda d: d.strftime("%a, %d %b %Y %H:%M:%S GMT"),
    "RFC 850": lambda d: d.strftime("%A, %d-%b-%y %H:%M:%S GMT"),
    "asctime": lambda d: d.strftime("%a %b ") + f"{d.day:2d}" + d.strftime(" %H:%M:%S %Y"),
    "-0000": lambda d: d.strftime("%a, %d %b %Y %H:%M:%S -0000"),
    "+0000": lambda d: d.strftime("%a, %d %b %Y %H:%M:%S +0000"),
    "+0200": lambda d: (d + timedelta(hours=2)).strftime("%a, %d %b %Y %H:%M:%S +0200"),
    "email.utils": lambda d: format_datetime(d, usegmt=True),
}


@pytest.mark.parametrize("form", sorted(DATE_FORMS))
def test_a_retry_after_date_in_the_future_is_the_wait(reachable, form):
    header = DATE_FORMS[form](in_two_minutes())
    assert 110 <= http.retry_after_seconds(header) <= 121


@pytest.mark.parametrize("form", sorted(DATE_FORMS))
def test_a_retry_after_date_in_the_past_means_now(reachable, form):
    assert http.retry_after_seconds(DATE_FORMS[form](PAST)) == 0.0


@pytest.mark.parametrize(("header", "seconds"), [
    ("120", 120.0),
    (" 7 ", 7.0),
    ("0", 0.0),
    ("3600", 3600.0),
    ("86400", 3600.0),  # capped at TOCSIN_DELIVERY_RETRY_MAX_SECONDS
    ("9" * 5000, 3600.0),
    ("Fri, 31 Dec 9999 23:59:59 GMT", 3600.0),
    ("Wed, 21 Oct 2015 07:28:00 -0000", 0.0),
    ("", None),
    (None, None),
    ("soon", None),
    ("-5", None),
    ("1.5", None),
    ("١٢", None),  # digits, but not the ASCII ones the header allows
    ("Wed, 32 Oct 2015 07:28:00 -0000", None),
    ("Mon, 99 Foo 99999 99:99:99 -0000", None),
    ("Wed, 21 Oct 2015 25:61:00 GMT", None),
])
def test_retry_after_values(reachable, header, seconds):
    assert http.retry_after_seconds(header) == seconds


def test_a_503_with_a_minus_0000_retry_after_stays_retryable(reachable, sink):
    sink.reply(Reply(503, {}, {"Retry-After": DATE_FORMS["-0000"](in_two_minutes())}))
    with pytest.raises(TransportError) as caught:
        http.request("POST", f"{sink.url}/x", json_body={})
    assert (caught.value.permanent, caught.value.status) == (False, 503)
    assert 110 <= caught.value.retry_after <= 121


def test_a_429_with_an_unreadable_retry_after_is_retried_with_the_normal_backoff(
    reachable, settings, sink, service, inline
):
    settings.TOCSIN_DELIVERY_RETRY_BASE_SECONDS = 15
    make_destination(service, "webhook", {"url": f"{sink.url}/hook"})
    sink.reply(Reply(429, {}, {"Retry-After": "Wed, 32 Oct 2015 07:28:00 -0000"}))
    inline(lifecycle.open_incident, service=service, title="Disk full", entity_id="db-1")
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.response_status) == ("pending", 429)
    wait = (delivery.next_attempt_at - delivery.last_attempt_at).total_seconds()
    assert 11 <= wait <= 19


def test_a_tls_handshake_that_never_ends_is_cut_off_at_the_deadline(
    reachable, settings, silent_port
):
    settings.TOCSIN_DELIVERY_DEADLINE_SECONDS = 2
    started = time.monotonic()
    with pytest.raises(TransportError, match="delivery deadline of 2 s") as caught:
        http.request("POST", f"https://127.0.0.1:{silent_port}/hook", json_body={})
    assert caught.value.permanent is False
    assert 1.5 < time.monotonic() - started < 5
