"""Idempotency-Key on the HTTP ingest endpoints, and Message-ID for mail: a repeat within
24 hours is answered like the first request and stores and processes nothing new."""

import io
import json
import threading
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.utils import timezone

from incidents.models import Incident
from integrations import idempotency, tasks
from integrations.idempotency import MAX_KEY_LENGTH
from integrations.models import (
    Alert,
    IdempotencyKey,
    InboundEvent,
    Integration,
    IntegrationToken,
)

HOOK_URL = "/api/incoming-webhooks/incident.create?title=Checkout%20down"


def post(client, url, body, key=None, **headers):
    if key is not None:
        headers["HTTP_IDEMPOTENCY_KEY"] = key
    return client.post(url, data=json.dumps(body), content_type="application/json", **headers)


@pytest.fixture
def send(client, run_tasks, django_capture_on_commit_callbacks):
    def _send(url, body, key=None, **headers):
        with django_capture_on_commit_callbacks(execute=True):
            return post(client, url, body, key, **headers)

    return _send


@pytest.fixture
def generic_url(integration):
    return f"/api/events/{integration.key}/"


@pytest.fixture
def hook_auth(service):
    hook = Integration.objects.create(name="Grafana", kind="incoming_webhook", service=service)
    _, plaintext = IntegrationToken.issue(hook, "prod")
    return {"HTTP_AUTHORIZATION": f"Bearer {plaintext}"}


def test_repeat_with_same_idempotency_key_returns_first_trace_id(send, generic_url, run_tasks):
    body = {"message": "Disk full", "alert_type": "critical"}
    first = send(generic_url, body, key="alert-42")
    again = send(generic_url, body, key="alert-42")
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert InboundEvent.objects.count() == 1
    assert Alert.objects.count() == 1
    assert Incident.objects.count() == 1
    assert len(run_tasks) == 1


def test_repeat_of_a_rejected_payload_returns_the_same_400_and_trace_id(send, generic_url):
    first = send(generic_url, {"summary": "no message"}, key="bad-1")
    again = send(generic_url, {"summary": "no message"}, key="bad-1")
    assert first.status_code == again.status_code == 400
    assert again.json() == first.json()
    assert InboundEvent.objects.get().status == InboundEvent.Status.REJECTED


def test_different_keys_and_no_key_store_each_request(send, generic_url):
    for key in ("a", "b", None, None):
        assert send(generic_url, {"message": "Disk full"}, key=key).status_code == 200
    assert InboundEvent.objects.count() == 4


def test_the_same_key_on_another_integration_is_another_request(send, integration, service):
    other = Integration.objects.create(name="Other", kind="generic", service=service)
    one = send(f"/api/events/{integration.key}/", {"message": "x"}, key="k")
    two = send(f"/api/events/{other.key}/", {"message": "x"}, key="k")
    assert one.json()["trace_id"] != two.json()["trace_id"]
    assert InboundEvent.objects.count() == 2


def test_after_24_hours_the_key_may_be_used_again(send, generic_url):
    first = send(generic_url, {"message": "Disk full"}, key="daily")
    IdempotencyKey.objects.update(created_at=timezone.now() - timedelta(hours=24, seconds=1))
    again = send(generic_url, {"message": "Disk full"}, key="daily")
    assert again.status_code == 200
    assert again.json()["trace_id"] != first.json()["trace_id"]
    assert IdempotencyKey.objects.get().response["trace_id"] == again.json()["trace_id"]


def test_the_prune_job_deletes_keys_older_than_24_hours(send, generic_url):
    send(generic_url, {"message": "old"}, key="old")
    send(generic_url, {"message": "new"}, key="new")
    IdempotencyKey.objects.filter(key="old").update(
        created_at=timezone.now() - timedelta(hours=25)
    )
    tasks.prune_inbound_events()
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["new"]


@pytest.mark.parametrize("key", ["x" * (MAX_KEY_LENGTH + 1), "   ", "tab\there"])
def test_an_unusable_key_is_a_400_and_nothing_is_stored(send, generic_url, key):
    response = send(generic_url, {"message": "Disk full"}, key=key)
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["errors"]
    assert not InboundEvent.objects.exists()


