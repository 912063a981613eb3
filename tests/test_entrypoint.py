"""The container's entry commands (scripts/entrypoint), run for real on a scratch SQLite file.

Docker itself cannot run here, so this runs what the image runs: the web role (migrate,
then gunicorn) and the worker role (wait for migrations, then qcluster).
"""

import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.processes import ROOT, base_env, free_port, get_json, start, stop, wait_for


def healthz(port: int) -> dict | None:
    return get_json(f"http://127.0.0.1:{port}/healthz")


@pytest.fixture
def role_env(tmp_path):
    return base_env(
        DATABASE_URL=f"sqlite:///{tmp_path / 'entry.sqlite3'}",
        PORT=str(free_port()),
        WEB_CONCURRENCY="1",
    )


def status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def start_role(role: str, env: dict, log: Path):
    return start([str(ROOT / "scripts" / "entrypoint"), role], env, log)


def test_web_and_worker_roles_start_and_report_healthy(role_env, tmp_path):
    port = int(role_env["PORT"])
    worker = start_role("worker", role_env, tmp_path / "worker.log")
    web = start_role("web", role_env, tmp_path / "web.log")
    try:
        health = wait_for(lambda: healthz(port), 60)
        assert health, (tmp_path / "web.log").read_text()[-3000:]
        assert health["database"] == "ok"
        # The worker waited for the web role's migrations, then joined the cluster.
        running = wait_for(
            lambda: (healthz(port) or {}).get("queue", {}).get("workers_running"), 60
        )
        assert running, (tmp_path / "worker.log").read_text()[-3000:]
        # The API answers; its schema needs a signed-in user (docs/security.md).
        assert status_of(f"http://127.0.0.1:{port}/api/v1/schema/?format=json") == 401
    finally:
        stop(web)
        stop(worker)
