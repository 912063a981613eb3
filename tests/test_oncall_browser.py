"""The on-call admin in a real browser, as a Responder and as a Manager: the profile page,
a schedule's timeline, overrides made from it, the index panel. Screenshots at 1366×768
go to test-artifacts/screenshots/."""

import re
from datetime import date, time, timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone
from playwright.sync_api import expect

from incidents.models import EscalationPolicy
from oncall.models import (
    ContactMethod,
    NotificationRule,
    Override,
    PersonalNotification,
    Rotation,
    Schedule,
)
from tests.sinks import TWILIO_FROM as FROM
from tests.sinks import TWILIO_SID as SID
from tests.test_admin_browser import (  # noqa: F401 (fixtures)
    SCREENSHOTS,
    browser,
    log_in,
    plain_static_files,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]



@pytest.fixture
def context(browser, live_server):  # noqa: F811
    context = browser.new_context(base_url=live_server.url,
                                  viewport={"width": 1366, "height": 768})
    yield context
    context.close()


@pytest.fixture
def page(context):
    return context.new_page()


@pytest.fixture
def shot(page, request):
    def take(step=""):
        name = request.node.name + (f"-{step}" if step else "")
        page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)
    return take



@pytest.fixture
def schedule(team, responder, manager):
    schedule = Schedule.objects.create(name="Platform primary", team=team,
                                       time_zone="Europe/Berlin")
    Rotation.objects.create(schedule=schedule, name="Weekly", shift_kind="daily",
                            handoff_date=date(2026, 1, 5), handoff_time=time(9),
                            participants=[manager.pk, responder.pk])
    return schedule


def test_responder_adds_sms_and_a_rule_on_their_profile_and_sends_a_test(
        page, shot, responder, twilio):
    log_in(page, responder)
    page.get_by_role("link", name="My profile").click()
    expect(page.locator("h1")).to_have_text("My profile: rita")
    expect(page.locator("#tocsin-notification-rules")).to_contain_text("No rules")

    page.get_by_role("link", name="Add a contact method").click()
    page.select_option("#id_kind", "sms")
    page.fill("#id_label", "Work phone")
    page.fill("#id_address", "0151 1234")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".errorlist")).to_contain_text("country code")
    page.fill("#id_address", "+49 151 1234 5678")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("h1")).to_have_text("My profile: rita")
    expect(page.locator("#tocsin-contact-methods")).to_contain_text("+4915112345678")

    page.get_by_role("link", name="Add a rule").click()
    page.select_option("#id_contact_method", label="Work phone: +4915112345678")
    page.fill("#id_delay_minutes", "5")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("#tocsin-notification-rules")).to_contain_text("after 5 min")

    page.get_by_role("button", name="Send test to +4915112345678").click()
    expect(page.locator(".messagelist .success")).to_contain_text(
        "Test sent to SMS +4915112345678 (HTTP 201).")
    [request] = twilio.requests
    assert request.path == f"/2010-04-01/Accounts/{SID}/Messages.json"
    assert request.form["To"] == "+4915112345678" and request.form["From"] == FROM
    method = ContactMethod.objects.get(user=responder)
    assert NotificationRule.objects.get().contact_method == method
    assert PersonalNotification.objects.get().status == "sent"
    shot()


def test_responder_reads_a_schedule_and_swaps_in_from_its_timeline(
        page, shot, responder, manager, schedule):
    log_in(page, responder)
    expect(page.locator("#tocsin-oncall-now")).to_contain_text("Platform primary")
    page.goto(f"/admin/oncall/schedule/{schedule.pk}/change/")
    today = page.locator(".tocsin-tl__row--today")
    expect(today).to_have_count(1)
    expect(today).to_contain_text("Today")
    expect(page.locator(".tocsin-tl__row")).to_have_count(15)  # the hours and 14 days
    # Read-only for a Responder: no Save button.
    expect(page.get_by_role("button", name="Save", exact=True)).to_have_count(0)
    shot("timeline")

    # Take over one of max's shifts in the second week.
    row = page.locator(".tocsin-tl__row").nth(9)
    row.locator(".tocsin-tl__bar[data-user=max]").first.click()
    expect(page.locator("h1")).to_have_text("Add override")
    # The user is fixed to the Responder; whom they replace comes from the shift.
    expect(page.locator("#id_user")).to_be_disabled()
    expect(page.locator("#id_replaces option:checked")).to_have_text("max")
    shot("add-override")
    page.get_by_role("button", name="Save", exact=True).click()

    expect(page).to_have_url(re.compile(rf"/admin/oncall/schedule/{schedule.pk}/change/$"))
    override = Override.objects.get()
    assert (override.user, override.replaces, override.created_by) == (
        responder, manager, responder)
    assert override.end - override.start == timedelta(days=1)
    expect(page.locator(".tocsin-tl__bar--override")).not_to_have_count(0)
    expect(page.locator(".tocsin-tl__bar--override").first).to_contain_text("rita")
    shot("after-swap")


