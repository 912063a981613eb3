"""Handing deliveries to the task queue."""

from datetime import datetime

from tocsin import taskqueue

SEND_TASK = "destinations.delivery.send_delivery"


def enqueue(delivery_id: int) -> None:
    taskqueue.enqueue(SEND_TASK, delivery_id, name=f"delivery-{delivery_id}", group="deliveries")


def schedule_retry(delivery_id: int, due: datetime) -> None:
    taskqueue.schedule_once(SEND_TASK, delivery_id, at=due,
                            name=f"retry delivery {delivery_id} {due:%H%M%S%f}")
