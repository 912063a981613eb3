"""Local stand-ins for remote services: an HTTP sink and an SMTP sink on 127.0.0.1.

Each records what it received, so tests assert on the exact requests a destination made.
"""

import json
import socket
import socketserver
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest


@dataclass
class Received:
    method: str
    path: str
    query: dict
    headers: dict
    body: bytes

    @property
    def json(self):
        return json.loads(self.body)

    @property
    def form(self) -> dict:
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}


@dataclass
class Reply:
    status: int = 200
    body: object = field(default_factory=dict)
    headers: dict = field(default_factory=dict)


class HTTPSink:
    """Answers each request with the next scripted Reply (then the default one)."""

    def __init__(self):
        self.requests: list[Received] = []
        self.replies: list[Reply] = []
        self.default = Reply(200, {"ok": True})
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_any(self):
                length = int(self.headers.get("Content-Length") or 0)
                parts = urlsplit(self.path)
                sink.requests.append(Received(
                    self.command, parts.path,
                    {k: v[0] for k, v in parse_qs(parts.query).items()},
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length),
                ))
                reply = sink.replies.pop(0) if sink.replies else sink.default
                body = reply.body if isinstance(reply.body, bytes) else \
                    json.dumps(reply.body).encode()
                self.send_response(reply.status)
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_any

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def reply(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class SMTPSink:
    """A minimal SMTP server: enough of RFC 5321 for Django's SMTP backend. Every RCPT gets
    ``rcpt_reply``, so a test can make the server refuse recipients (550) or defer (450)."""

    def __init__(self, rcpt_reply: str = "250 ok"):
        self.messages: list[dict] = []
        self.rcpt_attempts = 0
        sink = self
        accepts = rcpt_reply.startswith("2")

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                envelope = {"from": None, "to": []}
                self.say("220 sink ready")
                while line := self.rfile.readline():
                    command = line.decode().strip()
                    verb = command.split(" ", 1)[0].upper()
                    if verb in ("EHLO", "HELO"):
                        self.say("250 sink")
                    elif verb == "MAIL":
                        envelope["from"] = command.split(":", 1)[1].strip(" <>")
                        self.say("250 ok")
                    elif verb == "RCPT":
                        sink.rcpt_attempts += 1
                        if accepts:
                            envelope["to"].append(command.split(":", 1)[1].strip(" <>"))
                        self.say(rcpt_reply)
                    elif verb == "DATA" and not envelope["to"]:
                        self.say("503 no valid recipients")
                    elif verb == "DATA":
                        self.say("354 go on")
                        data = b""
                        while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                            data += chunk[1:] if chunk.startswith(b"..") else chunk
                        sink.messages.append({
                            **envelope, "message": message_from_bytes(data, policy=policy.default),
                        })
                        envelope = {"from": None, "to": []}
                        self.say("250 queued")
                    elif verb == "QUIT":
                        self.say("221 bye")
                        return
                    else:
                        self.say("250 ok")

            def say(self, text):
                self.wfile.write(text.encode() + b"\r\n")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def use_smtp_sink(settings, sink: SMTPSink) -> SMTPSink:
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = sink.port
    settings.EMAIL_USE_TLS = False
    return sink


@pytest.fixture
def http_sink(settings):
    settings.TOCSIN_ALLOW_PRIVATE_DESTINATIONS = True
    sink = HTTPSink()
    yield sink
    sink.close()


# Twilio's account as the tests configure it; requests go to the HTTP sink.
TWILIO_SID, TWILIO_TOKEN, TWILIO_FROM = "AC0123456789abcdef", "tw-secret", "+15005550006"
TWILIO_MESSAGE_SID = "SM00000000000000000000000000000001"


@pytest.fixture
def twilio(settings, http_sink):
    """The HTTP sink standing in for Twilio's REST API: TOCSIN_TWILIO_* point at it, and
    it accepts every message and call."""
    settings.TOCSIN_TWILIO_ACCOUNT_SID = TWILIO_SID
    settings.TOCSIN_TWILIO_AUTH_TOKEN = TWILIO_TOKEN
    settings.TOCSIN_TWILIO_FROM = TWILIO_FROM
    settings.TOCSIN_TWILIO_API_URL = http_sink.url
    http_sink.default = Reply(201, {"sid": TWILIO_MESSAGE_SID, "status": "queued"})
    return http_sink


@pytest.fixture
def smtp_sink(settings):
    sink = use_smtp_sink(settings, SMTPSink())
    yield sink
    sink.close()


@pytest.fixture
def silent_port():
    """The port of a listener on 127.0.0.1 that accepts connections and never says a word,
    not even a TLS handshake."""
    listener = socket.create_server(("127.0.0.1", 0))
    held = []
    stop = threading.Event()

    def accept():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for connection in held:
        connection.close()
    listener.close()
