"""Handing notifications to the task queue."""

from datetime import datetime

from tocsin import taskqueue

SEND_TASK = "notifications.sending.send_notification"


def enqueue(notification_id: int) -> None:
    taskqueue.enqueue(SEND_TASK, notification_id, name=f"notification-{notification_id}",
                      group="notifications")


def schedule_retry(notification_id: int, due: datetime) -> None:
    taskqueue.schedule_once(SEND_TASK, notification_id, at=due,
                            name=f"retry notification {notification_id} {due:%H%M%S%f}")
