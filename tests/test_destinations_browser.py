"""Destinations and the delivery log in a real browser: headless Chromium (Playwright)
against pytest-django's live_server, with every destination pointing at a local sink on
127.0.0.1. The browser setup (launch, static files, connections) is shared with
tests/test_admin_browser.py; screenshots go to test-artifacts/screenshots/."""

import re

import pytest
from playwright.sync_api import expect

from destinations.models import Delivery, Destination
from incidents import lifecycle
from incidents.models import Incident
from tests import test_admin_browser as admin_browser  # sets DJANGO_ALLOW_ASYNC_UNSAFE
from tests.delivery_helpers import make_destination
from tests.sinks import HTTPSink, Reply

# The browser fixtures, shared (assigned rather than imported, so that test parameters of the
# same names do not read as redefinitions).
browser = admin_browser.browser
context = admin_browser.context
page = admin_browser.page
plain_static_files = admin_browser.plain_static_files
log_in = admin_browser.log_in
success_message = admin_browser.success_message
SCREENSHOTS = admin_browser.SCREENSHOTS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

DESTINATIONS = "/admin/destinations/destination/"
DELIVERIES = "/admin/destinations/delivery/"


@pytest.fixture
def shot(page, request):
    """shot("step") saves a full-page screenshot named after the test and the step;
    shot("step", locator) saves just that element."""

    def take(step: str = "", locator=None):
        path = SCREENSHOTS / (request.node.name + (f"--{step}" if step else "") + ".png")
        if locator is not None:
            locator.screenshot(path=path)
        else:
            page.screenshot(path=path, full_page=True)

    return take


def error_message(page):
    return page.locator(".messagelist .error")


def destination_url(destination):
    return f"{DESTINATIONS}{destination.pk}/change/"


def add_destination(page, kind_label, name, fields: dict, shot=None):
    """Add → kind chooser → the kind's form, filled and saved."""
    page.goto(DESTINATIONS)
    page.get_by_role("link", name="Add destination").click()
    expect(page.locator("h1")).to_have_text("Add destination: choose its kind")
    kinds = page.locator(".tocsin-kind-list .button")
    expect(kinds).to_have_count(len(Destination.Kind.choices))
    # A grid only if static/tocsin/admin.css reached this page, which has no ModelAdmin media.
    expect(page.locator(".tocsin-kind-list")).to_have_css("display", "grid")
    if shot:
        shot("kinds")
    page.locator(".tocsin-kind-list").get_by_role("link", name=kind_label, exact=True).click()
    expect(page.locator("#destination_form")).to_contain_text(f"Kind: {kind_label}")
    expect(page.locator(".field-kind_label")).to_have_count(0)  # no second "Kind: —" row
    page.fill("#id_name", name)
    for field, value in fields.items():
        page.fill(f"#id_config_{field}", value)
    if shot:
        shot("form")
    page.locator("input[name=_save]").click()
    expect(success_message(page)).to_contain_text(f"“{name} ({kind_label})” was added")
    return Destination.objects.get(name=name)


def test_manager_adds_slack_destination_and_sends_test(page, shot, manager, http_sink):
    log_in(page, manager)
    slack = add_destination(
        page, "Slack", "Ops channel", {"webhook_url": f"{http_sink.url}/hooks/ops"}, shot
    )
    assert (slack.kind, slack.config) == ("slack", {"webhook_url": f"{http_sink.url}/hooks/ops"})
    assert page.url.endswith(DESTINATIONS)
    row = page.locator("#result_list tbody tr", has_text="Ops channel")
    expect(row.locator(".tocsin-badge--sent")).to_have_text("OK")
    expect(row).to_contain_text("Slack")
    shot("list")
    assert http_sink.requests == []  # saving sends nothing

    row.get_by_role("link", name="Ops channel").click()
    page.get_by_role("button", name="Send test").click()
    expect(success_message(page)).to_have_text("Test sent to Ops channel (HTTP 200).")
    shot("sent")

    [received] = http_sink.requests
    assert (received.method, received.path) == ("POST", "/hooks/ops")
    headline = "[Test] Test notification from Tocsin to Ops channel (Tocsin)"
    assert received.json["attachments"][0]["title"] == headline
    assert received.json["text"].startswith(headline)
    test = Delivery.objects.get(destination=slack)
    assert (test.event, test.status, test.response_status) == ("test", "sent", 200)


