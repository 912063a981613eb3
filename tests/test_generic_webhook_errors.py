"""Bad requests to the generic webhook get a clear 4xx with a JSON body (see docs/)."""

import json
import socket

import pytest
from django.core.cache import cache

from integrations.models import InboundEvent, Integration, RateLimitCounter
from tests.ingest_helpers import post_event


def test_body_that_is_not_json_is_400(client, integration):
    response = post_event(client, integration, "{not json", raw=True)
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["errors"]["body"]


@pytest.mark.parametrize("body", ["[1, 2]", '"text"', "42", "null"])
def test_body_that_is_not_an_object_is_400(client, integration, body):
    response = post_event(client, integration, body, raw=True)
    assert response.status_code == 400
    assert "must be a JSON object" in response.json()["errors"]["body"]


@pytest.mark.parametrize("message", [None, "", "   "])
def test_missing_or_empty_message_is_400(client, integration, message):
    body = {} if message is None else {"message": message}
    response = post_event(client, integration, body)
    assert response.status_code == 400
    assert response.json()["errors"] == {"message": "is required"}


def test_every_problem_is_named_at_once(client, integration):
    response = post_event(client, integration, {
        "message": 12, "summary": ["x"], "alert_type": "panic", "suppressed": "yes",
        "entity_id": {"id": 1}, "payload": [1], "urls": "https://x", "tags": "db",
        "stakeholders": {"users": "ann"}, "stakeholders_comms": "hello",
    })
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert set(errors) == {
        "message", "summary", "alert_type", "suppressed", "entity_id", "payload", "urls",
        "tags", "stakeholders", "stakeholders_comms",
    }
    assert "critical" in errors["alert_type"]


def test_bad_url_entries_are_400(client, integration):
    response = post_event(client, integration, {"message": "m", "urls": [{"link_text": "x"}]})
    assert response.status_code == 400
    assert "link_url" in response.json()["errors"]["urls"]


def test_boolean_entity_id_is_400(client, integration):
    response = post_event(client, integration, {"message": "m", "entity_id": True})
    assert response.status_code == 400


def test_rejected_request_is_recorded_with_its_error(client, integration):
    response = post_event(client, integration, {"alert_type": "critical"})
    event = InboundEvent.objects.get(trace_id=response.json()["trace_id"])
    assert event.status == "rejected"
    assert "message" in event.error
    status = client.get(f"/api/alert/status/{event.trace_id}/").json()
    assert status["status"] == "failed"


def test_unknown_key_is_404(client, db):
    response = client.post("/api/events/no-such-key/", data="{}", content_type="application/json")
    assert response.status_code == 404
    assert "message" in response.json()
    assert not InboundEvent.objects.exists()


def test_disabled_integration_is_404(client, integration):
    integration.status = Integration.Status.DISABLED
    integration.save()
    assert post_event(client, integration, {"message": "m"}).status_code == 404


def test_key_of_an_email_integration_is_404(client, service):
    mail = Integration.objects.create(name="m", kind="email", service=service)
    assert post_event(client, mail, {"message": "m"}).status_code == 404


def test_body_over_the_limit_is_413(client, integration, settings):
    settings.TOCSIN_MAX_BODY_BYTES = 1000
    response = post_event(client, integration, {"message": "m", "summary": "x" * 2000})
    assert response.status_code == 413
    assert "1000 bytes" in response.json()["message"]
    assert not InboundEvent.objects.exists()
    assert post_event(client, integration, {"message": "m"}).status_code == 200


def test_default_body_limit_is_one_megabyte(client, integration):
    big = json.dumps({"message": "m", "payload": {"blob": "x" * (1024 * 1024)}})
    assert post_event(client, integration, big, raw=True).status_code == 413


def test_rate_limit_answers_429_with_retry_after(client, integration):
    integration.rate_limit_per_minute = 2
    integration.save()
    assert post_event(client, integration, {"message": "1"}).status_code == 200
    assert post_event(client, integration, {"message": "2"}).status_code == 200
    limited = post_event(client, integration, {"message": "3"})
    assert limited.status_code == 429
    assert 1 <= int(limited["Retry-After"]) <= 60
    assert "rate limit" in limited.json()["message"].lower()
    assert InboundEvent.objects.count() == 2


def test_rate_limit_is_per_integration(client, integration, service):
    integration.rate_limit_per_minute = 1
    integration.save()
    other = Integration.objects.create(name="o", kind="generic", service=service)
    assert post_event(client, integration, {"message": "1"}).status_code == 200
    assert post_event(client, integration, {"message": "2"}).status_code == 429
    assert post_event(client, other, {"message": "1"}).status_code == 200


def test_zero_rate_limit_means_unlimited(client, integration):
    integration.rate_limit_per_minute = 0
    integration.save()
    for n in range(5):
        assert post_event(client, integration, {"message": str(n)}).status_code == 200


def test_get_is_405_json(client, integration):
    response = client.get(f"/api/events/{integration.key}/")
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert "message" in response.json()


def redis_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.mark.skipif(not redis_answers(), reason="no Redis on 127.0.0.1:6379")
def test_rate_limit_counts_in_redis_when_configured(client, integration, settings):
    settings.REDIS_URL = "redis://127.0.0.1:6379/14"
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": settings.REDIS_URL}}
    cache.clear()
    integration.rate_limit_per_minute = 1
    integration.save()
    assert post_event(client, integration, {"message": "1"}).status_code == 200
    assert post_event(client, integration, {"message": "2"}).status_code == 429
    assert not RateLimitCounter.objects.exists()
    cache.clear()


def test_a_content_length_of_unicode_digits_is_no_500(client, integration):
    # "²" passes str.isdigit() but not int(); a server passing it through must not crash.
    response = client.post(f"/api/events/{integration.key}/", data=b'{"message": "x"}',
                           content_type="application/json", CONTENT_LENGTH="²")
    assert response.status_code < 500
