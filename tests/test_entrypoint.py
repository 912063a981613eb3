"""The container's entry commands (scripts/entrypoint), run for real on a scratch SQLite file.

Docker itself cannot run here, so this runs what the image runs: the web role (migrate,
then gunicorn) and the worker role (wait for migrations, then qcluster).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def healthz(port: int) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return json.load(response)
    except OSError:
        return None


def wait_for(condition, seconds: float):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.3)
    return None


@pytest.fixture
def role_env(tmp_path):
    env = {
        key: value for key, value in os.environ.items()
        if not key.startswith(("DATABASE_URL", "REDIS_URL", "DJANGO_"))
    }
    env.update(
        PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
        DATABASE_URL=f"sqlite:///{tmp_path / 'entry.sqlite3'}",
        PORT=str(free_port()),
        WEB_CONCURRENCY="1",
        SECRET_KEY="entrypoint-test",
    )
    return env


def start(role: str, env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [str(ROOT / "scripts" / "entrypoint"), role], env=env, cwd=ROOT,
        stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
    )


def stop(process: subprocess.Popen):
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_web_and_worker_roles_start_and_report_healthy(role_env, tmp_path):
    port = int(role_env["PORT"])
    worker = start("worker", role_env, tmp_path / "worker.log")
    web = start("web", role_env, tmp_path / "web.log")
    try:
        health = wait_for(lambda: healthz(port), 60)
        assert health, (tmp_path / "web.log").read_text()[-3000:]
        assert health["database"] == "ok"
        # The worker waited for the web role's migrations, then joined the cluster.
        running = wait_for(
            lambda: (healthz(port) or {}).get("queue", {}).get("workers_running"), 60
        )
        assert running, (tmp_path / "worker.log").read_text()[-3000:]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/admin/login/") as page:
            assert page.status == 200
    finally:
        stop(web)
        stop(worker)