def test_pagerduty_integration_key_is_never_shown_and_blank_keeps_it(page, shot, manager):
    key = "R0UT1NGKEY-5ecret-0123456789abcdef"
    log_in(page, manager)
    pagerduty = add_destination(page, "PagerDuty", "Payments on-call", {"integration_key": key})
    assert pagerduty.config == {
        "integration_key": key, "api_url": "https://events.pagerduty.com",
    }

    page.goto(destination_url(pagerduty))
    assert key not in page.content()
    secret = page.locator("#id_config_integration_key")
    expect(secret).to_have_attribute("type", "password")
    expect(secret).to_have_value("")
    expect(page.locator(".field-config_integration_key")).to_contain_text(
        "Set. Leave blank to keep the current value."
    )
    shot()

    page.fill("#id_name", "Payments on-call (EU)")
    page.locator("input[name=_continue]").click()
    expect(success_message(page)).to_contain_text("was changed successfully")
    assert key not in page.content()
    pagerduty.refresh_from_db()
    assert pagerduty.name == "Payments on-call (EU)"
    assert pagerduty.config["integration_key"] == key


def test_failing_send_test_shows_http_status_and_health(page, shot, manager, http_sink):
    hook = Destination.objects.create(
        name="Audit hook", kind="webhook", config={"url": f"{http_sink.url}/audit"}
    )
    http_sink.default = Reply(401, {"error": "bad token"})
    log_in(page, manager)
    page.goto(destination_url(hook))
    page.get_by_role("button", name="Send test").click()
    expect(error_message(page)).to_contain_text("Test to Audit hook failed: HTTP 401")
    expect(page.locator(".field-last_error")).to_contain_text("HTTP 401")
    shot("failed")

    # One failure is not yet "failing" (TOCSIN_DESTINATION_FAILING_AFTER is 3).
    page.goto(DESTINATIONS)
    row = page.locator("#result_list tbody tr", has_text="Audit hook")
    expect(row.locator(".tocsin-badge--sent")).to_have_text("OK")

    page.goto(destination_url(hook))
    for _ in range(2):
        page.get_by_role("button", name="Send test").click()
        expect(error_message(page)).to_contain_text("HTTP 401")
    page.goto(DESTINATIONS)
    expect(row.locator(".tocsin-badge--failed")).to_have_text("Failing (3 in a row)")
    shot("list")
    hook.refresh_from_db()
    assert (hook.failing, hook.consecutive_failures) == (True, 3)
    assert len(http_sink.requests) == 3


@pytest.fixture
def second_sink(http_sink):
    """Another sink, so one destination can fail while the other succeeds (http_sink has
    already allowed private addresses)."""
    sink = HTTPSink()
    yield sink
    sink.close()


