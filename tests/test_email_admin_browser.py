"""An email integration in a real browser: the manager copies the address, then replaces it.
Uses the Chromium set-up of test_admin_browser (screenshots in test-artifacts/screenshots/)."""

from playwright.sync_api import expect

from integrations.models import Integration
from tests.test_admin_browser import (  # noqa: F401 (fixtures)
    browser,
    context,
    log_in,
    page,
    plain_static_files,
    pytestmark,
    shot,
    success_message,
)


def test_manager_copies_the_email_address_then_regenerates_it(
    context, page, shot, live_server, manager, service  # noqa: F811
):
    mailbox = Integration.objects.create(name="Nagios mail", kind="email", service=service)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    log_in(page, manager)
    page.goto(f"/admin/integrations/integration/{mailbox.pk}/change/")

    address = page.locator("#tocsin-email-address")
    expect(address).to_have_text(mailbox.email_address)
    expect(page.locator("#tocsin-sample")).to_contain_text("source_id: db-2-disk")
    shot()
    copy = page.locator("button[data-copy-target=tocsin-email-address]")
    copy.click()
    expect(copy).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == mailbox.email_address

    page.get_by_role("link", name="Regenerate address").click()
    page.get_by_role("button", name="Regenerate address").click()
    mailbox.refresh_from_db()
    expect(success_message(page)).to_contain_text(f"New address {mailbox.email_address}")
    expect(address).to_have_text(mailbox.email_address)
