import pytest
from django.utils.module_loading import import_string

from destinations.models import Destination


@pytest.fixture
def deliver_inline(monkeypatch):
    """Run queued sends inline, as a worker would; retries are recorded, not run, so a test
    decides when the next attempt happens. Yields the list of scheduled retries."""
    scheduled = []

    def inline_async_task(func_path, *args, **kwargs):
        import_string(func_path)(*args)

    def record_schedule(func_path, *args, **kwargs):
        scheduled.append((args[0], kwargs["next_run"]))

    monkeypatch.setattr("tocsin.taskqueue.async_task", inline_async_task)
    monkeypatch.setattr("tocsin.taskqueue.schedule", record_schedule)
    return scheduled


@pytest.fixture
def inline(deliver_inline, django_capture_on_commit_callbacks):
    """inline(function, *args): call it as if its transaction committed, with the tasks it
    queues (deliveries, notification emails) run at once."""
    def run(function, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return function(*args, **kwargs)
    return run


def make_destination(service, kind: str, config: dict, **fields) -> Destination:
    destination = Destination.objects.create(
        name=fields.pop("name", f"{kind} destination"), kind=kind, config=config, **fields
    )
    service.destinations.add(destination)
    return destination
