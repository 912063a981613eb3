"""The mapping and the alert rules in the admin: editing them on the integration page with
validation, the preview page, and the audit on the alert page."""

import json

import pytest
from django.urls import reverse

from integrations.models import Alert, AlertRule, InboundEvent, Integration
from integrations.processing import process_event
from integrations.signals import integration_configuration_changed

MAPPING = {"direct": {"message": {"path": "title"}, "alert_type": {"value": "critical"}}}


def change_url(integration):
    return reverse("admin:integrations_integration_change", args=[integration.pk])


def preview_url(integration):
    return reverse("admin:integrations_integration_preview", args=[integration.pk])


def change_form(integration, *, mapping="", rules=()):
    """The integration change form as the browser posts it, with rules in the inline."""
    data = {
        "name": integration.name, "service": integration.service_id, "status": "enabled",
        "description": "", "integration_url": "", "tags": "[]",
        "create_incidents_for": '["critical"]', "rate_limit_per_minute": "600",
        "default_severity": "major", "mapping": mapping,
        "rules-TOTAL_FORMS": str(len(rules)), "rules-INITIAL_FORMS": "0",
        "rules-MIN_NUM_FORMS": "0", "rules-MAX_NUM_FORMS": "1000",
    }
    for index, rule in enumerate(rules):
        for key, value in rule.items():
            data[f"rules-{index}-{key}"] = value
    return data


@pytest.fixture
def announcements():
    heard = []

    def receiver(sender, integration, what, actor, **kwargs):
        heard.append((what, actor))

    integration_configuration_changed.connect(receiver, dispatch_uid="test-admin-announce")
    yield heard
    integration_configuration_changed.disconnect(dispatch_uid="test-admin-announce")


def test_manager_saves_a_mapping_and_a_rule_on_the_integration_page(
    client, manager, integration, announcements, django_capture_on_commit_callbacks
):
    client.force_login(manager)
    page = client.get(change_url(integration)).content.decode()
    assert "Mapping and alert rules" in page and "tocsin-preview-link" in page
    rule = {"name": "Mute staging", "position": "0", "enabled": "on",
            "conditions": '[{"path": "env", "op": "equals", "value": "staging"}]',
            "actions": '[{"type": "suppress"}]'}
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(change_url(integration), change_form(
            integration, mapping=json.dumps(MAPPING), rules=[rule]))
    assert response.status_code == 302, response.context["adminform"].form.errors
    integration.refresh_from_db()
    assert integration.mapping == MAPPING
    saved = AlertRule.objects.get()
    assert (saved.name, saved.conditions, saved.actions) == (
        "Mute staging", [{"path": "env", "op": "equals", "value": "staging"}],
        [{"type": "suppress"}])
    assert announcements == [("mapping", manager), ("rules", manager)]


def test_empty_mapping_turns_it_off(client, manager, integration):
    integration.mapping = MAPPING
    integration.save()
    client.force_login(manager)
    assert client.post(change_url(integration), change_form(integration)).status_code == 302
    integration.refresh_from_db()
    assert integration.mapping is None


def test_malformed_mapping_is_refused_in_the_admin(client, manager, integration):
    client.force_login(manager)
    bad = {"conditional": [{"if": [{"path": "a", "op": "startswith", "value": "x"}],
                            "then": {"message": {"value": "m"}}}]}
    response = client.post(change_url(integration), change_form(
        integration, mapping=json.dumps(bad)))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["mapping"] == [
        "conditional[0].if[0].op: unknown op 'startswith' (one of equals, not_equals, "
        "contains, matches, exists, gt, lt)"]
    integration.refresh_from_db()
    assert integration.mapping is None


def test_deeply_nested_or_nan_configuration_is_refused_on_the_integration_page(
    client, manager, integration
):
    client.force_login(manager)
    rule = {"name": "Odd", "position": "0", "enabled": "on",
            "conditions": '[{"path": "a", "op": "gt", "value": NaN}]',
            "actions": '[{"type": "add_note", "value": "\\ud800"}]'}
    response = client.post(change_url(integration), change_form(
        integration, mapping="[" * 5000, rules=[rule]))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["mapping"] == [
        "Not valid JSON (body: nests deeper than 64 levels)."]
    errors = response.context["inline_admin_formsets"][0].formset.errors[0]
    assert errors["conditions"] == [
        "Not valid JSON (0.value: is NaN, which is not a number JSON can carry)."]
    assert errors["actions"][0].startswith("Not valid JSON (0.value: contains a lone surrogate")
    integration.refresh_from_db()
    assert integration.mapping is None and not AlertRule.objects.exists()


def test_malformed_rule_is_refused_in_the_admin(client, manager, integration):
    client.force_login(manager)
    rule = {"name": "Bad", "position": "0", "enabled": "on",
            "conditions": '[{"field": "colour", "op": "equals", "value": "red"}]',
            "actions": '[{"type": "set_alert_type", "value": "page"}]'}
    response = client.post(change_url(integration), change_form(integration, rules=[rule]))
    assert response.status_code == 200
    errors = response.context["inline_admin_formsets"][0].formset.errors[0]
    assert errors["conditions"][0].startswith("conditions[0].field: unknown field 'colour'")
    assert errors["actions"][0].startswith("actions[0].value: 'page' is not an alert type")
    assert not AlertRule.objects.exists()


def test_mapping_is_offered_for_generic_integrations_only(client, manager, service):
    mailbox = Integration.objects.create(name="Mail", kind="email", service=service)
    client.force_login(manager)
    page = client.get(change_url(mailbox)).content.decode()
    assert 'name="mapping"' not in page
    assert "tocsin-preview-link" in page and "rules-TOTAL_FORMS" in page


