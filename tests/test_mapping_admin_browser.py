"""The preview of mapping and rules in a real browser: a manager opens it from the
integration page, pastes an Alertmanager payload and reads the alert it would make.
Uses the Chromium set-up of test_admin_browser (screenshots in test-artifacts/screenshots/)."""

import json

from playwright.sync_api import expect

from incidents.models import Priority
from integrations.models import AlertRule
from tests.test_admin_browser import (  # noqa: F401 (fixtures)
    browser,
    context,
    log_in,
    page,
    plain_static_files,
    pytestmark,
    shot,
)
from tests.test_mapping import ALERTMANAGER, ALERTMANAGER_MAPPING


def test_manager_previews_an_alertmanager_payload_before_saving(
    page, shot, manager, integration  # noqa: F811
):
    Priority.objects.create(name="P1")
    integration.mapping = ALERTMANAGER_MAPPING
    integration.save()
    AlertRule.objects.create(
        integration=integration, name="Note disk alerts",
        conditions=[{"field": "message", "op": "contains", "value": "Disk"}],
        actions=[{"type": "add_note", "value": "Runbook DB-7"}],
    )
    log_in(page, manager)
    page.goto(f"/admin/integrations/integration/{integration.pk}/change/")
    expect(page.locator("#id_mapping")).to_contain_text('"alerts.0.annotations.summary"')
    expect(page.locator("#rules-group")).to_contain_text("Note disk alerts")
    page.get_by_role("link", name="Preview mapping and rules").click()

    page.fill("#id_payload", json.dumps(ALERTMANAGER, indent=2))
    page.get_by_role("button", name="Preview").click()

    alert = page.locator("#tocsin-preview-alert")
    expect(alert).to_contain_text("Disk 95% full on db-1")
    expect(alert.locator("tr", has_text="alert_type")).to_contain_text("critical")
    expect(alert.locator("tr", has_text="priority")).to_contain_text("P1")
    expect(alert.locator("tr", has_text="matched mapping blocks")).to_contain_text(
        "conditional[0]")
    expect(page.locator("#tocsin-preview-rules")).to_contain_text("Note disk alerts")
    expect(page.locator("#tocsin-preview-outcome")).to_have_text("opens a new incident")
    shot()

    # Try an edit without saving it: a rule that suppresses everything.
    page.fill("#id_rules", json.dumps([{"name": "Mute all", "conditions": [],
                                        "actions": [{"type": "suppress"}]}]))
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#tocsin-preview-outcome")).to_contain_text("suppressed")
    assert list(AlertRule.objects.values_list("name", flat=True)) == ["Note disk alerts"]


def test_manager_sees_why_an_edited_regex_cannot_run(page, shot, manager, integration):  # noqa: F811
    log_in(page, manager)
    page.goto(f"/admin/integrations/integration/{integration.pk}/preview/")
    page.fill("#id_payload", json.dumps({"title": "disk full"}))
    page.fill("#id_mapping", json.dumps({
        "direct": {"message": {"path": "title"}},
        "conditional": [{"if": [{"path": "title", "op": "matches", "value": "disk(?=full)"}],
                         "then": {"alert_type": {"value": "critical"}}}]}))
    page.get_by_role("button", name="Preview").click()
    problems = page.locator("#tocsin-preview-problems")
    expect(problems).to_contain_text("mapping: conditional[0].if[0].value: bad regular expression")
    expect(problems).to_contain_text("lookahead (?=…) is not supported")
    expect(page.locator("#tocsin-preview-alert")).to_have_count(0)
    shot()