def test_incident_deliveries_log_and_resend(
    page, shot, manager, service, http_sink, second_sink, deliver_inline
):
    make_destination(service, "webhook", {"url": f"{http_sink.url}/ok"}, name="Status page")
    make_destination(service, "webhook", {"url": f"{second_sink.url}/bad"}, name="Flaky hook")
    second_sink.default = Reply(400, {"error": "unknown field"})
    incident = lifecycle.open_incident(service=service, title="Checkout 500s", entity_id="web-2")
    other = lifecycle.open_incident(service=service, title="Cart slow", entity_id="web-3")
    assert len(http_sink.requests) == 2 and len(second_sink.requests) == 2
    failed = Delivery.objects.get(incident=incident, destination__name="Flaky hook")
    assert failed.status == Delivery.Status.FAILED

    log_in(page, manager)
    page.goto(f"/admin/incidents/incident/{incident.pk}/change/")
    deliveries = page.locator(".tocsin-deliveries")
    ok_row = deliveries.locator("tbody tr", has_text="Status page")
    expect(ok_row.locator(".tocsin-badge--sent")).to_have_text("Sent")
    expect(ok_row).to_contain_text("Triggered")
    bad_row = deliveries.locator("tbody tr", has_text="Flaky hook")
    expect(bad_row.locator(".tocsin-badge--failed")).to_have_text("Failed")
    expect(bad_row).to_contain_text("HTTP 400")
    shot("incident")
    shot("incident-deliveries", page.locator("fieldset", has=deliveries))

    page.get_by_role("link", name="Delivery log for this incident").click()
    expect(page).to_have_url(re.compile(rf"incident__id__exact={incident.pk}$"))
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.filter(has_text=other.title)).to_have_count(0)
    expect(rows.filter(has_text="Flaky hook").locator(".tocsin-badge--failed")).to_be_visible()
    shot("log")

    second_sink.default = Reply(200, {"ok": True})
    rows.filter(has_text="Flaky hook").locator("th.field-id a").click()
    expect(page.locator(".field-status_label .tocsin-badge--failed")).to_be_visible()
    page.get_by_role("button", name="Re-send").click()
    expect(success_message(page)).to_have_text("Queued to be sent again.")
    # Sent inline (deliver_inline) before the redirect, so the page already shows it.
    expect(page.locator(".field-status_label .tocsin-badge--sent")).to_have_text("Sent")
    shot("resent")
    failed.refresh_from_db()
    # A re-send starts a fresh retry budget, so its attempts count from zero again.
    assert (failed.status, failed.response_status, failed.attempts) == ("sent", 200, 1)
    assert second_sink.requests[-1].path == "/bad"
    assert second_sink.requests[-1].headers["x-tocsin-delivery"] == str(failed.uuid)


def test_responder_sees_delivery_log_but_cannot_resend_or_send_test(
    page, shot, responder, service, http_sink, deliver_inline
):
    secret = "whsec-never-shown-4242"
    hook = make_destination(service, "webhook", {"url": f"{http_sink.url}/x", "secret": secret},
                            name="Status page")
    http_sink.default = Reply(400)
    incident = lifecycle.open_incident(service=service, title="DNS flaps", entity_id="dns-1")
    failed = Delivery.objects.get(incident=incident)
    assert failed.status == Delivery.Status.FAILED

    log_in(page, responder)
    page.goto(DELIVERIES)
    row = page.locator("#result_list tbody tr", has_text="Status page")
    expect(row.locator(".tocsin-badge--failed")).to_have_text("Failed")
    expect(page.locator("select[name=action] option", has_text="Re-send")).to_have_count(0)
    shot("log")

    page.goto(f"{DELIVERIES}{failed.pk}/change/")
    expect(page.locator(".field-status_label .tocsin-badge--failed")).to_be_visible()
    expect(page.get_by_role("button", name="Re-send")).to_have_count(0)
    shot("delivery")
    # Nor can the URL behind the button be posted to directly.
    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    response = page.request.post(f"{DELIVERIES}{failed.pk}/resend/",
                                 headers={"X-CSRFToken": csrf}, max_redirects=0)
    assert response.status == 403
    assert "CSRF" not in response.text()  # refused for the permission, not the token

    page.goto(destination_url(hook))
    expect(page.locator("h1")).to_have_text("View destination")
    expect(page.get_by_role("button", name="Send test")).to_have_count(0)
    # A view-only page shows the settings as a summary; a secret only says it is set.
    settings = page.locator(".field-settings_summary .tocsin-settings")
    expect(settings.locator("dd")).to_have_text([f"{http_sink.url}/x", "Set"])
    assert secret not in page.content()
    shot("destination")
    assert len(http_sink.requests) == 1
    assert Incident.objects.get(pk=incident.pk).deliveries.get().status == "failed"
