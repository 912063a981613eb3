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


class Started:
    """scripts/start running in a session of its own, as if from a terminal."""

    def __init__(self, tmp_path: Path, database_url: str):
        self.port = free_port()
        self.env_file = tmp_path / "start.env"
        self.log = tmp_path / "start.log"
        env = base_env(
            DATABASE_URL=database_url, BIND=f"127.0.0.1:{self.port}", WEB_CONCURRENCY="2",
            TOCSIN_ENV_FILE=str(self.env_file), TOCSIN_SKIP_INSTALL="1",
            # The worker's "stopping" lines are INFO, which the queue logs only on request.
            TOCSIN_QUEUE_LOG_LEVEL="INFO",
        )
        env.pop("SECRET_KEY")  # as on a first start: the script makes one
        self.script = subprocess.Popen(
            [str(ROOT / "scripts" / "start")], env=env, cwd=ROOT, stdout=self.log.open("w"),
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.session = self.script.pid

    def worker_running(self):
        health = get_json(f"http://127.0.0.1:{self.port}/healthz") or {}
        return health.get("queue", {}).get("workers_running")

    def processes(self) -> dict[int, str]:
        return processes_in_session(self.session)

    def output(self) -> str:
        return self.log.read_text()[-3000:]

    def all_gone_within(self, seconds: float) -> bool:
        return bool(wait_for(lambda: not self.processes(), seconds, every=0.2))

    def clean_up(self):
        for pid in self.processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.script.poll() is None:
            self.script.kill()
        self.script.wait(timeout=10)


@pytest.fixture
def started(tmp_path, database_url):
    running = Started(tmp_path, database_url)
    try:
        assert wait_for(running.worker_running, 120), running.output()
        yield running
    finally:
        running.clean_up()


@pytest.mark.parametrize("presses", [1, 2], ids=["ctrl-c", "ctrl-c-twice"])
def test_ctrl_c_stops_web_worker_and_all_their_children(started, presses):
    commands = started.processes().values()
    assert any("gunicorn" in command for command in commands), commands
    assert any("qcluster" in command for command in commands), commands
    # A first start keeps a random key for the next ones, readable by its owner only.
    assert len(started.env_file.read_text().removeprefix("SECRET_KEY=").strip()) >= 50
    assert stat.S_IMODE(started.env_file.stat().st_mode) == 0o600

    # What the terminal does on Ctrl-C: SIGINT to the script's process group.
    for _ in range(presses):
        os.killpg(started.script.pid, signal.SIGINT)
        time.sleep(0.3)
    assert started.all_gone_within(30), f"still running: {started.processes()}"
    assert started.script.wait(timeout=5) == 0, started.output()
    # The worker got one signal: a second one re-entered django-q2's handler (it said
    # "stopping" again), which is how it once deadlocked and was left running.
    stopping = re.findall(r"Q Cluster \S+ stopping\.", started.log.read_text())
    assert len(stopping) <= 1, started.output()
    if presses == 1:
        assert len(stopping) == 1
        assert "did not stop in time" not in started.output()


def test_when_the_worker_dies_the_web_server_and_the_workers_orphans_are_stopped(started):
    leader = next(
        pid for pid, command in started.processes().items()
        if "qcluster" in command and os.getpgid(pid) == pid
    )
    # Killed outright, the cluster's parent leaves its worker processes behind.
    os.kill(leader, signal.SIGKILL)
    assert started.all_gone_within(30), f"still running: {started.processes()}"
    assert started.script.wait(timeout=5) == 1
    assert "stopped unexpectedly" in started.output()
