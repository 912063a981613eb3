"""Escalation steps run by real workers on PostgreSQL: two `manage.py qcluster` processes
share the test database and run the steps (a task for step 1, the minute job "Run due
escalation steps" and one-off schedules for the later ones) and page people by email
through a local SMTP sink. Each person gets one message per step, on time, with two
clusters racing for every step, and still one when a worker dies in the middle of a step.
"""

import contextlib
from datetime import timedelta

import psycopg
import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.utils import timezone

from incidents import lifecycle
from incidents.models import EscalationPolicy, Incident, Service, Team
from oncall.models import ContactMethod, Escalation, EscalationStep, EscalationTarget, Page
from tests.conftest import make_user
from tests.processes import base_env, database_url, kill_group, start, stop, wait_for
from tests.sinks import SMTPSink
from tocsin.jobs import sync_schedules

ASSIGNEES = Incident.assignees.through._meta.db_table

pytestmark = [
    pytest.mark.postgres_only,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

# Every wait below is bounded; together they keep each test under about 150 s.
UP_SECONDS = 30  # for a cluster to connect
STEP_SECONDS = 30  # for step 1 and its messages, after the incident opens
# The second step is due a minute after the first; the minute job waits for it, so it runs
# within seconds of that (docs/escalation.md, "Timing"). 25 s more allows for a loaded
# machine without letting a step that waited for the next scheduler pass (30 s) through.
ON_TIME_SECONDS = 25
QUIET_SECONDS = 5  # after the expected messages, for a duplicate to show up


@pytest.fixture(autouse=True)
def postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("real qclusters share the test database with the test, which needs "
                    "PostgreSQL (set DATABASE_URL): SQLite's test database is in memory "
                    "and its writers lock the whole file")


@pytest.fixture
def mail_sink():
    sink = SMTPSink()
    yield sink
    sink.close()


class Clusters:
    """qcluster subprocesses on the test database, mailing through the SMTP sink. Each
    connects with its own application_name (PGAPPNAME), so pg_stat_activity tells which
    one runs a statement."""

    def __init__(self, tmp_path, sink: SMTPSink):
        self.tmp = tmp_path
        # The test queues step 1's task itself: the workers must read what it signed, so
        # they share its SECRET_KEY (rather than the one tests/processes.py makes).
        self.env = base_env(
            SECRET_KEY=settings.SECRET_KEY, DATABASE_URL=database_url(), TOCSIN_WORKERS="2",
            TOCSIN_QUEUE_LOG_LEVEL="INFO",
            EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
            EMAIL_HOST="127.0.0.1", EMAIL_PORT=str(sink.port), EMAIL_USE_TLS="false")
        self.processes = {}

    def start(self, *names: str) -> None:
        for name in names:
            self.processes[name] = start(["python", "manage.py", "qcluster"],
                                         {**self.env, "PGAPPNAME": app_name(name)},
                                         self.tmp / f"{name}.log")
        assert wait_for(lambda: all(backends(app_name(n)) for n in names), UP_SECONDS), \
            self.logs()

    def kill(self, name: str) -> None:
        kill_group(self.processes[name])

    def running(self) -> list[str]:
        return sorted(name for name, process in self.processes.items()
                      if process.poll() is None)

    def logs(self) -> str:
        return "\n".join(f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}"
                         for path in sorted(self.tmp.glob("*.log")))

    def stop(self) -> None:
        for process in self.processes.values():
            stop(process)


@pytest.fixture
def clusters(tmp_path, mail_sink):
    # The minute jobs are made by migrate; a flushed test database may have lost them.
    sync_schedules()
    running = Clusters(tmp_path, mail_sink)
    try:
        yield running
    finally:
        running.stop()


def app_name(cluster: str) -> str:
    return f"tocsin-test-{cluster}"


def backends(application_name: str) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s",
                       [application_name])
        return [pid for pid, in cursor.fetchall()]


def backend_waiting(statement: str) -> tuple[int, str] | None:
    """(pid, application name) of a worker connection waiting for a lock while running a
    statement that starts with ``statement``, or None."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, application_name FROM pg_stat_activity "
            "WHERE application_name LIKE 'tocsin-test-%%' AND wait_event_type = 'Lock' "
            "AND query LIKE %s", [statement + "%"])
        return cursor.fetchone()


def activity() -> list[tuple]:
    """What each worker connection is doing, for failure messages."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid, application_name, state, wait_event_type, wait_event, "
                       "left(query, 80) FROM pg_stat_activity "
                       "WHERE application_name LIKE 'tocsin-test-%%' ORDER BY pid")
        return cursor.fetchall()


