import pytest

from destinations import delivery
from destinations.models import Destination


@pytest.fixture
def deliver_inline(monkeypatch):
    """Run queued sends inline, as a worker would; retries are recorded, not run, so a test
    decides when the next attempt happens. Yields the list of scheduled retries."""
    scheduled = []

    def inline_async_task(func_path, delivery_id, **kwargs):
        delivery.send_delivery(delivery_id)

    def record_schedule(func_path, delivery_id, **kwargs):
        scheduled.append((delivery_id, kwargs["next_run"]))

    monkeypatch.setattr("destinations.queue.async_task", inline_async_task)
    monkeypatch.setattr("destinations.queue.schedule", record_schedule)
    return scheduled


def make_destination(service, kind: str, config: dict, **fields) -> Destination:
    destination = Destination.objects.create(
        name=fields.pop("name", f"{kind} destination"), kind=kind, config=config, **fields
    )
    service.destinations.add(destination)
    return destination