def test_preview_page_shows_the_saved_configuration_and_a_sample(client, manager, integration):
    integration.mapping = MAPPING
    integration.save()
    AlertRule.objects.create(integration=integration, name="Mute all",
                             actions=[{"type": "suppress"}])
    client.force_login(manager)
    response = client.get(preview_url(integration))
    assert response.status_code == 200
    data = response.context["data"]
    assert json.loads(data["mapping"]) == MAPPING
    assert json.loads(data["rules"]) == [{"name": "Mute all", "position": 0, "enabled": True,
                                          "conditions": [], "actions": [{"type": "suppress"}]}]
    assert "CPU above 90% on web-1" in data["payload"]


def test_preview_page_runs_a_pasted_payload_with_edited_configuration(
    client, manager, integration
):
    client.force_login(manager)
    response = client.post(preview_url(integration), {
        "event": "", "payload": '{"title": "Checkout down", "env": "staging"}',
        "mapping": json.dumps(MAPPING),
        "rules": json.dumps([{"name": "Mute staging", "conditions": [
            {"path": "env", "op": "equals", "value": "staging"}],
            "actions": [{"type": "suppress"}]}]),
    })
    result = response.context["result"]
    assert result["alert"]["message"] == "Checkout down"
    assert result["alert"]["suppressed"] is True
    assert [entry["name"] for entry in result["rules"]] == ["Mute staging"]
    html = response.content.decode()
    assert "suppressed: stored, opens nothing" in html
    integration.refresh_from_db()
    assert integration.mapping is None and not AlertRule.objects.exists()


def test_a_responder_previews_payloads_against_the_saved_configuration_only(
    client, responder, integration
):
    # Edited configurations run user-written regexes in the web process; a responder, who
    # could not save them, tries payloads against what is saved.
    client.force_login(responder)
    response = client.post(preview_url(integration), {
        "event": "", "payload": '{"message": "Checkout down", "env": "staging"}',
        "mapping": "", "rules": json.dumps([{"name": "Mute", "conditions": [],
                                             "actions": [{"type": "suppress"}]}]),
    })
    result = response.context["result"]
    assert result["alert"]["message"] == "Checkout down"
    assert result["alert"]["suppressed"] is False and result["rules"] == []


def test_preview_page_runs_a_received_event(client, manager, integration):
    event = InboundEvent.objects.create(integration=integration, source="generic",
                                        body=b'{"message": "Seen on the wire"}')
    client.force_login(manager)
    response = client.post(preview_url(integration), {
        "event": str(event.pk), "payload": "", "mapping": "", "rules": "[]"})
    assert response.context["result"]["alert"]["message"] == "Seen on the wire"
    assert response.context["previewed_event"] == event


def test_preview_page_names_bad_json_and_malformed_configuration(client, manager, integration):
    client.force_login(manager)
    response = client.post(preview_url(integration), {
        "payload": "{}", "mapping": "{not json", "rules": "[]"})
    assert response.context["problems"]["mapping"][0].startswith("not valid JSON")
    response = client.post(preview_url(integration), {
        "payload": "{}", "mapping": '{"direct": {"title": {"value": 1}}}', "rules": "[]"})
    assert response.context["problems"]["mapping"][0].startswith(
        "direct.title: unknown field 'title'")


def test_preview_page_names_deep_nesting_nan_and_surrogates_in_pasted_configuration(
    client, manager, integration
):
    # Plain json.loads raised RecursionError on deep nesting (a 500), and let NaN and lone
    # surrogates through to the validators.
    client.force_login(manager)
    response = client.post(preview_url(integration), {
        "payload": "{}", "mapping": "[" * 5000, "rules": "[" * 5000})
    assert response.status_code == 200
    assert response.context["problems"] == {
        "mapping": ["not valid JSON (body: nests deeper than 64 levels)"],
        "rules": ["not valid JSON (body: nests deeper than 64 levels)"],
    }
    assert "result" not in response.context

    response = client.post(preview_url(integration), {
        "payload": "{}", "mapping": '{"direct": {"message": {"value": NaN}}}',
        "rules": '[{"name": "\\ud800", "conditions": [], "actions": []}]'})
    assert response.status_code == 200
    problems = response.context["problems"]
    assert problems["mapping"] == [
        "not valid JSON (direct.message.value: is NaN, which is not a number JSON can carry)"]
    assert problems["rules"] == [
        "not valid JSON (0.name: contains a lone surrogate escape (such as \\ud800), "
        "which is not text)"]
    assert "is NaN, which is not a number JSON can carry" in response.content.decode()


def test_preview_page_needs_the_view_permission(client, integration, django_user_model):
    nobody = django_user_model.objects.create_user("nobody", password="x", is_staff=True)
    client.force_login(nobody)
    assert client.get(preview_url(integration)).status_code == 403


def test_alert_page_lists_the_rules_that_applied(client, responder, integration):
    rule = AlertRule.objects.create(integration=integration, name="Mute all",
                                    actions=[{"type": "suppress"},
                                             {"type": "add_note", "value": "muted"}])
    event = InboundEvent.objects.create(integration=integration, source="generic",
                                        body=b'{"message": "m"}')
    process_event(event.pk)
    alert = Alert.objects.get()
    client.force_login(responder)
    html = client.get(reverse("admin:integrations_alert_change", args=[alert.pk])).content
    assert (f"<strong>Mute all</strong> (rule {rule.pk}): Suppress; Add a note &quot;muted&quot;"
            in html.decode())