def holds_lock_on(pid: int, table: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                       "WHERE l.pid = %s AND c.relname = %s AND l.granted", [pid, table])
        return cursor.fetchone() is not None


@contextlib.contextmanager
def held(statement: str, *params):
    """Run ``statement`` on a connection of the test's own and keep its transaction open
    (and its locks held) until the block ends; then roll it back."""
    with psycopg.connect(database_url(), connect_timeout=5) as holder:
        holder.execute(statement, params)
        try:
            yield
        finally:
            holder.rollback()


def row_locked(user: User):
    """SELECT … FOR UPDATE on the user's row. Django's foreign keys on PostgreSQL are
    DEFERRABLE INITIALLY DEFERRED, so a Page INSERT for that user goes through and the
    step's transaction waits at its COMMIT, for the foreign key check's key-share lock."""
    return held(f"SELECT id FROM {User._meta.db_table} WHERE id = %s FOR UPDATE", user.pk)


def assignment_held(incident, user):
    """An uncommitted row assigning ``user`` to ``incident``: a step assigning that user
    (after paging everyone) waits on the unique pair inside its transaction. The foreign
    keys are checked at commit, so the incident may be uncommitted still."""
    return held(f"INSERT INTO {ASSIGNEES} (incident_id, user_id) VALUES (%s, %s)",
                incident.pk, user.pk)


def page_mails(sink: SMTPSink) -> list[tuple[str, str]]:
    """(recipient, X-Tocsin-Notification) of every page message the sink received."""
    return sorted((to, received["message"]["X-Tocsin-Notification"])
                  for received in list(sink.messages) for to in received["to"]
                  if str(received["message"]["X-Tocsin-Notification"] or "").startswith("page:"))


def recipients(sink: SMTPSink) -> list[str]:
    return [to for to, _ in page_mails(sink)]


@pytest.fixture
def ana(team):
    """Paged through an email contact method with a rule at 0 minutes."""
    user = make_user("ana", "Responder")
    user.email = "ana@example.com"
    user.save()
    method = ContactMethod.objects.create(user=user, kind="email",
                                          address="ana.pager@example.com")
    user.notification_rules.create(contact_method=method, delay_minutes=0)
    team.members.add(user)
    return user


@pytest.fixture
def ben(team):
    """No notification rule: paged at the account's email address."""
    user = make_user("ben", "Responder")
    user.email = "ben@example.com"
    user.save()
    team.members.add(user)
    return user


def policy_with_steps(team: Team, *steps: list) -> EscalationPolicy:
    """Steps paging the given users and teams, each followed by a one-minute wait."""
    policy = EscalationPolicy.objects.create(name="Checkout primary", team=team)
    for position, targets in enumerate(steps):
        step = EscalationStep.objects.create(policy=policy, position=position, delay_minutes=1)
        for target in targets:
            EscalationTarget.objects.create(
                step=step, **{"team" if isinstance(target, Team) else "user": target})
    return policy


def open_incident(team: Team, policy: EscalationPolicy):
    service = Service.objects.create(name="Checkout", team=team, escalation_policy=policy)
    return lifecycle.open_incident(service=service, title="Disk full on db-1",
                                   entity_id="db-1")


def pages(incident) -> list[tuple[int, str]]:
    return sorted(Page.objects.filter(incident=incident).values_list("step", "user__username"))


