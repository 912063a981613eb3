"""Incoming-webhook integrations in the admin: URL and header, tokens created once, revoked."""

import pytest
from django.urls import reverse

from incidents import lifecycle
from integrations.models import Integration, IntegrationToken


@pytest.fixture
def hook(service):
    return Integration.objects.create(name="Grafana", kind="incoming_webhook", service=service)


def test_integration_page_shows_url_header_and_curl(client, manager, hook):
    client.force_login(manager)
    html = client.get(
        reverse("admin:integrations_integration_change", args=[hook.pk])
    ).content.decode()
    assert "/api/incoming-webhooks/incident.create?title=json(report.title)" in html
    assert "Authorization: Bearer &lt;your token&gt;" in html
    assert 'data-copy-target="tocsin-incoming-url"' in html
    assert reverse("admin:integrations_integration_new_token", args=[hook.pk]) in html
    assert "Revoke selected tokens" in html


def test_new_token_page_shows_the_plaintext_once(client, manager, hook):
    client.force_login(manager)
    url = reverse("admin:integrations_integration_new_token", args=[hook.pk])
    assert client.get(url).status_code == 200
    html = client.post(url, {"name": "grafana-prod"}).content.decode()
    token = IntegrationToken.objects.get(integration=hook)
    assert token.name == "grafana-prod"
    start = html.index('id="tocsin-new-token">') + len('id="tocsin-new-token">')
    plaintext = html[start:html.index("</code>", start)]
    assert plaintext.startswith(token.prefix)
    page = client.get(
        reverse("admin:integrations_integration_change", args=[hook.pk])
    ).content.decode()
    assert token.prefix in page
    assert plaintext not in page


def test_responder_cannot_create_tokens(client, responder, hook):
    client.force_login(responder)
    url = reverse("admin:integrations_integration_new_token", args=[hook.pk])
    assert client.post(url, {"name": "x"}).status_code == 403
    assert not IntegrationToken.objects.exists()


def test_revoke_action(client, manager, hook):
    token, _ = IntegrationToken.issue(hook, "prod")
    client.force_login(manager)
    client.post(reverse("admin:integrations_integrationtoken_changelist"),
                {"action": "revoke_selected", "_selected_action": [token.pk]})
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_drill_incident_is_marked_in_the_list(client, responder, service):
    lifecycle.open_incident(service=service, title="Game day", entity_id="d", drill=True)
    client.force_login(responder)
    html = client.get(reverse("admin:incidents_incident_changelist")).content.decode()
    assert "tocsin-badge--drill" in html
