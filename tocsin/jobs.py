"""Every periodic job of the portal, declared once, and the django-q2 schedules made from
them.

``manage.py migrate`` ends by syncing the schedules with JOBS (a post_migrate receiver,
connected in tocsin.apps), so a fresh install, an upgraded one and a changed interval all
come out the same; the container's web role migrates at every start. The sync touches only
the schedules it manages: recurring ones (one-off retry schedules that deliveries and
notifications create are left alone) that either carry a declared job's name or run a
function of the portal's own packages. A schedule an operator adds in the admin for
anything else stays.
"""

import sys
from dataclasses import dataclass
from datetime import timedelta

from django.apps import apps as global_apps
from django.db import DEFAULT_DB_ALIAS, router, transaction
from django.db.models import Q
from django.utils import timezone

# django_q.models.Schedule's types, spelled out: this module is imported while the app
# registry loads (tocsin.apps), before django-q2's models can be.
ONCE, MINUTES = "O", "I"
FOREVER = -1

# A recurring schedule running a function of one of these packages is the portal's own:
# one no longer declared here is removed.
PORTAL_PACKAGES = ("incidents", "integrations", "destinations", "notifications", "oncall",
                    "tocsin")


@dataclass(frozen=True)
class Job:
    name: str  # the schedule's name, its key: keep it, or upgraded installs get a duplicate
    func: str  # dotted path of a function taking no arguments
    minutes: int  # between runs


JOBS = [
    Job("Requeue stale inbound events", "integrations.tasks.requeue_stale_events", 1),
    Job("Prune old inbound events", "integrations.tasks.prune_inbound_events", 60),
    Job("Queue due deliveries", "destinations.sending.queue_due_deliveries", 1),
    Job("Queue due notifications", "notifications.sending.queue_due_notifications", 1),
    Job("Queue due personal notifications",
        "oncall.sending.queue_due_personal_notifications", 1),
    Job("Escalate SLA breaches", "incidents.escalations.check_sla_breaches", 1),
    Job("Run due escalation steps", "oncall.escalation.run_due_escalations", 1),
    Job("Send handoff notices", "oncall.handoffs.send_handoff_notices", 1),
]


@dataclass
class Changes:
    created: list[str]
    updated: list[str]
    removed: list[str]


def managed(jobs=None) -> Q:
    """The schedules the sync may change or remove."""
    jobs = JOBS if jobs is None else jobs
    ours = Q(name__in=[job.name for job in jobs])
    for package in PORTAL_PACKAGES:
        ours |= Q(func__startswith=f"{package}.")
    return ours & ~Q(schedule_type=ONCE)


def sync_schedules(*, using: str = DEFAULT_DB_ALIAS, apps=global_apps, jobs=None) -> Changes:
    """Make the managed schedules exactly ``jobs`` (default JOBS): create missing ones,
    correct a changed function or interval, remove the rest. Running it again changes
    nothing."""
    jobs = JOBS if jobs is None else jobs
    schedules = apps.get_model("django_q", "Schedule").objects.using(using)
    changes = Changes([], [], [])
    with transaction.atomic(using=using):
        rows = list(schedules.filter(managed(jobs)).order_by("pk"))
        kept = set()
        for job in jobs:
            row = next((r for r in rows if r.name == job.name and r.pk not in kept), None)
            if row is None:
                row = schedules.create(name=job.name, func=job.func, schedule_type=MINUTES,
                                       minutes=job.minutes, repeats=FOREVER)
                changes.created.append(job.name)
            elif (row.func, row.schedule_type, row.minutes, row.repeats) != (
                    job.func, MINUTES, job.minutes, FOREVER):
                # A shorter interval applies from now, not after the old one's next run.
                soonest = timezone.now() + timedelta(minutes=job.minutes)
                row.next_run = min(row.next_run or soonest, soonest)
                row.func, row.schedule_type = job.func, MINUTES
                row.minutes, row.repeats = job.minutes, FOREVER
                row.save(update_fields=["func", "schedule_type", "minutes", "repeats",
                                        "next_run"])
                changes.updated.append(job.name)
            kept.add(row.pk)
        # Undeclared ones, and a second row of one name (it would run the job twice).
        stale = [row for row in rows if row.pk not in kept]
        schedules.filter(pk__in=[row.pk for row in stale]).delete()
        changes.removed = [row.name or row.func for row in stale]
    return changes


def sync_after_migrate(sender, *, using=DEFAULT_DB_ALIAS, apps=global_apps, verbosity=1,
                       stdout=sys.stdout, **kwargs):
    """post_migrate (sent for django_q, once per migrate): sync the schedules."""
    try:
        model = apps.get_model("django_q", "Schedule")
    except LookupError:
        return  # django-q2's tables were migrated away (migrate django_q zero)
    if not router.allow_migrate_model(using, model):
        return
    changes = sync_schedules(using=using, apps=apps)
    if verbosity >= 2:
        for verb, names in (("Created", changes.created), ("Updated", changes.updated),
                            ("Removed", changes.removed)):
            for name in names:
                stdout.write(f"  {verb} the schedule of periodic job {name!r}\n")
