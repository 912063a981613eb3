import json

import pytest

from integrations import processing


@pytest.fixture
def run_tasks(monkeypatch, django_capture_on_commit_callbacks):
    """Run queued processing inline, as the worker would, once the request's transaction
    commits. Yields the list of event ids handed to the queue."""
    queued = []

    def inline_async_task(func_path, event_id, **kwargs):
        queued.append(event_id)
        processing.process_event(event_id)

    monkeypatch.setattr("integrations.queue.async_task", inline_async_task)
    return queued


def post_event(client, integration, body, *, raw=False, capture=None, **extra):
    data = body if raw else json.dumps(body)
    url = f"/api/events/{integration.key}/"
    if capture is None:
        return client.post(url, data=data, content_type="application/json", **extra)
    with capture(execute=True):
        return client.post(url, data=data, content_type="application/json", **extra)