def test_manager_builds_a_schedule_with_two_rotations_and_overrides_for_someone_else(
        page, shot, manager, responder, team):
    log_in(page, manager)
    page.goto("/admin/oncall/schedule/add/")
    page.fill("#id_name", "Payments")
    page.select_option("#id_team", label="Platform")
    page.select_option("#id_time_zone", "America/New_York")
    page.select_option("#id_fallback_user", label="max")
    add_rotation = page.locator("#rotations-group .add-row a")
    today = timezone.now().date()
    for index, (name, layer, participants, restrictions) in enumerate([
        ("Around the clock", "1", "rita, max", ""),
        ("Business hours", "2", "max", "Mon-Fri 09:00-17:00"),
    ]):
        add_rotation.click()
        prefix = f"#id_rotations-{index}-"
        page.fill(prefix + "name", name)
        page.fill(prefix + "layer", layer)
        page.select_option(prefix + "shift_kind", "daily")
        page.fill(prefix + "shift_length", "1")
        page.fill(prefix + "handoff_date", (today - timedelta(days=7)).isoformat())
        page.fill(prefix + "handoff_time", "09:00")
        page.fill(prefix + "participants", participants)
        page.fill(prefix + "restrictions", restrictions)
    page.get_by_role("button", name="Save and continue editing").click()
    expect(page.locator(".messagelist .success")).to_be_visible()
    schedule = Schedule.objects.get(name="Payments")
    business = schedule.rotations.get(name="Business hours")
    assert business.restrictions == [
        {"weekdays": [0, 1, 2, 3, 4], "start": "09:00", "end": "17:00"}]
    # Shown back in the words it was typed in (layer 2 is listed first).
    expect(page.locator("#id_rotations-0-restrictions")).to_have_value("Mon-Fri 09:00-17:00")
    expect(page.locator("#id_rotations-1-participants")).to_have_value("rita, max")
    expect(page.locator(".tocsin-tl__row--today")).to_have_count(1)
    expect(page.locator("#tocsin-timeline")).to_contain_text("America/New_York")
    shot("timeline")

    page.locator(".tocsin-tl__row").nth(3).locator(".tocsin-tl__bar[data-user=rita]").first.click()
    expect(page.locator("h1")).to_have_text("Add override")
    page.select_option("#id_user", label="max")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page).to_have_url(re.compile(rf"/admin/oncall/schedule/{schedule.pk}/change/$"))
    override = Override.objects.get()
    assert (override.user, override.replaces, override.created_by) == (manager, responder, manager)

    page.goto("/admin/")
    panel = page.locator("#tocsin-oncall-now")
    expect(panel).to_contain_text("Payments")
    shot("index")


@pytest.mark.parametrize("role", ["responder", "manager"])
def test_someone_is_paged_from_the_incident_page_and_acknowledges_with_the_link(
        page, shot, request, role, incident, twilio, deliver_inline):
    paging = request.getfixturevalue(role)
    pia = User.objects.create_user("pia", email="pia@example.com", is_staff=True)
    pia.groups.add(Group.objects.get(name="Responder"))
    sms = ContactMethod.objects.create(user=pia, kind="sms", address="+4915112345678",
                                       label="Work phone")
    NotificationRule.objects.create(user=pia, contact_method=sms, delay_minutes=0)
    log_in(page, paging)
    page.goto(f"/admin/incidents/incident/{incident.pk}/change/")
    page.select_option("#tocsin-page-user", label="pia")
    page.get_by_role("button", name="Page", exact=True).click()
    expect(page.locator(".messagelist")).to_contain_text("Paged pia")
    expect(page.locator(".tocsin-pages")).to_contain_text("pia paged")
    expect(page.locator(".tocsin-pages")).to_contain_text("SMS (Work phone)")
    shot()
    # The fields of the incident's own form were not saved by the Page button.
    incident.refresh_from_db()
    assert incident.title == "Disk full on db-1"
    [sent] = twilio.requests
    body = sent.form["Body"]
    link = re.search(r"https?://\S+/ack/\S+/", body).group(0)
    path = link.split("://", 1)[1].split("/", 1)[1]
    # Signed out, as on the phone the SMS arrived on.
    page.context.clear_cookies()
    page.goto("/" + path)
    page.get_by_role("button", name="Acknowledge").click()
    expect(page.locator("body")).to_contain_text("acknowledged")
    incident.refresh_from_db()
    assert incident.status == "acknowledged"
    assert incident.timeline.filter(kind="acknowledged", actor=pia).exists()


def test_manager_defines_an_escalation_policy_and_a_responder_reads_it(
        page, shot, manager, responder, schedule, team):
    log_in(page, manager)
    page.goto("/admin/incidents/escalationpolicy/add/")
    page.fill("#id_name", "Checkout")
    page.select_option("#id_team", label="Platform")
    page.fill("#id_repeat", "2")
    page.get_by_text("Add another step").click()
    page.fill("#id_steps-0-delay_minutes", "10")
    page.select_option("#id_steps-0-schedules", label="Platform primary")
    page.select_option("#id_steps-0-users", label=responder.username)
    shot("form")
    page.click("input[name=_continue]")
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")
    shot("saved")
    policy = EscalationPolicy.objects.get()
    [step] = policy.steps.all()
    assert (policy.repeat, step.delay_minutes) == (2, 10)
    assert {(t.user_id, t.schedule_id) for t in step.targets.all()} == {
        (responder.pk, None), (None, schedule.pk)}
    page.context.clear_cookies()
    log_in(page, responder)
    page.goto(f"/admin/incidents/escalationpolicy/{policy.pk}/change/")
    expect(page.locator("#content")).to_contain_text("Platform primary")
    shot("responder")
