"""The one HTTP client every outgoing request goes through: destination kinds today, and
any later sender (an SMS or voice provider's REST API, an ntfy server) alike.

It owns what must be the same for all of them: the timeouts and the deadline, the
private-address guard, the redirect rules, the response-size cap, and how a response becomes
success, a retryable error or a permanent one (TransportError). Callers build a request and
read the response; they never open sockets themselves.

One deadline (TOCSIN_DELIVERY_DEADLINE_SECONDS) covers a whole send: DNS lookup, connect,
request and the full response of every redirect hop, and of every request one delivery
attempt makes (a ServiceNow lookup, create and update share it; see one_send). A per-read
timeout alone is not enough: a server that drips one byte at a time never trips it and
could hold a worker forever; nor is a deadline per request, which would let a kind making
three requests run three times as long, past the worker's task timeout.

The guard resolves the host name once, refuses the request if any resolved address is
private, and then connects to exactly that vetted address (with the original host name in
the Host header and for TLS). Checking a name and then letting the socket library resolve
it again would let a DNS answer that changes in between (rebinding) reach an internal
address.
"""

import base64
import http.client
import ipaddress
import json
import re
import socket
import ssl
import threading
import time
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC
from email.utils import parsedate_to_datetime
from urllib.parse import urlencode, urljoin, urlsplit

from django.conf import settings
from django.utils.http import parse_http_date

from tocsin.transport import TransportError

USER_AGENT = "Tocsin/1.0 (+incident destinations)"
REDIRECT_STATUSES = {301, 302, 303, 307, 308}
MAX_REDIRECTS = 3
# Headers that carry a kind's credentials; dropped when a redirect leaves the origin.
CREDENTIAL_HEADERS = {"authorization", "x-chatworktoken", "x-tocsin-signature"}
EXCERPT_CHARS = 2000
# Only this much of any response body is read: kinds need a few fields at most, and a huge
# answer must not fill a worker's memory. The rest is dropped, not an error, unless a kind
# has to parse the body (see Response.json).
MAX_RESPONSE_BYTES = 64 * 1024
# "Send test" runs in the person's web request, which should not hang for the full deadline.
TEST_SEND_DEADLINE_SECONDS = 10
# The deadline in force when a caller set a shorter one (see shorter_deadline).
deadline_override: ContextVar[float | None] = ContextVar("deadline_override", default=None)


class BlockedAddress(TransportError):
    """The destination's host resolves to an address the guard refuses; never retried."""

    def __init__(self, message: str):
        super().__init__(message, permanent=True)


@dataclass
class Response:
    status: int
    body: bytes
    headers: dict = field(default_factory=dict)
    # True when the body was longer than MAX_RESPONSE_BYTES and only its start was read.
    truncated: bool = False
    host: str = ""

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self):
        """The body as JSON, None when it is not JSON. A cut body cannot be parsed, and
        guessing would be worse than saying so."""
        if self.truncated:
            raise TransportError(
                f"The answer from {self.host or 'the destination'} (HTTP {self.status}) is "
                f"larger than {MAX_RESPONSE_BYTES // 1024} KB, so Tocsin cannot read it; "
                "check the destination's URL", permanent=True, status=self.status,
                body=self.text[:EXCERPT_CHARS])
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None


