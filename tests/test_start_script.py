"""scripts/start, run for real: Ctrl-C stops the web server, the worker and all their
children, and nothing is left behind (issue: qcluster once deadlocked on a second signal and
stayed running, orphaned)."""

import contextlib
import os
import re
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from tests.processes import ROOT, base_env, free_port, get_json, wait_for

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/stat").exists(), reason="finds the started processes in /proc"
)


def session_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the parenthesised command name: state ppid pgrp session ...
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else int(fields[3])


def processes_in_session(session: int) -> dict[int, str]:
    """Every live process of the session, orphans included (they keep their session)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and session_of(int(entry.name)) == session:
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            found[int(entry.name)] = command.strip()
    return found


@pytest.fixture
def database_url(request, tmp_path):
    """The test database on PostgreSQL (it must outlive this process's transactions), a
    scratch file on SQLite."""
    if connection.vendor == "postgresql":
        request.getfixturevalue("transactional_db")
        db = settings.DATABASES["default"]
        password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
        host = db["HOST"] or "127.0.0.1"
        return f"postgres://{db['USER']}{password}@{host}:{db['PORT'] or 5432}/{db['NAME']}"
    return f"sqlite:///{tmp_path / 'start.sqlite3'}"


@pytest.mark.parametrize("presses", [1, 2], ids=["ctrl-c", "ctrl-c-twice"])
def test_ctrl_c_stops_web_worker_and_all_their_children(tmp_path, database_url, presses):
    port = free_port()
    env_file = tmp_path / "start.env"
    env = base_env(
        DATABASE_URL=database_url, BIND=f"127.0.0.1:{port}", WEB_CONCURRENCY="2",
        TOCSIN_ENV_FILE=str(env_file), TOCSIN_SKIP_INSTALL="1",
    )
    env.pop("SECRET_KEY")  # as on a first start: the script makes one
    log = tmp_path / "start.log"
    script = subprocess.Popen(
        [str(ROOT / "scripts" / "start")], env=env, cwd=ROOT, stdout=log.open("w"),
        stderr=subprocess.STDOUT, start_new_session=True,
    )
    session = script.pid
    try:
        health = wait_for(
            lambda: (get_json(f"http://127.0.0.1:{port}/healthz") or {})
            .get("queue", {}).get("workers_running"),
            120,
        )
        assert health, log.read_text()[-3000:]
        started = processes_in_session(session)
        assert any("gunicorn" in command for command in started.values()), started
        assert any("qcluster" in command for command in started.values()), started
        # A first start keeps a random key for the next ones, readable by its owner only.
        assert len(env_file.read_text().removeprefix("SECRET_KEY=").strip()) >= 50
        assert stat.S_IMODE(env_file.stat().st_mode) == 0o600

        # What the terminal does on Ctrl-C: SIGINT to the script's process group.
        pressed = time.monotonic()
        for _ in range(presses):
            os.killpg(script.pid, signal.SIGINT)
            time.sleep(0.3)
        gone = wait_for(lambda: not processes_in_session(session), 30, every=0.2)
        assert gone, f"still running: {processes_in_session(session)}\n{log.read_text()[-3000:]}"
        assert time.monotonic() - pressed < 30
        assert script.wait(timeout=5) == 0, log.read_text()[-3000:]
        # The worker got one signal: a second one re-entered django-q2's handler (it said
        # "stopping" again), which is how it once deadlocked and was left running.
        stopping = re.findall(r"Q Cluster \S+ stopping\.", log.read_text())
        assert len(stopping) <= 1, log.read_text()[-3000:]
        if presses == 1:
            assert len(stopping) == 1
            assert "did not stop in time" not in log.read_text()
    finally:
        for pid in processes_in_session(session):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if script.poll() is None:
            script.kill()
        script.wait(timeout=10)
