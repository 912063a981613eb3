"""The bearer-token incoming webhook through HTTP (docs/incoming-webhook.md)."""

import json

import pytest
from django.db import connection

from incidents.models import Incident
from integrations.models import InboundEvent, Integration, IntegrationToken
from tests.conftest import api_client_for
from tests.ingest_helpers import run_tasks  # noqa: F401 (fixture)

URL = "/api/incoming-webhooks/incident.create"


@pytest.fixture
def hook(service):
    return Integration.objects.create(
        name="Grafana", kind="incoming_webhook", service=service, default_severity="minor"
    )


@pytest.fixture
def token(hook):
    return IntegrationToken.issue(hook, "prod")


@pytest.fixture
def declare(client, token, run_tasks, django_capture_on_commit_callbacks):  # noqa: F811
    """POST to incident.create with params and a body; returns (response, incident)."""

    def _declare(params="", body=b"", *, auth=None):
        _, plaintext = token
        headers = {"HTTP_AUTHORIZATION": auth if auth is not None else f"Bearer {plaintext}"}
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(f"{URL}?{params}", data=data,
                                   content_type="application/json", **headers)
        incident = None
        if response.status_code == 200:
            status = client.get(f"/api/alert/status/{response.json()['trace_id']}/").json()
            assert status["status"] == "completed", status
            incident = Incident.objects.get(number=status["incident"]["incident_number"])
        return response, incident

    return _declare


GRAFANA_BODY = {
    "report": {"title": "Checkout errors above 5%", "level": 3, "ok": False},
    "alerts": [{"labels": {"alertname": "HighErrorRate", "team": "payments"}}],
    "tags": ["checkout", "eu"],
}


def test_literal_params_declare_an_incident(declare, hook):
    response, incident = declare(
        "title=Checkout%20down&severity=critical&labels=a,b&roomprefix=inc"
    )
    assert response.status_code == 200
    assert response.json()["message"] == "success"
    assert incident.title == "Checkout down"
    assert incident.severity == "critical"
    assert incident.labels == ["a", "b"]
    assert incident.room_prefix == "inc"
    assert incident.drill is False
    assert incident.service == hook.service


def test_json_params_read_nested_objects_and_list_indexes(declare):
    _, incident = declare(
        "title=json(report.title)&severity=json(alerts.0.labels.team)&labels=json(tags)"
        "&roomprefix=json(alerts.0.labels.alertname)",
        GRAFANA_BODY,
    )
    assert incident.title == "Checkout errors above 5%"
    assert incident.severity == "payments"
    assert incident.labels == ["checkout", "eu"]
    assert incident.room_prefix == "HighErrorRate"


def test_numbers_and_booleans_become_text(declare):
    _, incident = declare("title=json(report.level)&severity=json(report.ok)", GRAFANA_BODY)
    assert incident.title == "3"
    assert incident.severity == "false"


@pytest.mark.parametrize("params", ["title=json(report.missing)", "title=json(alerts.7.x)", ""])
def test_missing_values_fall_back_to_defaults(declare, params):
    _, incident = declare(params, GRAFANA_BODY)
    assert incident.title == "Incident declared via Grafana"
    assert incident.severity == "minor"


def test_invalid_json_body_still_declares_with_defaults(declare):
    response, incident = declare("title=json(report.title)&severity=high", b"{not json")
    assert response.status_code == 200
    assert incident.title == "Incident declared via Grafana"
    assert incident.severity == "high"


def test_body_over_one_megabyte_is_not_parsed(declare, settings):
    body = {"report": {"title": "big"}, "blob": "x" * (1024 * 1024)}
    response, incident = declare("title=json(report.title)", body)
    assert response.status_code == 200
    assert incident.title == "Incident declared via Grafana"


def test_body_over_the_hard_limit_is_413(declare, settings):
    settings.TOCSIN_INCOMING_WEBHOOK_MAX_BODY_BYTES = 2000
    response, _ = declare("title=x", {"blob": "x" * 3000})
    assert response.status_code == 413
    assert not InboundEvent.objects.exists()


@pytest.mark.parametrize("value,expected", [("true", True), ("1", True), ("false", False)])
def test_drill_flag(declare, value, expected):
    _, incident = declare(f"title=t&drill={value}")
    assert incident.drill is expected


def test_drill_from_json(declare):
    _, incident = declare("drill=json(flags.drill)", {"flags": {"drill": True}})
    assert incident.drill is True


def test_each_call_declares_a_new_incident(declare):
    _, first = declare("title=same")
    _, second = declare("title=same")
    assert first.pk != second.pk
    assert second.number == first.number + 1


def test_declared_even_if_critical_is_not_in_create_incidents_for(declare, hook):
    hook.create_incidents_for = []
    hook.save()
    _, incident = declare("title=t")
    assert incident is not None


@pytest.mark.parametrize("auth", ["", "Bearer ", "Bearer wrong-token", "Token abc", "Basic eDp5"])
def test_missing_or_unknown_token_is_401(declare, auth):
    response, _ = declare("title=t", auth=auth)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert "message" in response.json()
    assert not InboundEvent.objects.exists()


def test_revoked_token_is_401(declare, token):
    token[0].revoke()
    response, _ = declare("title=t")
    assert response.status_code == 401
    assert "revoked" in response.json()["message"]


def test_token_of_disabled_integration_is_404(declare, hook):
    hook.status = Integration.Status.DISABLED
    hook.save()
    response, _ = declare("title=t")
    assert response.status_code == 404


def test_default_severity_is_set_through_the_api(declare, hook, manager):
    response = api_client_for(manager).patch(
        f"/api/v1/integrations/{hook.pk}/", {"default_severity": "critical"}, format="json"
    )
    assert response.status_code == 200
    _, incident = declare("title=t")
    assert incident.severity == "critical"


def test_last_use_is_recorded(declare, token):
    declare("title=t")
    token[0].refresh_from_db()
    assert token[0].last_used_at is not None


def test_plaintext_token_is_nowhere_in_the_database(declare, token):
    declare("title=t")
    _, plaintext = token
    with connection.cursor() as cursor:
        for table in ["integrations_integrationtoken", "integrations_inboundevent"]:
            cursor.execute(f"SELECT * FROM {table}")
            for row in cursor.fetchall():
                assert all(plaintext not in str(bytes(v) if isinstance(v, memoryview) else v)
                           for v in row)


def test_get_is_405(client, db):
    assert client.get(URL).status_code == 405
