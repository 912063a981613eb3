"""Notification settings and the notification log in a real browser (headless Chromium)."""

import pytest
from playwright.sync_api import expect

from notifications.models import Notification, NotificationSettings
from tests import test_admin_browser as admin_browser  # sets DJANGO_ALLOW_ASYNC_UNSAFE

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


def test_administrator_sets_recipients_and_an_override(page, administrator):
    log_in(page, administrator)
    page.goto("/admin/notifications/notificationsettings/")
    # The list leads straight to the one record, which has no delete link.
    expect(page.locator("h1")).to_contain_text("notification settings")
    expect(page.locator(".deletelink")).to_have_count(0)
    page.fill("#id_default_recipients", "ops@example.com, lead@example.com")
    page.check("#id_escalations_override")
    page.fill("#id_escalations_recipients", "boss@example.com")
    page.uncheck("#id_send_resolved")
    page.screenshot(path=SCREENSHOTS / "notification_settings--form.png", full_page=True)
    page.click("input[name=_save]")
    expect(success_message(page)).to_be_visible()
    saved = NotificationSettings.load()
    assert saved.default_recipients == ["ops@example.com", "lead@example.com"]
    assert saved.overrides()["escalations"] == ["boss@example.com"]
    assert saved.send_resolved is False


def test_an_override_without_recipients_is_refused_on_its_field(page, administrator):
    log_in(page, administrator)
    page.goto("/admin/notifications/notificationsettings/1/change/")
    page.check("#id_platform_actions_override")
    page.click("input[name=_save]")
    error = page.locator(".field-platform_actions_recipients .errorlist")
    expect(error).to_contain_text("Give recipients")
    page.screenshot(path=SCREENSHOTS / "notification_settings--error.png", full_page=True)


def test_the_log_shows_a_failed_notification_with_its_cause(page, administrator):
    Notification.objects.create(
        type="platform_actions", event="destination.failing", dedup_key="k",
        subject="[Tocsin] Destination Ops hook is failing", body_text="b",
        recipients=["ops@example.com"], status="failed", attempts=1,
        error="Recipients refused: {'ops@example.com': (550, b'no such user')}",
    )
    log_in(page, administrator)
    page.goto("/admin/notifications/notification/")
    row = page.locator("#result_list tbody tr").first
    expect(row).to_contain_text("Destination Ops hook is failing")
    expect(row.locator(".tocsin-badge--failed")).to_be_visible()
    page.screenshot(path=SCREENSHOTS / "notification_log.png", full_page=True)
