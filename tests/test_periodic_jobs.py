"""The periodic jobs (tocsin.jobs): declared once, scheduled by migrate, and the sync
touching only the schedules it manages."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from django.utils.module_loading import import_string
from django_q.models import Schedule

from tocsin import jobs


def scheduled() -> dict[str, tuple]:
    return {s.name: (s.func, s.schedule_type, s.minutes, s.repeats)
            for s in Schedule.objects.all()}


def declared() -> dict[str, tuple]:
    return {job.name: (job.func, Schedule.MINUTES, job.minutes, -1) for job in jobs.JOBS}


@pytest.mark.parametrize("job", jobs.JOBS, ids=lambda job: job.name)
def test_every_declared_job_runs_a_function_that_exists(job):
    assert callable(import_string(job.func))
    assert job.minutes >= 1


def test_job_names_are_unique():
    assert len({job.name for job in jobs.JOBS}) == len(jobs.JOBS)


def test_the_schedule_types_spelled_out_are_django_q2s():
    assert (jobs.ONCE, jobs.MINUTES) == (Schedule.ONCE, Schedule.MINUTES)


def test_migrated_database_has_every_job_scheduled(db):
    assert scheduled() == declared()


# serialized_rollback: the flush after a transactional test would otherwise empty the
# tables the other tests' migrated database has filled (roles, schedules).
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_migrate_schedules_the_jobs_again_after_they_were_deleted():
    Schedule.objects.all().delete()
    call_command("migrate", verbosity=0)
    assert scheduled() == declared()


def test_sync_creates_missing_schedules(db):
    Schedule.objects.all().delete()
    changes = jobs.sync_schedules()
    assert scheduled() == declared()
    assert sorted(changes.created) == sorted(job.name for job in jobs.JOBS)


def test_a_second_sync_changes_nothing(db):
    jobs.sync_schedules()
    before = list(Schedule.objects.order_by("pk").values())
    changes = jobs.sync_schedules()
    assert changes == jobs.Changes([], [], [])
    assert list(Schedule.objects.order_by("pk").values()) == before


def test_sync_corrects_a_changed_function_or_interval_in_the_same_row(db):
    # An upgraded install: the row its migration made, from before a job moved or changed.
    row = Schedule.objects.get(name="Prune old inbound events")
    Schedule.objects.filter(pk=row.pk).update(
        func="integrations.old_tasks.prune", minutes=1440,
        next_run=timezone.now() + timedelta(days=1),
    )
    changes = jobs.sync_schedules()
    row.refresh_from_db()
    assert (row.func, row.minutes) == ("integrations.tasks.prune_inbound_events", 60)
    assert row.next_run <= timezone.now() + timedelta(minutes=60)
    assert changes.updated == ["Prune old inbound events"]
    assert scheduled() == declared()


def test_sync_removes_a_recurring_job_no_longer_declared(db):
    Schedule.objects.create(name="Retired sweeper", func="integrations.tasks.retired",
                            schedule_type=Schedule.MINUTES, minutes=5, repeats=-1)
    changes = jobs.sync_schedules()
    assert changes.removed == ["Retired sweeper"]
    assert scheduled() == declared()


def test_sync_removes_a_second_schedule_of_a_declared_job(db):
    first = Schedule.objects.get(name="Queue due deliveries")
    Schedule.objects.create(name="Queue due deliveries", func=first.func,
                            schedule_type=Schedule.MINUTES, minutes=1, repeats=-1)
    jobs.sync_schedules()
    assert list(Schedule.objects.filter(name="Queue due deliveries")) == [first]


def test_sync_leaves_one_off_retry_schedules_alone(db):
    retry = Schedule.objects.create(
        name="retry delivery 7 120000000000", func="destinations.sending.send_delivery",
        args="7", schedule_type=Schedule.ONCE, repeats=-1,
        next_run=timezone.now() + timedelta(minutes=2),
    )
    jobs.sync_schedules()
    assert Schedule.objects.filter(pk=retry.pk).exists()


def test_sync_leaves_a_schedule_an_operator_added_for_another_function(db):
    theirs = Schedule.objects.create(
        name="Clear expired sessions", func="django.core.management.call_command",
        args="'clearsessions'", schedule_type=Schedule.DAILY, repeats=-1,
    )
    jobs.sync_schedules()
    assert Schedule.objects.filter(pk=theirs.pk).exists()
