"""Handing work to django-q2, shared by every app.

Callers have already stored the work (an inbound event, a delivery, a notification) when
they queue it, so a broker failure is logged, not raised: each app's sweeper queues what
was left behind.
"""

import functools
import logging
from datetime import datetime

from django_q.brokers import get_broker
from django_q.models import Schedule
from django_q.tasks import async_task, schedule

logger = logging.getLogger(__name__)


@functools.cache
def broker():
    # One broker (and so one Redis connection) per process; without it django-q2 builds a
    # new one for every task it queues.
    return get_broker()


def enqueue(func: str, *args, name: str, group: str) -> None:
    try:
        async_task(func, *args, task_name=name, group=group, broker=broker())
    except Exception:
        logger.exception("Could not queue %s%r; the sweeper will retry", func, args)


def schedule_once(func: str, *args, at: datetime, name: str) -> None:
    """A one-off django-q2 schedule, deleted after it runs. The scheduler looks every ~15 s,
    so short delays are approximate; the caller's row holds the real due time."""
    try:
        schedule(func, *args, name=name, schedule_type=Schedule.ONCE, repeats=-1, next_run=at)
    except Exception:
        logger.exception("Could not schedule %s%r; the sweeper will", func, args)
