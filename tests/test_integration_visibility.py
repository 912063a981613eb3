"""Integration URLs, keys and inbound addresses let anyone who has them send alerts, so
only Managers, Administrators and superusers see them, in the API and in the admin;
the OpenAPI schema needs a signed-in user (docs/roles.md, docs/security.md)."""

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from integrations.inbound_mail import store_mail
from integrations.models import HIDDEN_MAIL, InboundEvent, Integration
from tests.conftest import api_client_for, make_user

SEES = ["Manager", "Administrator"]


@pytest.fixture
def mailbox(service):
    return Integration.objects.create(name="Nagios mail", kind="email", service=service)


@pytest.fixture
def superuser(db):
    return User.objects.create_superuser("root", "root@example.com", "pw-root")


def change_page(client, user, integration) -> str:
    client.force_login(user)
    url = reverse("admin:integrations_integration_change", args=[integration.pk])
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


def test_responders_get_null_webhook_urls_and_addresses_from_the_api(
    responder, integration, mailbox
):
    client = api_client_for(responder)
    generic = client.get(f"/api/v1/integrations/{integration.pk}/").json()
    email = client.get(f"/api/v1/integrations/{mailbox.pk}/").json()
    listed = client.get("/api/v1/integrations/").json()["results"]
    assert generic["webhook_url"] is None and generic["name"] == "Prometheus"
    assert email["email_address"] is None
    assert all(item["webhook_url"] is None and item["email_address"] is None
               for item in listed)
    assert integration.key not in str(listed) and mailbox.email_local_part not in str(listed)


@pytest.mark.parametrize("role", SEES)
def test_managers_and_administrators_get_them(role, integration, mailbox):
    client = api_client_for(make_user(role.lower(), role))
    assert client.get(f"/api/v1/integrations/{integration.pk}/").json()["webhook_url"] == (
        integration.webhook_url
    )
    assert client.get(f"/api/v1/integrations/{mailbox.pk}/").json()["email_address"] == (
        mailbox.email_address
    )


def test_superusers_get_them_without_a_group(superuser, integration):
    data = api_client_for(superuser).get(f"/api/v1/integrations/{integration.pk}/").json()
    assert data["webhook_url"] == integration.webhook_url


def test_responders_see_no_url_key_or_curl_on_integration_pages(client, responder,
                                                                 integration):
    html = change_page(client, responder, integration)
    assert integration.key not in html
    assert "tocsin-webhook-url" not in html and "Try it with curl" not in html
    assert "Only Managers and Administrators see where alerts are sent" in html
    assert 'data-copy-target="tocsin-sample"' in html  # the sample body is no secret


def test_responders_see_no_email_address_on_integration_pages(client, responder, mailbox):
    html = change_page(client, responder, mailbox)
    assert mailbox.email_local_part not in html
    assert "tocsin-regenerate-address" not in html


def test_responders_see_no_incoming_webhook_url_on_integration_pages(client, responder,
                                                                     service):
    incoming = Integration.objects.create(name="Grafana", kind="incoming_webhook",
                                          service=service)
    html = change_page(client, responder, incoming)
    assert "/api/incoming-webhooks/incident.create" not in html


@pytest.mark.parametrize("role", SEES)
def test_managers_and_administrators_see_url_curl_and_copy_buttons(client, role,
                                                                   integration):
    html = change_page(client, make_user(role.lower(), role), integration)
    assert f'<code id="tocsin-webhook-url">{integration.webhook_url}</code>' in html
    assert 'data-copy-target="tocsin-curl"' in html


def test_superusers_see_the_email_address(client, superuser, mailbox):
    assert mailbox.email_address in change_page(client, superuser, mailbox)


@pytest.fixture
def received_mail(mailbox):
    raw = (
        f"From: nagios@example.com\r\nTo: {mailbox.email_address}\r\n"
        "Subject: Disk\r\n\r\nseverity: 1\r\ndescription: Disk full\r\n"
    ).encode()
    store_mail(raw, recipients=[mailbox.email_address], via="test")
    return InboundEvent.objects.get()


