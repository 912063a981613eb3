import json

import pytest

from integrations import processing, queue
from tocsin import taskqueue


def process_inline(queued: list):
    """A stand-in for django-q2's async_task that processes inbound events at once, as a
    worker would, recording their ids in ``queued``. Other tasks (deliveries, notification
    emails) go on to the async_task in place before it: django-q2's, or deliver_inline's."""
    passed_on = taskqueue.async_task

    def async_task(func_path, *args, **kwargs):
        if func_path != queue.PROCESS_TASK:
            return passed_on(func_path, *args, **kwargs)
        queued.append(args[0])
        return processing.process_event(args[0])

    return async_task


@pytest.fixture
def run_tasks(monkeypatch, django_capture_on_commit_callbacks):
    """Run queued processing inline, as the worker would, once the request's transaction
    commits. Yields the list of event ids handed to the queue."""
    queued = []
    monkeypatch.setattr("tocsin.taskqueue.async_task", process_inline(queued))
    return queued


def post_event(client, integration, body, *, raw=False, capture=None, **extra):
    data = body if raw else json.dumps(body)
    url = f"/api/events/{integration.key}/"
    if capture is None:
        return client.post(url, data=data, content_type="application/json", **extra)
    with capture(execute=True):
        return client.post(url, data=data, content_type="application/json", **extra)
