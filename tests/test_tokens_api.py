"""Bearer tokens of incoming-webhook integrations through the REST API (docs/api.md)."""

import pytest
from django.db import connection

from integrations.models import Integration, IntegrationToken
from tests.conftest import api_client_for


@pytest.fixture
def hook(service):
    return Integration.objects.create(name="Grafana", kind="incoming_webhook", service=service)


def test_created_token_is_shown_once_and_stored_only_as_a_hash(manager, hook):
    client = api_client_for(manager)
    created = client.post(f"/api/v1/integrations/{hook.pk}/tokens/", {"name": "prod"},
                          format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    plaintext = body["token"]
    assert body["name"] == "prod" and body["active"] is True
    assert plaintext.startswith(body["prefix"])

    listing = client.get(f"/api/v1/integrations/{hook.pk}/tokens/").content.decode()
    detail = client.get(f"/api/v1/integrations/{hook.pk}/tokens/{body['id']}/")
    assert plaintext not in listing
    assert "token" not in detail.json()
    with connection.cursor() as cursor:
        cursor.execute("SELECT name, prefix, token_hash FROM integrations_integrationtoken")
        assert all(plaintext not in str(value) for row in cursor.fetchall() for value in row)


def test_a_token_makes_the_status_editable(manager, hook):
    client = api_client_for(manager)
    client.post(f"/api/v1/integrations/{hook.pk}/tokens/", {"name": "prod"}, format="json")
    response = client.patch(f"/api/v1/integrations/{hook.pk}/", {"status": "disabled"},
                            format="json")
    assert response.status_code == 200


def test_delete_revokes_and_keeps_the_record(manager, hook):
    token, _ = IntegrationToken.issue(hook, "prod")
    client = api_client_for(manager)
    assert client.delete(f"/api/v1/integrations/{hook.pk}/tokens/{token.pk}/").status_code == 204
    token.refresh_from_db()
    assert token.revoked_at is not None
    first = token.revoked_at
    token.revoke()
    assert token.revoked_at == first
    listed = client.get(f"/api/v1/integrations/{hook.pk}/tokens/").json()["results"]
    assert listed[0]["active"] is False


def test_tokens_only_for_incoming_webhook_integrations(manager, integration):
    response = api_client_for(manager).post(
        f"/api/v1/integrations/{integration.pk}/tokens/", {"name": "x"}, format="json"
    )
    assert response.status_code == 400
    assert "incoming_webhook" in response.json()["detail"]


def test_token_name_is_required(manager, hook):
    response = api_client_for(manager).post(
        f"/api/v1/integrations/{hook.pk}/tokens/", {}, format="json"
    )
    assert response.status_code == 400
    assert "name" in response.json()


def test_unknown_integration_is_404(manager, db):
    response = api_client_for(manager).post("/api/v1/integrations/999/tokens/", {"name": "x"},
                                            format="json")
    assert response.status_code == 404


def test_responder_cannot_create_or_list_tokens(responder, hook):
    client = api_client_for(responder)
    assert client.post(f"/api/v1/integrations/{hook.pk}/tokens/", {"name": "x"},
                       format="json").status_code == 403
    assert client.get(f"/api/v1/integrations/{hook.pk}/tokens/").status_code == 403


def test_token_of_another_integration_is_not_reachable(manager, hook, service):
    other = Integration.objects.create(name="Other", kind="incoming_webhook", service=service)
    token, _ = IntegrationToken.issue(other, "theirs")
    client = api_client_for(manager)
    assert client.delete(f"/api/v1/integrations/{hook.pk}/tokens/{token.pk}/").status_code == 404
