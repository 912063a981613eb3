"""The acknowledge link's page in a real browser, at a phone's size: headless Chromium
(Playwright) against live_server, signed out. Screenshots go to
test-artifacts/screenshots/."""

import pytest
from playwright.sync_api import expect

from incidents.models import Incident, TimelineEntry
from oncall.acklinks import make_token
from tests.conftest import make_user
from tests.test_admin_browser import SCREENSHOTS, browser, plain_static_files  # noqa: F401

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def phone(browser, live_server, request):  # noqa: F811 (the imported fixture)
    context = browser.new_context(base_url=live_server.url, viewport=PHONE,
                                  device_scale_factor=2, is_mobile=True)
    page = context.new_page()
    yield page
    context.close()


def shoot(page, name):
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


def test_signed_out_phone_acknowledges_with_one_tap(phone, incident):
    user = make_user("olga", "Responder")
    link = f"/ack/{make_token(user.pk, incident.pk)}/"

    phone.goto(link)
    button = phone.get_by_role("button", name="Acknowledge")
    expect(button).to_be_visible()
    expect(phone.locator("h1")).to_have_text("Disk full on db-1")
    expect(phone.locator("body")).not_to_contain_text("{")  # no template source shows
    # A thumb-sized button across the screen, and no sideways scrolling.
    box = button.bounding_box()
    assert box["height"] >= 60 and box["width"] >= PHONE["width"] - 80
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shoot(phone, "ack_link_phone_before")
    assert Incident.objects.get(pk=incident.pk).status == Incident.Status.TRIGGERED

    button.click()
    expect(phone.locator("#ack-result")).to_contain_text("Acknowledged")
    expect(phone.get_by_role("button", name="Acknowledge")).to_have_count(0)
    shoot(phone, "ack_link_phone_acknowledged")
    assert Incident.objects.get(pk=incident.pk).status == Incident.Status.ACKNOWLEDGED
    assert TimelineEntry.objects.get(incident=incident, kind="acknowledged").actor == user

    response = phone.goto(link)
    assert response.status == 409  # a used link: the page says so, with no button
    expect(phone.locator("#ack-result")).to_contain_text("Already acknowledged")
    expect(phone.get_by_role("button", name="Acknowledge")).to_have_count(0)
    shoot(phone, "ack_link_phone_already")


def test_forged_link_shows_a_clear_page_on_a_phone(phone):
    response = phone.goto("/ack/not-a-real-token/")
    assert response.status == 400
    expect(phone.locator("#ack-result")).to_contain_text("This link is not valid")
    shoot(phone, "ack_link_phone_forged")


def test_link_of_a_user_who_lost_their_role_shows_a_clear_page_on_a_phone(phone, incident):
    user = make_user("olga", "Responder")
    user.groups.clear()
    response = phone.goto(f"/ack/{make_token(user.pk, incident.pk)}/")
    assert response.status == 403
    expect(phone.locator("#ack-result")).to_contain_text(
        "You may no longer acknowledge incidents")
    expect(phone.locator("#ack-result")).to_contain_text("Ask an administrator")
    expect(phone.get_by_role("button", name="Acknowledge")).to_have_count(0)
    shoot(phone, "ack_link_phone_no_right")
    assert Incident.objects.get(pk=incident.pk).status == Incident.Status.TRIGGERED
