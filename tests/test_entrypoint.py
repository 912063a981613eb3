"""The container's entry commands (scripts/entrypoint), run for real on a scratch SQLite file.

Docker itself cannot run here, so this runs what the image runs: the web role (migrate,
then gunicorn) and the worker role (wait for migrations, then qcluster).
"""

import stat
import subprocess
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.processes import ROOT, base_env, free_port, get_json, start, stop, wait_for

ENTRYPOINT = str(ROOT / "scripts" / "entrypoint")


def healthz(port: int) -> dict | None:
    return get_json(f"http://127.0.0.1:{port}/healthz")


def without_secret_key(env: dict) -> dict:
    return {key: value for key, value in env.items() if key != "SECRET_KEY"}


@pytest.fixture
def data_dir(tmp_path):
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def role_env(tmp_path, data_dir):
    # As in the image: no SECRET_KEY, a data volume for the database and the key.
    return without_secret_key(base_env(
        DATABASE_URL=f"sqlite:///{data_dir / 'entry.sqlite3'}",
        TOCSIN_DATA_DIR=str(data_dir),
        PORT=str(free_port()),
        WEB_CONCURRENCY="1",
    ))


def status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def start_role(role: str, env: dict, log: Path):
    return start([ENTRYPOINT, role], env, log)


def run_entrypoint(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [ENTRYPOINT, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60,
    )


def key_seen_by_a_command(env: dict) -> str:
    shown = run_entrypoint("printenv", "SECRET_KEY", env=env)
    assert shown.returncode == 0, shown.stderr
    return shown.stdout.strip()


def environment_of(pid: int) -> dict:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


def test_web_and_worker_roles_start_and_report_healthy(role_env, data_dir, tmp_path):
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
        # Both roles sign and read queued tasks with the one key kept in the data volume.
        key = (data_dir / "secret_key").read_text().strip()
        assert environment_of(web.pid)["SECRET_KEY"] == key
        assert environment_of(worker.pid)["SECRET_KEY"] == key
    finally:
        stop(web)
        stop(worker)


def test_the_first_start_keeps_a_random_key_that_later_starts_reuse(role_env, data_dir):
    first = key_seen_by_a_command(role_env)
    key_file = data_dir / "secret_key"
    assert len(first) >= 50
    assert key_file.read_text().strip() == first
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_seen_by_a_command(role_env) == first
    assert sorted(p.name for p in data_dir.iterdir()) == ["secret_key"]


def test_containers_starting_together_on_one_volume_agree_on_the_key(role_env, data_dir):
    with ThreadPoolExecutor(6) as pool:
        keys = set(pool.map(lambda _: key_seen_by_a_command(role_env), range(6)))
    assert keys == {(data_dir / "secret_key").read_text().strip()}
    assert sorted(p.name for p in data_dir.iterdir()) == ["secret_key"]


def test_a_secret_key_from_the_environment_is_used_and_nothing_is_written(role_env, data_dir):
    given = "k" + "ey-from-the-operator-0123456789" * 2
    assert key_seen_by_a_command({**role_env, "SECRET_KEY": given}) == given
    assert list(data_dir.iterdir()) == []


@pytest.mark.parametrize("role", ["web", "worker"])
def test_a_data_volume_that_cannot_hold_the_key_stops_the_container(role_env, tmp_path, role):
    # A path below a regular file cannot be written to, not even by root.
    (tmp_path / "not-a-directory").write_text("")
    env = {**role_env, "TOCSIN_DATA_DIR": str(tmp_path / "not-a-directory" / "data")}
    refused = run_entrypoint(role, env=env)
    assert refused.returncode != 0
    assert refused.stderr.strip() == (
        f"entrypoint: cannot write {tmp_path}/not-a-directory/data/secret_key: mount a "
        f"writable volume at {tmp_path}/not-a-directory/data or set SECRET_KEY "
        "(see docs/deployment.md)"
    )
    # Nothing else ran: no migrations, so no database file either.
    assert not (tmp_path / "data" / "entry.sqlite3").exists()


@pytest.mark.parametrize("role", ["web", "worker"])
def test_a_weak_secret_key_stops_the_container_with_the_reason(role_env, role):
    refused = run_entrypoint(role, env={**role_env, "SECRET_KEY": "changeme"})
    assert refused.returncode != 0
    assert refused.stderr.strip().splitlines()[-1].startswith(
        "django.core.exceptions.ImproperlyConfigured: SECRET_KEY is too short"
    )
    assert "waiting for migrations" not in refused.stdout