def test_two_clusters_page_each_person_once_per_step_and_step_two_a_minute_later(
        clusters, mail_sink, team, ana, ben):
    # Step 2 names ana twice (herself and through the team): she is paged once.
    policy = policy_with_steps(team, [ana, ben], [team, ana])
    clusters.start("a", "b")

    incident = open_incident(team, policy)

    assert wait_for(lambda: len(recipients(mail_sink)) >= 2, STEP_SECONDS), clusters.logs()
    assert pages(incident) == [(0, "ana"), (0, "ben")]
    assert recipients(mail_sink) == ["ana.pager@example.com", "ben@example.com"]
    step_one = Page.objects.filter(incident=incident, step=0).earliest("created_at").created_at

    assert wait_for(lambda: len(recipients(mail_sink)) >= 4,
                    60 + ON_TIME_SECONDS + STEP_SECONDS), clusters.logs()
    wait_for(lambda: len(recipients(mail_sink)) > 4, QUIET_SECONDS)

    assert pages(incident) == [(0, "ana"), (0, "ben"), (1, "ana"), (1, "ben")]
    assert recipients(mail_sink) == ["ana.pager@example.com", "ana.pager@example.com",
                                     "ben@example.com", "ben@example.com"]
    # One message per page: each carries its own page's key.
    page_keys = {key.split(":")[1] for _, key in page_mails(mail_sink)}
    assert page_keys == {str(pk) for pk in Page.objects.filter(incident=incident)
                         .values_list("pk", flat=True)}
    step_two = Page.objects.filter(incident=incident, step=1).earliest("created_at").created_at
    # Due a minute after step 1 ran (a few milliseconds before its first page).
    assert timedelta(seconds=59) < step_two - step_one < timedelta(seconds=60 + ON_TIME_SECONDS)
    escalation = Escalation.objects.get(incident=incident)
    assert (escalation.status, escalation.steps_run, escalation.next_step) == ("active", 2, 2)
    assert clusters.running() == ["a", "b"]


def test_a_worker_killed_mid_step_rolls_it_back_and_the_other_cluster_pages_each_once(
        clusters, mail_sink, team, ana, ben):
    policy = policy_with_steps(team, [ana, ben])
    clusters.start("a", "b")

    with contextlib.ExitStack() as locks:
        with transaction.atomic():  # step 1's task is queued when this commits
            incident = open_incident(team, policy)
            locks.enter_context(assignment_held(incident, ben))
        # Whichever cluster took step 1 has paged both and now waits to assign ben.
        blocked = wait_for(lambda: backend_waiting(f'INSERT INTO "{ASSIGNEES}"'), STEP_SECONDS)
        assert blocked, (activity(), clusters.logs())
        pid, application = blocked
        assert holds_lock_on(pid, "oncall_page"), "the step has not recorded its pages"
        victim = application.removeprefix(app_name(""))
        clusters.kill(victim)
        killed_at = timezone.now()
    # Its connection ends once the INSERT gets through, rolling the step back.
    assert wait_for(lambda: not backends(application), 30), activity()
    assert len(clusters.running()) == 1

    # The survivor's minute job finds step 1 still due (at the latest at its next run).
    assert wait_for(lambda: len(recipients(mail_sink)) >= 2, 120), clusters.logs()
    wait_for(lambda: len(recipients(mail_sink)) > 2, QUIET_SECONDS)

    assert recipients(mail_sink) == ["ana.pager@example.com", "ben@example.com"]
    assert pages(incident) == [(0, "ana"), (0, "ben")]
    # Recorded after the kill: the killed worker's pages went with its transaction.
    assert all(page.created_at > killed_at for page in Page.objects.filter(incident=incident))
    assert incident.timeline.filter(message__startswith="Paged ").count() == 2
    escalation = Escalation.objects.get(incident=incident)
    assert (escalation.steps_run, escalation.next_step) == (1, 1)


def test_a_worker_killed_while_committing_a_step_leaves_it_done_and_its_messages_go_once(
        clusters, mail_sink, team, ana, ben):
    policy = policy_with_steps(team, [ana, ben])
    clusters.start("a", "b")

    with row_locked(ben):
        incident = open_incident(team, policy)
        blocked = wait_for(lambda: backend_waiting("COMMIT"), STEP_SECONDS)
        assert blocked, (activity(), clusters.logs())
        pid, application = blocked
        victim = application.removeprefix(app_name(""))
        clusters.kill(victim)
        killed_at = timezone.now()
    # The COMMIT was sent before the kill: once the lock is free it completes, and only
    # then does the connection find its client gone.
    assert wait_for(lambda: not backends(application), 30), activity()
    assert len(clusters.running()) == 1
    assert pages(incident) == [(0, "ana"), (0, "ben")]
    assert all(page.created_at < killed_at for page in Page.objects.filter(incident=incident))

    # The dead worker never queued the messages (that ran after its commit): the survivor's
    # minute job queues what fell due and was not sent.
    assert wait_for(lambda: len(recipients(mail_sink)) >= 2, 120), clusters.logs()
    wait_for(lambda: len(recipients(mail_sink)) > 2, QUIET_SECONDS)

    assert recipients(mail_sink) == ["ana.pager@example.com", "ben@example.com"]
    assert pages(incident) == [(0, "ana"), (0, "ben")]
    escalation = Escalation.objects.get(incident=incident)
    assert (escalation.steps_run, escalation.next_step) == (1, 1)
