"""Email integrations in the admin and the API: the address and sample body with copy
buttons, regenerating the address, rejected mail and parser warnings on show."""

import pytest
from django.urls import reverse

from integrations import samples
from integrations.models import HIDDEN_MAIL, Alert, InboundEvent, Integration
from tests.conftest import api_client_for, make_user


@pytest.fixture
def mailbox(service):
    return Integration.objects.create(name="Nagios mail", kind="email", service=service)


def change_page(client, integration) -> str:
    url = reverse("admin:integrations_integration_change", args=[integration.pk])
    return client.get(url).content.decode()


def test_email_integration_page_shows_address_and_sample_body_with_copy_buttons(
    client, manager, mailbox
):
    client.force_login(manager)
    html = change_page(client, mailbox)
    assert f'<code id="tocsin-email-address">{mailbox.email_address}</code>' in html
    assert 'data-copy-target="tocsin-email-address"' in html
    assert 'data-copy-target="tocsin-sample"' in html
    assert "source_id: db-2-disk" in html
    assert reverse("admin:integrations_integration_regenerate_address",
                   args=[mailbox.pk]) in html
    assert "Try it with curl" not in html


def test_generated_addresses_are_unguessable_and_at_the_inbound_domain(service, settings):
    settings.TOCSIN_INBOUND_EMAIL_DOMAIN = "alerts.example.com"
    first = Integration.objects.create(name="a", kind="email", service=service)
    second = Integration.objects.create(name="b", kind="email", service=service)
    assert first.email_address.endswith("@alerts.example.com")
    assert len(first.email_local_part) == len("alert-") + 32
    assert first.email_address != second.email_address


def test_regenerating_the_address_asks_first_then_replaces_it(client, manager, mailbox):
    client.force_login(manager)
    old = mailbox.email_address
    url = reverse("admin:integrations_integration_regenerate_address", args=[mailbox.pk])

    confirm = client.get(url).content.decode()
    assert old in confirm
    mailbox.refresh_from_db()
    assert mailbox.email_address == old

    response = client.post(url, follow=True)
    mailbox.refresh_from_db()
    assert mailbox.email_address != old
    html = response.content.decode()
    assert f"New address {mailbox.email_address}; mail to {old} is now rejected." in html
    assert f'<code id="tocsin-email-address">{mailbox.email_address}</code>' in html


def test_a_responder_cannot_regenerate_an_address(client, responder, mailbox):
    client.force_login(responder)
    old = mailbox.email_address
    url = reverse("admin:integrations_integration_regenerate_address", args=[mailbox.pk])
    assert client.post(url).status_code == 403
    mailbox.refresh_from_db()
    assert mailbox.email_address == old


def test_rejected_mail_is_listed_with_the_address_it_was_sent_to(client, responder, mailbox):
    InboundEvent.objects.create(
        source="email", body=b"To: alert-0000@alerts.localhost\r\n\r\nseverity: 1\r\n",
        status=InboundEvent.Status.REJECTED,
        error="No email integration has the address alert-0000@alerts.localhost",
    )
    client.force_login(responder)
    listing = client.get(
        reverse("admin:integrations_inboundevent_changelist"),
        {"status__exact": "rejected", "source": "email"},
    ).content.decode()
    assert "tocsin-badge--rejected" in listing
    assert "No email integration has the address alert-0000@alerts.localhost" in listing
    event = InboundEvent.objects.get()
    detail = client.get(reverse("admin:integrations_inboundevent_change", args=[event.pk]))
    # The raw mail may name addresses in encoded forms: Responders never see it.
    assert HIDDEN_MAIL in detail.content.decode()
    client.force_login(make_user("max", "Manager"))
    detail = client.get(reverse("admin:integrations_inboundevent_change", args=[event.pk]))
    assert "severity: 1" in detail.content.decode()


def test_alert_page_shows_the_parser_warnings(client, responder, mailbox):
    alert = Alert.objects.create(
        integration=mailbox, message="Disk full", entity_id="db-2",
        extra={"warnings": ["No event_time given; using the time the mail was received."]},
    )
    client.force_login(responder)
    html = client.get(reverse("admin:integrations_alert_change", args=[alert.pk])).content
    assert b"No event_time given; using the time the mail was received." in html


def test_api_shows_the_address_and_regenerates_it(manager, mailbox):
    api = api_client_for(manager)
    listed = api.get(f"/api/v1/integrations/{mailbox.pk}/").json()
    assert listed["email_address"] == mailbox.email_address
    assert listed["webhook_url"] is None

    response = api.post(f"/api/v1/integrations/{mailbox.pk}/regenerate-address/")
    assert response.status_code == 200
    mailbox.refresh_from_db()
    assert response.json()["email_address"] == mailbox.email_address
    assert mailbox.email_address != listed["email_address"]


def test_api_regenerates_addresses_of_email_integrations_only(manager, integration):
    response = api_client_for(manager).post(
        f"/api/v1/integrations/{integration.pk}/regenerate-address/"
    )
    assert response.status_code == 400


def test_api_refuses_regenerating_to_a_responder(responder, mailbox):
    response = api_client_for(responder).post(
        f"/api/v1/integrations/{mailbox.pk}/regenerate-address/"
    )
    assert response.status_code == 403


def test_api_alerts_show_their_warnings(responder, mailbox):
    alert = Alert.objects.create(
        integration=mailbox, message="x", entity_id="e", extra={"warnings": ["No severity"]}
    )
    data = api_client_for(responder).get(f"/api/v1/alerts/{alert.pk}/").json()
    assert data["warnings"] == ["No severity"]


def test_the_sample_body_is_the_documented_format(mailbox):
    lines = samples.sample_payload(mailbox).splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "severity", "description", "source", "source_id", "event_time", "resource_name",
        "type", "metric_name", "other_info",
    ]
