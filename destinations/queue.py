"""Handing deliveries to the task queue. Deliveries are already stored when these run, so
a broker failure is logged, not raised: the minute sweeper queues what was left."""

import logging
from datetime import datetime

from django_q.models import Schedule
from django_q.tasks import async_task, schedule

from tocsin.taskqueue import broker

logger = logging.getLogger(__name__)

SEND_TASK = "destinations.delivery.send_delivery"


def enqueue(delivery_id: int) -> None:
    try:
        async_task(SEND_TASK, delivery_id, task_name=f"delivery-{delivery_id}",
                   group="deliveries", broker=broker())
    except Exception:
        logger.exception("Could not queue delivery %s; the sweeper will retry", delivery_id)


def schedule_retry(delivery_id: int, due: datetime) -> None:
    """A one-off django-q2 schedule (deleted after it runs). The scheduler looks every
    ~15 s, so short delays are approximate; the delivery row holds the real due time."""
    try:
        schedule(SEND_TASK, delivery_id, name=f"retry delivery {delivery_id} {due:%H%M%S%f}",
                 schedule_type=Schedule.ONCE, repeats=-1, next_run=due)
    except Exception:
        logger.exception("Could not schedule retry of delivery %s; the sweeper will", delivery_id)
