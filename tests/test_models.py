import pytest
from django.db import IntegrityError, transaction

from incidents import lifecycle
from incidents.models import Incident, TimelineEntry
from integrations.models import Integration, IntegrationToken, hash_token


def test_incident_numbers_are_sequential_across_services(service, team):
    other = service.__class__.objects.create(name="Search", team=team)
    first = lifecycle.open_incident(service=service, title="a", entity_id="e1")
    second = lifecycle.open_incident(service=other, title="b", entity_id="e1")
    third = lifecycle.open_incident(service=service, title="c", entity_id="e2")
    assert [first.number, second.number, third.number] == [1, 2, 3]


def test_database_refuses_second_open_incident_for_same_entity(incident):
    with pytest.raises(IntegrityError), transaction.atomic():
        Incident.objects.create(
            number=999, service=incident.service, title="dup", entity_id=incident.entity_id
        )


def test_refused_duplicate_does_not_use_up_an_incident_number(incident):
    with pytest.raises(IntegrityError), transaction.atomic():
        lifecycle.open_incident(service=incident.service, title="dup", entity_id="db-1")
    after = lifecycle.open_incident(service=incident.service, title="new", entity_id="db-2")
    assert after.number == incident.number + 1


def test_acknowledged_incident_still_blocks_a_second_open_incident(incident):
    lifecycle.acknowledge(incident)
    with pytest.raises(IntegrityError), transaction.atomic():
        lifecycle.open_incident(service=incident.service, title="dup", entity_id="db-1")


def test_resolved_incident_lets_the_entity_open_a_new_one(incident):
    lifecycle.resolve(incident)
    again = lifecycle.open_incident(service=incident.service, title="again", entity_id="db-1")
    assert again.pk != incident.pk
    assert again.status == Incident.Status.TRIGGERED


def test_same_entity_on_another_service_is_a_separate_incident(incident, team):
    other = incident.service.__class__.objects.create(name="Other", team=team)
    separate = lifecycle.open_incident(service=other, title="x", entity_id="db-1")
    assert separate.pk != incident.pk


def test_unique_id_is_short_and_random(incident, service):
    other = lifecycle.open_incident(service=service, title="b", entity_id="e9")
    assert 8 <= len(incident.unique_id) <= 16
    assert incident.unique_id != other.unique_id


def test_acknowledge_changes_state_once_and_records_timeline(incident, responder):
    assert lifecycle.acknowledge(incident, actor=responder) is True
    assert lifecycle.acknowledge(incident, actor=responder) is False
    incident.refresh_from_db()
    assert incident.status == "acknowledged"
    assert incident.acknowledged_at is not None
    kinds = list(incident.timeline.values_list("kind", flat=True))
    assert kinds == ["triggered", "acknowledged"]
    assert incident.timeline.get(kind="acknowledged").actor == responder


def test_resolving_a_resolved_incident_is_refused(incident):
    assert lifecycle.resolve(incident) is True
    assert lifecycle.resolve(incident) is False
    assert lifecycle.acknowledge(incident) is False
    incident.refresh_from_db()
    assert incident.status == "resolved"
    assert incident.resolved_at is not None


def test_note_is_added_to_timeline(incident, responder):
    lifecycle.add_note(incident, "Restarted the primary", actor=responder)
    note = TimelineEntry.objects.get(incident=incident, kind="note")
    assert note.message == "Restarted the primary"
    assert note.actor == responder


def test_integration_key_is_unguessable(integration, service):
    other = Integration.objects.create(name="Other", kind="generic", service=service)
    # token_urlsafe(32): 32 random bytes, 256 bits, 43 characters.
    assert len(integration.key) >= 43
    assert integration.key != other.key


def test_generic_integration_has_webhook_url(integration, settings):
    assert integration.webhook_url == f"http://localhost:8000/api/events/{integration.key}/"
    assert integration.email_address is None


def test_email_integration_gets_an_address_at_the_inbound_domain(service, settings):
    settings.TOCSIN_INBOUND_EMAIL_DOMAIN = "in.example.org"
    mail = Integration.objects.create(name="Nagios mail", kind="email", service=service)
    local, domain = mail.email_address.split("@")
    assert domain == "in.example.org"
    assert len(local) >= 32
    assert mail.webhook_url is None


def test_default_create_incidents_for_is_critical_only(integration):
    assert integration.create_incidents_for == ["critical"]


def test_incoming_webhook_has_an_endpoint_only_with_an_active_token(service):
    hook = Integration.objects.create(name="Grafana", kind="incoming_webhook", service=service)
    assert hook.has_endpoint is False
    token, plaintext = IntegrationToken.issue(hook, "grafana-prod")
    assert hook.has_endpoint is True
    assert token.token_hash == hash_token(plaintext)
    assert plaintext not in (token.prefix, token.token_hash)
    token.revoked_at = token.created_at
    token.save()
    assert hook.has_endpoint is False
