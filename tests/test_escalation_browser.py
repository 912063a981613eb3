"""Escalations in a real browser: a Responder and a Manager read where an incident's
escalation stands and press "Escalate now"; the incident page at a phone's width.
Screenshots go to test-artifacts/screenshots/ (1366 px wide, and 390 px for the phone).

The queue is the one seam: what the engine hands to django-q2 after a commit is recorded,
not run, and the test runs step 1 itself, as the worker would."""

import re

import pytest
from playwright.sync_api import expect

from incidents import lifecycle
from incidents.models import EscalationPolicy
from oncall import escalation
from oncall.models import Escalation, EscalationStep, EscalationTarget, Page
from tests.conftest import make_user
from tests.test_admin_browser import (  # noqa: F401 (fixtures)
    SCREENSHOTS,
    browser,
    change_url,
    log_in,
    plain_static_files,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

DESKTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def queued(monkeypatch):
    """What the engine hands to django-q2 (step tasks, page messages), recorded."""
    handed = []
    monkeypatch.setattr("tocsin.taskqueue.async_task",
                        lambda func, *args, **kwargs: handed.append((func, *args)))
    monkeypatch.setattr("tocsin.taskqueue.schedule",
                        lambda func, *args, **kwargs: handed.append((func, *args)))
    return handed


def new_page(browser, live_server, viewport, **options):  # noqa: F811
    context = browser.new_context(base_url=live_server.url, viewport=viewport, **options)
    return context, context.new_page()


@pytest.fixture
def page(browser, live_server):  # noqa: F811
    context, page = new_page(browser, live_server, DESKTOP)
    yield page
    context.close()


@pytest.fixture
def phone(browser, live_server):  # noqa: F811
    context, page = new_page(browser, live_server, PHONE, device_scale_factor=2,
                             is_mobile=True)
    yield page
    context.close()


def shoot(page, name):
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


@pytest.fixture
def escalating(service, team, queued):
    """A triggered incident whose policy pages pia, then (5 minutes later) olga; step 1
    has run, as the worker runs it after the incident opens."""
    policy = EscalationPolicy.objects.create(name="Primary on-call", team=team)
    for position, name in enumerate(["pia", "olga"]):
        step = EscalationStep.objects.create(policy=policy, position=position,
                                             delay_minutes=5 * (position + 1))
        EscalationTarget.objects.create(step=step, user=make_user(name, staff=False))
    service.escalation_policy = policy
    service.save()
    incident = lifecycle.open_incident(service=service, title="Disk full on db-1",
                                       entity_id="db-1")
    assert (escalation.RUN_TASK, incident.pk) in queued
    assert escalation.run_escalation(incident.pk) == "ran step 1 of 2 of Primary on-call, paged 1"
    return incident


def field(page, term):
    """The <dd> next to a <dt> of the Escalation section."""
    return page.locator(f".tocsin-escalation dt:text-is('{term}') + dd")


def read_step_one_then_escalate(page, incident, username):
    page.goto(change_url(incident))
    section = page.locator("fieldset", has=page.locator("h2", has_text="Escalation"))
    expect(section).to_be_visible()
    expect(field(page, "Policy")).to_have_text("Primary on-call")
    expect(field(page, "Status")).to_contain_text("Running")
    expect(field(page, "Step")).to_contain_text("1 of 2")
    expect(field(page, "Paged")).to_have_text("pia")
    expect(field(page, "Next")).to_contain_text(re.compile(
        r"step 2 of 2, due in 5 minutes \(at \d\d:\d\d UTC\)"))
    # The badge's colour proves the stylesheet's escalation rules were applied.
    expect(section.locator(".tocsin-badge--escalation-active")).to_have_css(
        "background-color", "rgb(21, 101, 192)")
    expect(section).to_contain_text("Runs step 2 of 2 now.")

    page.get_by_role("button", name="Escalate now").click()
    expect(page.locator(".messagelist .success")).to_have_text(
        "Ran step 2 of 2 of Primary on-call, paged 1.")
    expect(field(page, "Step")).to_contain_text("2 of 2")
    expect(field(page, "Paged")).to_have_text("olga")
    expect(field(page, "Next")).to_contain_text(
        "no more steps: exhausted in 10 minutes (at ")
    timeline = page.locator(".tocsin-timeline")
    expect(timeline).to_contain_text(
        f"Escalated to step 2 of 2 of Primary on-call by {username}: paging olga")
    expect(timeline.locator(".tocsin-timeline__item--page", has_text="Paged olga")) \
        .to_have_count(1)
    expect(page.locator(".field-assignee_list .readonly")).to_have_text("olga")


def test_responder_reads_step_one_and_escalates_to_step_two(page, responder, escalating):
    log_in(page, responder)
    read_step_one_then_escalate(page, escalating, "rita")
    shoot(page, "escalation-responder-after-escalate")
    assert [page.user.username for page in Page.objects.order_by("id")] == ["pia", "olga"]
    row = Escalation.objects.get(pk=escalating.pk)
    assert (row.next_step, row.steps_run, row.status) == (2, 2, "active")


def test_manager_sees_the_same_and_escalates(page, manager, escalating):
    log_in(page, manager)
    read_step_one_then_escalate(page, escalating, "max")
    shoot(page, "escalation-manager-after-escalate")
    # The Manager's page is an edit form: the button posted nothing of it.
    escalating.refresh_from_db()
    assert escalating.title == "Disk full on db-1"


def test_incident_page_on_a_phone_keeps_the_section_and_button_in_the_screen(
        phone, responder, escalating):
    log_in(phone, responder)
    phone.goto(change_url(escalating))
    button = phone.get_by_role("button", name="Escalate now")
    button.scroll_into_view_if_needed()
    expect(button).to_be_visible()
    for element in [button, phone.locator(".tocsin-escalation")]:
        box = element.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box
    shoot(phone, "escalation-incident-phone")
    # The whole page is too long to read at a phone's size: the section on its own too.
    phone.locator("fieldset", has=phone.locator("h2", has_text="Escalation")).screenshot(
        path=SCREENSHOTS / "escalation-incident-phone-section.png")


def test_incident_list_shows_who_is_paged(page, responder, escalating):
    log_in(page, responder)
    page.goto("/admin/incidents/incident/")
    row = page.locator("#result_list tbody tr", has_text="Disk full on db-1")
    expect(row.locator(".field-assignee_list")).to_have_text("pia")
    # The columns fit beside the sidebar and the filters: nothing scrolls out of sight.
    assert page.evaluate("() => { const list = document.querySelector('.results');"
                         " return list.scrollWidth <= list.clientWidth; }")
    shoot(page, "escalation-incident-list")


def test_administrator_lists_the_running_escalations(page, administrator, escalating):
    log_in(page, administrator)
    page.goto("/admin/oncall/escalation/?status__exact=active")
    row = page.locator("#result_list tbody tr", has_text="Disk full on db-1")
    expect(row.locator(".field-status_label")).to_have_text("Running")
    expect(row.locator(".field-next_due")).to_contain_text("due in 5 minutes")
    shoot(page, "escalation-list")
    row.get_by_role("link", name="Primary on-call").click()
    expect(page.locator(".field-plan_text")).to_contain_text("Primary on-call")
    shoot(page, "escalation-list-row")
    page.go_back()
    page.get_by_role("link", name="#1 Disk full on db-1").click()
    expect(page.locator("#content h2").first).to_have_text("#1 Disk full on db-1")