def test_a_key_of_the_maximum_length_is_accepted(send, generic_url):
    assert send(generic_url, {"message": "x"}, key="k" * MAX_KEY_LENGTH).status_code == 200


def test_incoming_webhook_repeat_declares_one_incident(send, hook_auth, run_tasks):
    first = send(HOOK_URL, {}, key="deploy-7", **hook_auth)
    again = send(HOOK_URL, {}, key="deploy-7", **hook_auth)
    assert first.status_code == again.status_code == 200
    assert again.json()["trace_id"] == first.json()["trace_id"]
    assert Incident.objects.count() == 1
    assert len(run_tasks) == 1


def test_incoming_webhook_over_long_key_is_a_400(send, hook_auth):
    response = send(HOOK_URL, {}, key="x" * 1000, **hook_auth)
    assert response.status_code == 400
    assert not InboundEvent.objects.exists()


def test_a_failing_token_update_still_answers_200_for_the_stored_event(
    send, hook_auth, monkeypatch, caplog
):
    def broken(self):
        raise RuntimeError("token row locked")

    monkeypatch.setattr(IntegrationToken, "mark_used", broken)
    response = send(HOOK_URL, {}, **hook_auth)
    assert response.status_code == 200
    event = InboundEvent.objects.get()
    assert str(event.trace_id) == response.json()["trace_id"]
    assert event.status == InboundEvent.Status.COMPLETED
    assert "Could not record the use of token" in caplog.text


# Mail: the Message-ID is the key, per integration, for 24 hours.

def mail(to: str, message_id: str) -> bytes:
    return (
        f"From: nagios@monitoring.example.com\r\nTo: {to}\r\nSubject: disk\r\n"
        f"Message-ID: {message_id}\r\n\r\nseverity: 1\ndescription: Disk full\n"
    ).encode()


def test_a_mail_delivered_twice_by_the_mta_is_stored_once(
    service, run_tasks, django_capture_on_commit_callbacks
):
    mailbox = Integration.objects.create(name="Mail", kind="email", service=service)
    outputs = []
    for _ in range(2):
        out = io.StringIO()
        with django_capture_on_commit_callbacks(execute=True):
            call_command("ingest_email", stdin=io.BytesIO(mail(mailbox.email_address, "<m1@x>")),
                         stdout=out, stderr=io.StringIO())
        outputs.append(out.getvalue())
    event = InboundEvent.objects.get()
    assert event.status == InboundEvent.Status.COMPLETED
    assert f"Already received as inbound event {event.trace_id}" in outputs[1]
    assert Alert.objects.count() == 1
    call_command("ingest_email", stdin=io.BytesIO(mail(mailbox.email_address, "<m2@x>")),
                 stdout=io.StringIO(), stderr=io.StringIO())
    assert InboundEvent.objects.count() == 2


# Simultaneous repeats: the unique constraint decides, on PostgreSQL with real connections.

@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_simultaneous_repeats_store_one_event_and_all_get_its_trace_id(integration, monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("simultaneous requests are tested on PostgreSQL (set DATABASE_URL)")
    monkeypatch.setattr("tocsin.taskqueue.async_task", lambda *args, **kwargs: None)
    # Every thread passes the early look-up, as if all arrived at once: only the unique
    # constraint can then tell them apart.
    original, checked = idempotency.earlier, threading.local()

    def after_first_look(integration, key):
        if not getattr(checked, "once", False):
            checked.once = True
            return None
        return original(integration, key)

    monkeypatch.setattr(idempotency, "earlier", after_first_look)
    repeats = 8
    barrier = threading.Barrier(repeats)
    answers = []

    def repeat():
        client = Client()
        barrier.wait()
        try:
            response = post(client, f"/api/events/{integration.key}/",
                            {"message": "Disk full"}, key="same-key")
            answers.append((response.status_code, response.json()["trace_id"]))
        finally:
            connection.close()

    threads = [threading.Thread(target=repeat) for _ in range(repeats)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    event = InboundEvent.objects.get()
    assert answers == [(200, str(event.trace_id))] * repeats
    assert IdempotencyKey.objects.count() == 1
