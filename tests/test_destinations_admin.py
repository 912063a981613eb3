"""Destination and delivery pages in the admin."""

import pytest
from django.urls import reverse

from destinations.models import Delivery, Destination
from tests.conftest import make_user
from tests.delivery_helpers import make_destination
from tests.sinks import Reply

SECRET = "xoxb-super-secret-value"


@pytest.fixture
def logged_in_manager(client, manager):
    client.force_login(manager)
    return client


def test_adding_a_destination_starts_with_choosing_its_kind(logged_in_manager):
    page = logged_in_manager.get(reverse("admin:destinations_destination_add"))
    html = page.content.decode()
    assert page.status_code == 200
    for label in ("PagerDuty", "Opsgenie", "ServiceNow", "Zendesk", "Zenduty", "HipChat"):
        assert label in html
    assert "?kind=pagerduty" in html


def test_each_kind_has_its_own_form(logged_in_manager):
    for kind in Destination.Kind.values:
        add = reverse("admin:destinations_destination_add")
        page = logged_in_manager.get(f"{add}?kind={kind}")
        assert page.status_code == 200, kind
    html = logged_in_manager.get(
        reverse("admin:destinations_destination_add") + "?kind=opsgenie").content.decode()
    assert 'name="config_api_key"' in html and 'type="password"' in html
    assert 'value="https://api.opsgenie.com"' in html


def test_manager_adds_a_pagerduty_destination_through_the_form(logged_in_manager):
    url = reverse("admin:destinations_destination_add") + "?kind=pagerduty"
    response = logged_in_manager.post(url, {
        "name": "Payments on-call", "kind": "pagerduty", "config_integration_key": SECRET,
        "config_api_url": "https://events.eu.pagerduty.com/",
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    created = Destination.objects.get()
    assert created.kind == "pagerduty"
    assert created.config == {"integration_key": SECRET,
                              "api_url": "https://events.eu.pagerduty.com"}


def test_a_missing_required_key_is_shown_on_its_field(logged_in_manager):
    url = reverse("admin:destinations_destination_add") + "?kind=slack"
    response = logged_in_manager.post(url, {"name": "chat", "kind": "slack"})
    assert response.status_code == 200
    assert "config_webhook_url" in response.context["adminform"].form.errors
    assert not Destination.objects.exists()


def test_the_change_form_never_renders_a_secret_and_blank_keeps_it(logged_in_manager):
    hook = Destination.objects.create(
        name="hook", kind="webhook", config={"url": "https://example.com/a", "secret": SECRET}
    )
    url = reverse("admin:destinations_destination_change", args=[hook.pk])
    html = logged_in_manager.get(url).content.decode()
    assert SECRET not in html and "Leave blank to keep the current value" in html
    response = logged_in_manager.post(url, {
        "name": "hook 2", "config_url": "https://example.com/b", "config_secret": "",
    })
    assert response.status_code == 302
    hook.refresh_from_db()
    assert hook.name == "hook 2"
    assert hook.config == {"url": "https://example.com/b", "secret": SECRET}


def test_send_test_button_shows_the_outcome(logged_in_manager, http_sink):
    hook = Destination.objects.create(name="hook", kind="webhook",
                                      config={"url": f"{http_sink.url}/in"})
    page = logged_in_manager.get(reverse("admin:destinations_destination_change", args=[hook.pk]))
    assert "Send test" in page.content.decode()
    http_sink.reply(Reply(403, {"error": "forbidden"}))
    response = logged_in_manager.post(
        reverse("admin:destinations_destination_send_test", args=[hook.pk]), follow=True)
    text = response.content.decode()
    assert "Test to hook failed" in text and "HTTP 403" in text
    response = logged_in_manager.post(
        reverse("admin:destinations_destination_send_test", args=[hook.pk]), follow=True)
    assert "Test sent to hook (HTTP 200)" in response.content.decode()
    assert Delivery.objects.filter(event="test").count() == 2


def test_responder_cannot_send_tests(client, responder, http_sink):
    client.force_login(responder)
    hook = Destination.objects.create(name="hook", kind="webhook",
                                      config={"url": f"{http_sink.url}/in"})
    response = client.post(reverse("admin:destinations_destination_send_test", args=[hook.pk]))
    assert response.status_code == 403
    assert http_sink.requests == []


@pytest.mark.parametrize("role", ["Responder", "Manager", "Administrator"])
def test_delivery_log_and_pages_render_for_each_role(client, role, service, incident):
    client.force_login(make_user(role.lower(), role))
    hook = make_destination(service, "webhook", {"url": "https://example.com/1"})
    failed = Delivery.objects.create(destination=hook, incident=incident, event="triggered",
                                     status="failed", error="HTTP 410: gone", attempts=1)
    listing = client.get(reverse("admin:destinations_delivery_changelist")
                         + f"?incident__id__exact={incident.pk}&status__exact=failed")
    assert listing.status_code == 200 and "hook" in listing.content.decode()
    detail = client.get(reverse("admin:destinations_delivery_change", args=[failed.pk]))
    assert detail.status_code == 200 and "HTTP 410: gone" in detail.content.decode()
    assert ("Re-send" in detail.content.decode()) is (role != "Responder")
    destinations = client.get(reverse("admin:destinations_destination_changelist"))
    assert destinations.status_code == 200


def test_incident_page_lists_its_deliveries(client, responder, service, incident):
    client.force_login(responder)
    hook = make_destination(service, "webhook", {"url": "https://example.com/1"},
                            name="Ops webhook")
    Delivery.objects.create(destination=hook, incident=incident, event="triggered",
                            status="sent", response_status=202, attempts=1)
    html = client.get(reverse("admin:incidents_incident_change", args=[incident.pk])).content
    html = html.decode()
    assert "Ops webhook" in html and "tocsin-badge--sent" in html
    assert f"?incident__id__exact={incident.pk}" in html


def test_resend_action_queues_failed_deliveries_again(logged_in_manager, service, incident,
                                                      monkeypatch,
                                                      django_capture_on_commit_callbacks):
    queued = []
    monkeypatch.setattr("tocsin.taskqueue.async_task", lambda *a, **k: queued.append(a[1]))
    hook = make_destination(service, "webhook", {"url": "https://example.com/1"})
    failed = Delivery.objects.create(destination=hook, incident=incident, event="triggered",
                                     status="failed", attempts=1)
    with django_capture_on_commit_callbacks(execute=True):
        response = logged_in_manager.post(reverse("admin:destinations_delivery_changelist"), {
            "action": "resend_selected", "_selected_action": [failed.pk],
        }, follow=True)
    assert "1 delivery(ies) queued" in response.content.decode()
    failed.refresh_from_db()
    assert failed.status == "pending" and queued == [failed.pk]


def test_a_responder_cannot_even_choose_the_kind_of_a_new_destination(client, responder):
    client.force_login(responder)
    assert client.get("/admin/destinations/destination/add/").status_code == 403
    assert client.get("/admin/destinations/destination/add/?kind=webhook").status_code == 403