def test_responders_see_received_mail_with_the_address_blanked(client, responder, mailbox,
                                                               received_mail):
    api = api_client_for(responder).get(f"/api/v1/inbound-events/{received_mail.pk}/").json()
    assert mailbox.email_local_part not in str(api)
    assert api["headers"]["Recipient"] == f"[hidden]@{mailbox.email_address.split('@')[1]}"
    assert api["body"] == HIDDEN_MAIL
    client.force_login(responder)
    url = reverse("admin:integrations_inboundevent_change", args=[received_mail.pk])
    html = client.get(url).content.decode()
    assert mailbox.email_local_part not in html and HIDDEN_MAIL in html


def test_managers_see_received_mail_as_it_arrived(client, manager, mailbox, received_mail):
    api = api_client_for(manager).get(f"/api/v1/inbound-events/{received_mail.pk}/").json()
    assert api["headers"]["Recipient"] == mailbox.email_address
    assert f"To: {mailbox.email_address}" in api["body"]
    client.force_login(manager)
    url = reverse("admin:integrations_inboundevent_change", args=[received_mail.pk])
    assert mailbox.email_address in client.get(url).content.decode()


def test_the_schema_needs_a_signed_in_user(client, db):
    assert api_client_for(None).get("/api/v1/schema/").status_code == 401
    assert client.get("/api/v1/schema/").status_code in (401, 403)


@pytest.mark.parametrize("role", ["Responder", "Manager", "Administrator"])
def test_every_role_may_read_the_schema(db, role):
    response = api_client_for(make_user(role.lower(), role)).get("/api/v1/schema/")
    assert response.status_code == 200
    assert b"/api/v1/incidents/" in response.content


def test_staff_without_a_role_may_read_the_schema_but_not_a_stranger(client, db):
    staff = make_user("sam", None, staff=True)
    stranger = make_user("eve", None, staff=False)
    assert api_client_for(staff).get("/api/v1/schema/").status_code == 200
    assert api_client_for(stranger).get("/api/v1/schema/").status_code == 403
    client.force_login(staff)
    assert client.get("/api/v1/schema/").status_code == 200


def test_managers_see_the_address_in_the_answer_to_reprocess_as_in_get(
    manager, mailbox, monkeypatch
):
    monkeypatch.setattr("tocsin.taskqueue.async_task", lambda *args, **kwargs: None)
    event = InboundEvent.objects.create(
        integration=mailbox, source="email", status="failed", error="boom",
        headers={"Recipient": mailbox.email_address},
        body=f"To: {mailbox.email_address}\r\nSubject: Disk\r\n\r\nDisk full\r\n".encode(),
    )
    client = api_client_for(manager)
    response = client.post(f"/api/v1/inbound-events/{event.pk}/reprocess/")
    assert response.status_code == 202, response.content
    answer = response.json()
    assert answer["status"] == "queued"
    assert answer["headers"]["Recipient"] == mailbox.email_address
    assert f"To: {mailbox.email_address}" in answer["body"]
    assert answer == client.get(f"/api/v1/inbound-events/{event.pk}/").json()


def test_responders_cannot_find_an_address_by_searching_event_errors(
    client, responder, manager, mailbox
):
    mailbox.status = Integration.Status.DISABLED
    mailbox.save()
    store_mail(b"Subject: x\r\n\r\nseverity: 1\r\n", recipients=[mailbox.email_address],
               via="test")
    prefix = mailbox.email_address[:10]
    url = reverse("admin:integrations_inboundevent_changelist") + f"?q={prefix}"
    client.force_login(responder)
    assert "0 inbound events" in client.get(url).content.decode()
    client.force_login(manager)
    assert "1 inbound event" in client.get(url).content.decode()
