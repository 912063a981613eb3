"""On call under real parallelism, on PostgreSQL: however many workers run the handoff job
or pick up one page message at once, each person hears of it once."""

from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone

from oncall import handoffs, sending
from oncall.models import PersonalNotification, Rotation, Schedule
from tests.conftest import make_user
from tests.parallel import WORKERS, in_parallel

pytestmark = [pytest.mark.django_db(transaction=True, serialized_rollback=True)]

@pytest.fixture(autouse=True)
def postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("parallel workers are tested on PostgreSQL (set DATABASE_URL)")


@pytest.fixture
def sent_at_once(monkeypatch):
    # Every queued task runs at once in the thread that queued it, like a worker would.
    monkeypatch.setattr("tocsin.taskqueue.async_task",
                        lambda func, pk, **kwargs: sending.send_personal_notification(pk))


def test_parallel_handoff_jobs_tell_the_person_coming_on_call_once(team, sent_at_once):
    rita = make_user("rita", "Responder")
    rita.email = "rita@example.com"
    rita.save()
    now = timezone.now().replace(second=0, microsecond=0)
    starts = now + timedelta(minutes=5)
    schedule = Schedule.objects.create(name="Primary", team=team, time_zone="UTC")
    Rotation.objects.create(schedule=schedule, name="Days", shift_kind="daily",
                            handoff_date=starts.date(), handoff_time=starts.time(),
                            participants=[rita.pk])

    in_parallel(handoffs.send_handoff_notices, now)

    [notice] = PersonalNotification.objects.filter(purpose="handoff")
    assert (notice.user, notice.status) == (rita, "sent")
    assert [message.to for message in mail.outbox] == [["rita@example.com"]]


def test_parallel_workers_send_a_page_message_once(incident, monkeypatch):
    monkeypatch.setattr("tocsin.taskqueue.async_task", lambda *a, **k: None)
    rita = make_user("rita", "Responder")
    rita.email = "rita@example.com"
    rita.save()
    page = sending.page_user(incident, rita)
    message = page.notifications.get()

    results = in_parallel(sending.send_personal_notification, message.pk)

    assert results.count("sent") == 1
    assert results.count("not due or already taken") == WORKERS - 1
    assert len(mail.outbox) == 1
    message.refresh_from_db()
    assert (message.status, message.attempts) == ("sent", 1)