class Deadline:
    """The moment by which a whole send must be over."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.at = time.monotonic() + seconds

    def remaining(self) -> float:
        left = self.at - time.monotonic()
        if left <= 0:
            raise self.exceeded()
        return left

    def passed(self) -> bool:
        return time.monotonic() >= self.at

    def exceeded(self) -> TransportError:
        return TransportError(
            f"No complete answer within the delivery deadline of {self.seconds:g} s "
            "(DNS lookup, connect and the full response)", permanent=False)


@contextmanager
def shorter_deadline(seconds: float):
    """Sends inside this block get at most ``seconds`` (never more than the setting)."""
    token = deadline_override.set(min(seconds, settings.TOCSIN_DELIVERY_DEADLINE_SECONDS))
    try:
        yield
    finally:
        deadline_override.reset(token)


# The deadline of the send in progress, shared by all its requests (see one_send).
send_deadline: ContextVar[Deadline | None] = ContextVar("send_deadline", default=None)


def new_deadline() -> Deadline:
    seconds = deadline_override.get()
    return Deadline(seconds if seconds is not None
                    else settings.TOCSIN_DELIVERY_DEADLINE_SECONDS)


@contextmanager
def one_send():
    """Every request inside this block (a ServiceNow lookup, create and update) shares one
    deadline, started here: together they take at most TOCSIN_DELIVERY_DEADLINE_SECONDS,
    which the settings keep below the worker's task timeout, so a send is never killed
    half-way by the worker. A block inside another keeps the outer, running deadline."""
    token = send_deadline.set(send_deadline.get() or new_deadline())
    try:
        yield
    finally:
        send_deadline.reset(token)


def current_deadline() -> Deadline:
    """The running deadline of the send in progress; outside one_send, a request on its own
    gets a fresh one."""
    return send_deadline.get() or new_deadline()


class Watchdog:
    """Shuts the connection's socket down when the deadline passes, whatever the send is
    blocked on (TLS handshake, headers, a dripping body); the blocked read then ends at once.

    It shuts down a duplicate of the socket's file descriptor: shutdown acts on the
    connection itself, and the duplicate stays valid while a TLS wrapper replaces the
    original socket object. The lock keeps it from touching a descriptor already closed
    (and perhaps reused) after the send ended.
    """

    def __init__(self, deadline: Deadline):
        self.deadline = deadline
        self.lock = threading.Lock()
        self.sock = None
        self.fired = False
        self.stopped = False
        self.timer = threading.Timer(max(0.0, deadline.at - time.monotonic()), self.fire)
        self.timer.daemon = True
        self.timer.start()

    def watch(self, sock: socket.socket) -> None:
        with self.lock:
            if self.fired:
                sock.close()
                raise self.deadline.exceeded()
            self.sock = socket.fromfd(sock.fileno(), sock.family, sock.type)

    def fire(self) -> None:
        with self.lock:
            self.fired = True
            if self.sock is not None and not self.stopped:
                with suppress(OSError):
                    self.sock.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        self.timer.cancel()
        with self.lock:
            self.stopped = True
            if self.sock is not None:
                self.sock.close()


# IPv6 prefixes whose last 32 bits are an IPv4 address the packets end up at: NAT64's
# well-known prefix (RFC 6052) and the deprecated IPv4-compatible form (RFC 4291 2.5.5.1).
EMBEDDING_PREFIXES = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("::/96"))
# Never public: local-use NAT64 (RFC 8215, leads into the local network) and the deprecated
# site-local range, which some networks still route internally.
NEVER_PUBLIC = (ipaddress.ip_network("64:ff9b:1::/48"), ipaddress.ip_network("fec0::/10"))


def is_public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if any(ip in network for network in NEVER_PUBLIC):
            return False
        # Judge an address that leads to an IPv4 one (mapped, 6to4, NAT64…) by that one:
        # Python counts 64:ff9b::a00:5 as global, yet behind NAT64 it reaches 10.0.0.5.
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif ip.sixtofour is not None:
            ip = ip.sixtofour
        elif any(ip in prefix for prefix in EMBEDDING_PREFIXES):
            ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.is_global and not ip.is_multicast


def lookup(host: str, port: int, deadline: Deadline) -> list:
    """getaddrinfo bounded by the deadline. The system resolver has no timeout of its own,
    so it runs in a thread the send stops waiting for; a lookup that never ends only keeps
    that small thread, not the worker."""
    outcome = {}

    def run():
        try:
            outcome["infos"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except Exception as exc:  # handed to the waiting send below
            outcome["error"] = exc

    thread = threading.Thread(target=run, name=f"resolve {host}", daemon=True)
    thread.start()
    thread.join(deadline.remaining())
    if thread.is_alive():
        raise deadline.exceeded()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["infos"]


def resolve(host: str, port: int, deadline: Deadline | None = None, *,
            trusted: bool = False) -> tuple[int, str]:
    """Resolve ``host`` and return the (family, address) to connect to, refusing private
    addresses unless TOCSIN_ALLOW_PRIVATE_DESTINATIONS is on or the host is ``trusted``
    (it comes from an operator's setting, not from a user)."""
    try:
        infos = lookup(host, port, deadline or current_deadline())
    except socket.gaierror as exc:
        raise TransportError(f"Cannot resolve {host}: {exc.strerror}", permanent=False) from exc
    if not trusted and not settings.TOCSIN_ALLOW_PRIVATE_DESTINATIONS:
        # Every answer must be public: picking a public one out of a mixed answer would
        # still let an attacker-controlled name point some connections inward.
        for _, _, _, _, sockaddr in infos:
            if not is_public_address(sockaddr[0]):
                raise BlockedAddress(
                    f"{host} resolves to {sockaddr[0]}, a private, loopback or link-local "
                    "address; set TOCSIN_ALLOW_PRIVATE_DESTINATIONS=true to allow it"
                )
    family, _, _, _, sockaddr = infos[0]
    return family, sockaddr[0]


class PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to an address chosen beforehand, whatever the host name says, and puts the
    socket under the send's watchdog."""

    def __init__(self, host, port, *, address, timeout, watchdog):
        super().__init__(host, port, timeout=timeout)
        self.pinned_address = address
        self.watchdog = watchdog

    def open_socket(self):
        timeout = min(self.timeout, self.watchdog.deadline.remaining())
        sock = socket.create_connection((self.pinned_address, self.port), timeout)
        self.watchdog.watch(sock)
        return sock

    def connect(self):
        self.sock = self.open_socket()


class PinnedHTTPSConnection(PinnedHTTPConnection, http.client.HTTPSConnection):
    def __init__(self, host, port, *, address, timeout, watchdog):
        http.client.HTTPSConnection.__init__(self, host, port, timeout=timeout,
                                             context=ssl.create_default_context())
        self.pinned_address = address
        self.watchdog = watchdog

    def connect(self):
        self.sock = self._context.wrap_socket(self.open_socket(), server_hostname=self.host)


DELAY_SECONDS = re.compile(r"[0-9]+")


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (RFC 9110 10.2.3: delay-seconds or an
    HTTP date), capped at TOCSIN_DELIVERY_RETRY_MAX_SECONDS; None when it says nothing
    usable, so the normal backoff applies. Never raises: a remote's odd header must not
    turn a retryable answer into a failed delivery."""
    value = (value or "").strip()
    if not value:
        return None
    ceiling = float(settings.TOCSIN_DELIVERY_RETRY_MAX_SECONDS)
    if DELAY_SECONDS.fullmatch(value):
        # Compared as text first: int() refuses strings of thousands of digits.
        return ceiling if len(value) > 12 else min(float(value), ceiling)
    when = http_date_timestamp(value)
    if when is None:
        return None
    return min(max(0.0, when - time.time()), ceiling)


def http_date_timestamp(value: str) -> float | None:
    """An HTTP date in any of the three forms RFC 9110 5.6.7 accepts (IMF-fixdate, RFC 850,
    asctime), or an RFC 5322 date with a numeric zone, as a Unix timestamp."""
    try:
        return float(parse_http_date(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        # "-0000" gives a naive datetime (RFC 5322 reads it as "zone unknown"); HTTP dates
        # are always UTC, so that is what it means here.
        when = when.replace(tzinfo=UTC)
    try:
        return when.timestamp()
    except (ValueError, OverflowError):
        return None


def _send_once(method: str, url: str, body: bytes | None, headers: dict,
               deadline: Deadline, *, trusted: bool = False) -> Response:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TransportError(f"Not an http(s) URL: {url!r}", permanent=True)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    _, address = resolve(parts.hostname, port, deadline, trusted=trusted)
    connection_class = PinnedHTTPSConnection if parts.scheme == "https" else PinnedHTTPConnection
    watchdog = Watchdog(deadline)
    connection = connection_class(parts.hostname, port, address=address, watchdog=watchdog,
                                  timeout=settings.TOCSIN_DELIVERY_TIMEOUT_SECONDS)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    try:
        connection.request(method, path, body=body, headers=headers)
        raw = connection.getresponse()
        content = raw.read(MAX_RESPONSE_BYTES + 1)
        if watchdog.fired:
            # A cut connection can look like a short, complete body; it is not one.
            raise deadline.exceeded()
        return Response(raw.status, content[:MAX_RESPONSE_BYTES],
                        {k.lower(): v for k, v in raw.getheaders()},
                        truncated=len(content) > MAX_RESPONSE_BYTES, host=parts.hostname)
    except TransportError:
        raise
    except ValueError as exc:
        # http.client refuses a header value with a line break with a message that quotes
        # the value: never pass that on, it may hold a credential.
        raise TransportError("A header value is invalid (check the destination's credentials "
                            "for line breaks)", permanent=True) from exc
    except http.client.InvalidURL as exc:
        raise TransportError(f"Invalid URL path for {parts.hostname}", permanent=True) from exc
    except (OSError, http.client.HTTPException) as exc:
        # A step timeout set to the time left ends just as the deadline does.
        if watchdog.fired or deadline.passed():
            raise deadline.exceeded() from exc
        reason = exc.__class__.__name__ + (f": {exc}" if str(exc) else "")
        raise TransportError(f"Could not reach {parts.hostname}: {reason}",
                            permanent=False) from exc
    finally:
        watchdog.stop()
        connection.close()


def request(method: str, url: str, *, json_body=None, form: dict | None = None,
            headers: dict | None = None, params: dict | None = None,
            auth: tuple[str, str] | None = None, allow_statuses: tuple = (),
            trusted: bool = False) -> Response:
    """Send one request and return a 2xx response (or one whose status is listed in
    ``allow_statuses``); raise TransportError for anything else.

    ``trusted`` is for a URL an operator set in a setting (the Twilio API's base URL, which
    a test or an on-premises gateway may put on a private address): the private-address
    guard then lets that URL's origin through. Anything a user supplied stays guarded, and
    so does any redirect that leaves the trusted origin (see send_raw).

    Network errors, 5xx and 429 are retryable (429 and 503 keep their Retry-After); other
    statuses are permanent. Redirects are followed up to MAX_REDIRECTS times with the same
    method and body, each hop checked by the guard again.
    """
    all_headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    body = None
    if json_body is not None:
        body = json.dumps(json_body, separators=(",", ":"), default=str).encode()
        all_headers["Content-Type"] = "application/json"
    elif form is not None:
        body = urlencode(form).encode()
        all_headers["Content-Type"] = "application/x-www-form-urlencoded"
    if auth is not None:
        all_headers["Authorization"] = basic_auth(*auth)
    all_headers.update(headers or {})
    if params:
        url += ("&" if "?" in url else "?") + urlencode(params)
    return send_raw(method, url, body, all_headers, allow_statuses=allow_statuses,
                    trusted=trusted)


def send_raw(method: str, url: str, body: bytes | None, headers: dict, *,
             allow_statuses: tuple = (), trusted: bool = False) -> Response:
    deadline = current_deadline()
    # Trust covers the origin the operator configured, never where its answer points:
    # a redirect elsewhere is judged by the guard like any user-supplied URL.
    trusted_origin = origin(url) if trusted else None
    for _ in range(MAX_REDIRECTS + 1):
        response = _send_once(method, url, body, headers, deadline,
                              trusted=trusted_origin is not None
                              and origin(url) == trusted_origin)
        if response.status in REDIRECT_STATUSES and response.headers.get("location"):
            target = urljoin(url, response.headers["location"])
            if origin(target) != origin(url):
                if body is not None and response.status != 303:
                    # The body may hold a credential (PagerDuty's routing_key, ilert's
                    # integrationKey): it is never re-sent to another host.
                    raise TransportError(
                        f"HTTP {response.status} redirect to another host ({target[:200]}) "
                        "not followed with the request body; point the destination at the "
                        "final URL", permanent=True, status=response.status)
                # Credentials were given for the configured host only; a redirect elsewhere
                # must not carry them there.
                headers = {k: v for k, v in headers.items()
                           if k.lower() not in CREDENTIAL_HEADERS}
            if response.status == 303:
                # 303 means "see the answer over there": fetch it, do not post again.
                method, body = "GET", None
                headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
            url = target
            continue
        return check_status(response, allow_statuses)
    raise TransportError(f"More than {MAX_REDIRECTS} redirects", permanent=True,
                        status=response.status)


def origin(url: str) -> tuple:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


def check_status(response: Response, allow_statuses: tuple = ()) -> Response:
    if 200 <= response.status < 300 or response.status in allow_statuses:
        return response
    excerpt = response.text[:EXCERPT_CHARS]
    retryable = response.status == 429 or response.status >= 500
    raise TransportError(
        f"HTTP {response.status}" + (f": {excerpt[:200]}" if excerpt else ""),
        permanent=not retryable, status=response.status, body=excerpt,
        retry_after=retry_after_seconds(response.headers.get("retry-after")),
    )


def basic_auth(user: str, password: str) -> str:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return f"Basic {token}"
