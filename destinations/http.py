"""The one HTTP client every destination kind sends through.

It owns what must be the same for all kinds: the timeout, the private-address guard, the
redirect rules, and how a response becomes success, a retryable error or a permanent one.
Kinds build a request and read the response; they never open sockets themselves.

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
import socket
import ssl
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from urllib.parse import urlencode, urljoin, urlsplit

from django.conf import settings
from django.utils import timezone

USER_AGENT = "Tocsin/1.0 (+incident destinations)"
REDIRECT_STATUSES = {301, 302, 303, 307, 308}
MAX_REDIRECTS = 3
# Headers that carry a kind's credentials; dropped when a redirect leaves the origin.
CREDENTIAL_HEADERS = {"authorization", "x-chatworktoken", "x-tocsin-signature"}
EXCERPT_CHARS = 2000


class DeliveryError(Exception):
    """A send that did not succeed. ``permanent`` says whether trying again can help."""

    def __init__(self, message: str, *, permanent: bool, status: int | None = None,
                 body: str = "", retry_after: float | None = None):
        super().__init__(message)
        self.permanent = permanent
        self.status = status
        self.body = body
        self.retry_after = retry_after


class BlockedAddress(DeliveryError):
    def __init__(self, message: str):
        super().__init__(message, permanent=True)


@dataclass
class Response:
    status: int
    body: bytes
    headers: dict = field(default_factory=dict)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self):
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None


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


def resolve(host: str, port: int) -> tuple[int, str]:
    """Resolve ``host`` and return the (family, address) to connect to, refusing private
    addresses unless TOCSIN_ALLOW_PRIVATE_DESTINATIONS is on."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise DeliveryError(f"Cannot resolve {host}: {exc.strerror}", permanent=False) from exc
    if not settings.TOCSIN_ALLOW_PRIVATE_DESTINATIONS:
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
    """Connects to an address chosen beforehand, whatever the host name says."""

    def __init__(self, host, port, *, address, timeout):
        super().__init__(host, port, timeout=timeout)
        self.pinned_address = address

    def connect(self):
        self.sock = socket.create_connection((self.pinned_address, self.port), self.timeout)


class PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host, port, *, address, timeout):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self.pinned_address = address

    def connect(self):
        sock = socket.create_connection((self.pinned_address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - timezone.now()).total_seconds())


def _send_once(method: str, url: str, body: bytes | None, headers: dict,
               timeout: float) -> Response:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DeliveryError(f"Not an http(s) URL: {url!r}", permanent=True)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    _, address = resolve(parts.hostname, port)
    connection_class = PinnedHTTPSConnection if parts.scheme == "https" else PinnedHTTPConnection
    connection = connection_class(parts.hostname, port, address=address, timeout=timeout)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    try:
        connection.request(method, path, body=body, headers=headers)
        raw = connection.getresponse()
        return Response(raw.status, raw.read(), {k.lower(): v for k, v in raw.getheaders()})
    except ValueError as exc:
        # http.client refuses a header value with a line break with a message that quotes
        # the value: never pass that on, it may hold a credential.
        raise DeliveryError("A header value is invalid (check the destination's credentials "
                            "for line breaks)", permanent=True) from exc
    except http.client.InvalidURL as exc:
        raise DeliveryError(f"Invalid URL path for {parts.hostname}", permanent=True) from exc
    except (OSError, http.client.HTTPException) as exc:
        reason = exc.__class__.__name__ + (f": {exc}" if str(exc) else "")
        raise DeliveryError(f"Could not reach {parts.hostname}: {reason}",
                            permanent=False) from exc
    finally:
        connection.close()


def request(method: str, url: str, *, json_body=None, form: dict | None = None,
            headers: dict | None = None, params: dict | None = None,
            auth: tuple[str, str] | None = None, allow_statuses: tuple = ()) -> Response:
    """Send one request and return a 2xx response (or one whose status is listed in
    ``allow_statuses``); raise DeliveryError for anything else.

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
    return send_raw(method, url, body, all_headers, allow_statuses=allow_statuses)


def send_raw(method: str, url: str, body: bytes | None, headers: dict, *,
             allow_statuses: tuple = ()) -> Response:
    timeout = settings.TOCSIN_DELIVERY_TIMEOUT_SECONDS
    for _ in range(MAX_REDIRECTS + 1):
        response = _send_once(method, url, body, headers, timeout)
        if response.status in REDIRECT_STATUSES and response.headers.get("location"):
            target = urljoin(url, response.headers["location"])
            if origin(target) != origin(url):
                if body is not None and response.status != 303:
                    # The body may hold a credential (PagerDuty's routing_key, ilert's
                    # integrationKey): it is never re-sent to another host.
                    raise DeliveryError(
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
    raise DeliveryError(f"More than {MAX_REDIRECTS} redirects", permanent=True,
                        status=response.status)


def origin(url: str) -> tuple:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


def check_status(response: Response, allow_statuses: tuple = ()) -> Response:
    if 200 <= response.status < 300 or response.status in allow_statuses:
        return response
    excerpt = response.text[:EXCERPT_CHARS]
    retryable = response.status == 429 or response.status >= 500
    raise DeliveryError(
        f"HTTP {response.status}" + (f": {excerpt[:200]}" if excerpt else ""),
        permanent=not retryable, status=response.status, body=excerpt,
        retry_after=retry_after_seconds(response.headers.get("retry-after")),
    )


def basic_auth(user: str, password: str) -> str:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return f"Basic {token}"
