"""Starting the real web server and worker as subprocesses, for tests that need them."""

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# Processes started by tests run with DEBUG off, like production, so they need a real key;
# one per test run, shared by all of them (a web process and a worker must agree on it).
SECRET_KEY = secrets.token_urlsafe(50)


def database_url() -> str:
    """The test database as a DATABASE_URL, for processes started against it (PostgreSQL)."""
    db = settings.DATABASES["default"]
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def base_env(**overrides) -> dict:
    env = {
        key: value for key, value in os.environ.items()
        if not key.startswith(("DATABASE_URL", "REDIS_URL", "DJANGO_", "TOCSIN_"))
    }
    env.update(PATH=f"{BIN}:{env.get('PATH', '')}", SECRET_KEY=SECRET_KEY)
    env.update(overrides)
    return env


def start(command: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        command, env=env, cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(process: subprocess.Popen, sig=signal.SIGTERM):
    """Signal the process itself (qcluster then stops its own children), and kill whatever
    is left of its group after it exits or after a grace period."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def kill_group(process: subprocess.Popen):
    """Kill the process and all its children at once, as when a host dies."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def get_json(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.load(response)
    except OSError:
        return None


def post_json(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def wait_for(condition, seconds: float, every: float = 0.3):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    return None
