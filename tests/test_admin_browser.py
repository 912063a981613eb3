"""The admin in a real browser: headless Chromium (Playwright) against pytest-django's
live_server. Screenshots of the main pages go to test-artifacts/screenshots/."""

import os
import re
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.db import connections
from playwright.sync_api import expect, sync_playwright

from incidents import lifecycle
from incidents.models import Incident, TimelineEntry
from integrations.models import Integration, IntegrationToken
from tests.conftest import make_user

# Playwright's sync API leaves its asyncio event loop marked as running in this thread, so
# Django thinks the test code is async code and raises SynchronousOnlyOperation on every ORM
# call. The loop only drives the browser and never runs while the ORM is in use: safe here.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--no-first-run", "--disable-component-update", "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"

# transaction=True: the live server thread must see the test's data, so it is committed.
# serialized_rollback=True: the flush after each transactional test deletes the groups made
# by the roles migration; this restores them (and their permissions) before each test.
pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} not found: install Debian's chromium to run the browser tests"
        if os.environ.get("TOCSIN_REQUIRE_BROWSER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    # Django keeps connections in an asgiref Local that, once an event loop is running,
    # switches from per-thread to per-context storage. The test code would then get fresh
    # connection objects without the snapshot that serialized_rollback restores, and the
    # roles migration's groups would be gone after the first flush. Keep the originals.
    originals = {conn.alias: conn for conn in connections.all()}
    with sync_playwright() as playwright:
        for alias, conn in originals.items():
            connections[alias] = conn
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(autouse=True)
def plain_static_files(settings):
    # live_server serves static files through the finders, which only know the source
    # names; the manifest storage's hashed names (admin.3755939dd5db.css) would all 404.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture
def context(browser, live_server):
    context = browser.new_context(base_url=live_server.url)
    yield context
    context.close()


@pytest.fixture
def page(context):
    return context.new_page()


@pytest.fixture
def shot(page, request):
    """shot() saves a full-page screenshot named after the test."""
    return lambda: page.screenshot(path=SCREENSHOTS / f"{request.node.name}.png", full_page=True)


def log_in(page, user):
    page.goto("/admin/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", "pw-" + user.username)
    page.click("input[type=submit]")
    expect(page.locator("#user-tools")).to_contain_text(user.username)


def change_url(incident):
    return f"/admin/incidents/incident/{incident.pk}/change/"


def success_message(page):
    return page.locator(".messagelist .success")


def test_responder_sees_incident_list_with_status_badges(page, shot, responder, service):
    triggered = lifecycle.open_incident(service=service, title="CPU hot", entity_id="web-1")
    acknowledged = lifecycle.open_incident(service=service, title="Queue slow", entity_id="q-1")
    lifecycle.acknowledge(acknowledged)
    resolved = lifecycle.open_incident(service=service, title="Disk full", entity_id="db-1")
    lifecycle.resolve(resolved)

    log_in(page, responder)
    page.goto("/admin/incidents/incident/")
    for incident, colour in [
        (triggered, "rgb(198, 40, 40)"),
        (acknowledged, "rgb(239, 108, 0)"),
        (resolved, "rgb(46, 125, 50)"),
    ]:
        row = page.locator("#result_list tbody tr", has_text=incident.title)
        badge = row.locator(f".tocsin-badge.tocsin-badge--{incident.status}")
        expect(badge).to_have_text(incident.get_status_display())
        # The colour proves that static/tocsin/admin.css was served and applied.
        expect(badge).to_have_css("background-color", colour)
    expect(page.locator("#changelist-filter")).to_be_visible()
    expect(page.locator("#changelist-filter")).to_contain_text("By open or closed")
    shot()


def test_responder_acknowledges_then_resolves_from_incident_page(
    page, shot, responder, incident
):
    log_in(page, responder)
    page.goto(change_url(incident))

    page.get_by_role("button", name="Acknowledge").click()
    expect(success_message(page)).to_have_text(f"Incident #{incident.number} acknowledged.")
    incident.refresh_from_db()
    assert incident.status == Incident.Status.ACKNOWLEDGED
    expect(page.get_by_role("button", name="Acknowledge")).to_have_count(0)

    page.get_by_role("button", name="Resolve").click()
    expect(success_message(page)).to_have_text(f"Incident #{incident.number} resolved.")
    incident.refresh_from_db()
    assert incident.status == Incident.Status.RESOLVED

    expect(page.locator(".tocsin-timeline__item strong")).to_have_text(
        ["Triggered", "Acknowledged", "Resolved"]
    )
    expect(page.locator(".tocsin-timeline")).to_contain_text(f"Acknowledged by {responder}")
    shot()


def add_note(page, text):
    page.get_by_label("Note").fill(text)
    page.get_by_role("button", name="Add note").click()
    expect(success_message(page)).to_have_text("Note added.")


def test_responder_adds_note_that_appears_on_timeline(page, shot, responder, incident):
    text = "Rotated the logs on db-1; 40% free again."
    log_in(page, responder)
    page.goto(change_url(incident))
    add_note(page, text)

    expect(page.locator(".tocsin-timeline__item--note")).to_contain_text(text)
    note = TimelineEntry.objects.get(incident=incident, kind=TimelineEntry.Kind.NOTE)
    assert (note.message, note.actor) == (text, responder)
    incident.refresh_from_db()
    assert incident.title == "Disk full on db-1"
    shot()


def test_manager_adding_note_leaves_unsaved_title_edit_alone(page, manager, incident):
    # A responder cannot edit the title at all; a manager can, so only here does the
    # check show that the note form is separate from the change form.
    log_in(page, manager)
    page.goto(change_url(incident))
    page.fill("#id_title", "Edited but never saved")
    add_note(page, "Looking into it.")

    incident.refresh_from_db()
    assert incident.title == "Disk full on db-1"
    assert incident.timeline.filter(kind=TimelineEntry.Kind.NOTE, actor=manager).exists()


def test_bulk_acknowledge_action_from_incident_list(page, shot, responder, service):
    first, second, untouched = (
        lifecycle.open_incident(service=service, title=f"Host {n} down", entity_id=f"h-{n}")
        for n in (1, 2, 3)
    )
    log_in(page, responder)
    page.goto("/admin/incidents/incident/")
    for incident in (first, second):
        page.locator(f"input[name=_selected_action][value='{incident.pk}']").check()
    page.locator("select[name=action]").select_option(label="Acknowledge selected incidents")
    page.get_by_role("button", name="Go").click()

    expect(success_message(page)).to_have_text("2 incident(s) acknowledged.")
    for incident in (first, second, untouched):
        incident.refresh_from_db()
    assert [first.status, second.status, untouched.status] == [
        Incident.Status.ACKNOWLEDGED, Incident.Status.ACKNOWLEDGED, Incident.Status.TRIGGERED
    ]
    shot()


def test_manager_sees_webhook_url_with_copy_button_on_integration_page(
    context, page, shot, live_server, manager, integration
):
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    log_in(page, manager)
    page.goto(f"/admin/integrations/integration/{integration.pk}/change/")

    url = page.locator("#tocsin-webhook-url")
    expect(url).to_have_text(re.compile(rf"^https?://\S+/api/events/{re.escape(integration.key)}/$"))
    webhook_url = url.text_content()
    expect(page.locator("#tocsin-curl")).to_contain_text(webhook_url)
    shot()

    copy = page.locator("button[data-copy-target=tocsin-webhook-url]")
    expect(copy).to_have_text("Copy")
    copy.click()
    expect(copy).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == webhook_url


def test_manager_creates_bearer_token_and_sees_it_once(page, shot, manager, service):
    hook = Integration.objects.create(name="Grafana", kind="incoming_webhook", service=service)
    log_in(page, manager)
    page.goto(f"/admin/integrations/integration/{hook.pk}/change/")
    expect(page.locator("#tocsin-incoming-url")).to_contain_text("incident.create?title=")
    page.get_by_role("link", name="Create a token").click()
    page.fill("#id_name", "grafana-prod")
    page.get_by_role("button", name="Create token").click()
    plaintext = page.locator("#tocsin-new-token").text_content()
    token = IntegrationToken.objects.get(integration=hook)
    assert plaintext.startswith(token.prefix) and token.name == "grafana-prod"
    expect(page.locator("#tocsin-auth-header")).to_have_text(f"Authorization: Bearer {plaintext}")
    shot()

    page.get_by_role("link", name="Back to Grafana").click()
    expect(page.locator("#tokens-group")).to_contain_text(token.prefix)
    expect(page.locator("body")).not_to_contain_text(plaintext)


def test_responder_cannot_see_acknowledge_button_without_permission(
    context, page, shot, responder, incident
):
    log_in(page, make_user("nobody"))  # staff, but in no group
    expect(page.locator("#content")).to_contain_text("You don’t have permission")
    assert page.goto(change_url(incident)).status == 403
    assert page.goto("/admin/incidents/incident/").status == 403

    lifecycle.resolve(incident)
    context.clear_cookies()
    log_in(page, responder)
    page.goto(change_url(incident))
    expect(page.locator(".tocsin-badge--resolved")).to_be_visible()
    expect(page.get_by_role("button", name="Acknowledge")).to_have_count(0)
    expect(page.get_by_role("button", name="Resolve")).to_have_count(0)
    shot()


def test_roles_groups_survive_the_flushes_between_browser_tests(browser, live_server):
    # Last in the module, so earlier tests' flushes have run: the groups were restored.
    responder = Group.objects.get(name="Responder")
    assert responder.permissions.filter(codename="acknowledge_incident").exists()
    assert Group.objects.filter(name__in=["Manager", "Administrator"]).count() == 2
