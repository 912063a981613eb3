"""Alert mail through `manage.py ingest_email` (a local MTA's pipe), with real RFC 822
messages, and the parsing rules in docs/email-integration.md."""

import io
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import OperationalError

from incidents.models import Incident
from integrations.models import Alert, AlertType, InboundEvent, Integration
from tests.ingest_helpers import run_tasks  # noqa: F401 (fixture)
from tests.processes import ROOT, base_env


@pytest.fixture
def mailbox(service):
    return Integration.objects.create(
        name="Nagios mail", kind="email", service=service,
        create_incidents_for=["critical", "error"],
    )


@pytest.fixture
def ingest(run_tasks, django_capture_on_commit_callbacks):  # noqa: F811
    """Pipe a message into `ingest_email`; returns the inbound event it stored."""

    def _ingest(raw, *args):
        if isinstance(raw, EmailMessage):
            raw = raw.as_bytes()
        data = raw if isinstance(raw, bytes) else raw.encode()
        with django_capture_on_commit_callbacks(execute=True):
            call_command("ingest_email", *args, stdin=io.BytesIO(data),
                         stdout=io.StringIO(), stderr=io.StringIO())
        return InboundEvent.objects.order_by("-pk").first()

    return _ingest


def plain_mail(to: str, body: str, subject: str = "Nagios alert") -> str:
    return (
        f"From: Nagios <nagios@monitoring.example.com>\r\nTo: {to}\r\n"
        f"Subject: {subject}\r\nMessage-ID: <{uuid.uuid4().hex}@monitoring.example.com>\r\n"
        f"Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n\r\n{body}"
    )


FULL_BODY = """severity: 1
description: Disk almost full on db-2
source: nagios
source_id: db-2-disk
event_time: 1767225600
resource_name: db-2
type: disk
metric_name: disk_used_percent
other_info: /var at 97%
runbook: https://wiki.example.com/disk
"""


def alert_of(event: InboundEvent) -> Alert:
    event.refresh_from_db()
    assert event.status == InboundEvent.Status.COMPLETED, event.error
    return event.alert


def test_a_plain_message_with_every_key_opens_an_incident(ingest, mailbox):
    alert = alert_of(ingest(plain_mail(mailbox.email_address, FULL_BODY)))

    assert alert.integration == mailbox
    assert alert.alert_type == AlertType.CRITICAL
    assert alert.message == "Disk almost full on db-2"
    assert alert.summary == "/var at 97%"
    assert alert.entity_id == "db-2-disk"
    assert alert.payload["resource_name"] == "db-2"
    assert alert.payload["metric_name"] == "disk_used_percent"
    assert alert.payload["runbook"] == "https://wiki.example.com/disk"  # unknown keys kept
    assert alert.payload["email"]["subject"] == "Nagios alert"
    assert alert.extra["email_severity"] == 1
    assert alert.extra["event_time"] == "2026-01-01T00:00:00+00:00"
    assert alert.warnings == []
    incident = alert.incident
    assert alert.opened_incident
    assert incident.title == "Disk almost full on db-2"
    assert incident.entity_id == "db-2-disk"
    assert incident.severity == "critical"
    assert incident.urgency == Incident.Urgency.HIGH


def test_a_later_mail_with_severity_0_for_the_same_source_id_resolves_the_incident(
    ingest, mailbox
):
    opened = alert_of(ingest(plain_mail(mailbox.email_address, FULL_BODY)))
    cleared = alert_of(ingest(plain_mail(
        mailbox.email_address, "severity: 0\ndescription: Disk OK\nsource_id: db-2-disk\n"
    )))

    assert cleared.alert_type == AlertType.RESOLVED
    assert cleared.incident == opened.incident
    opened.incident.refresh_from_db()
    assert opened.incident.status == Incident.Status.RESOLVED
    assert opened.incident.alerts.count() == 2


@pytest.mark.parametrize(("severity", "alert_type", "incident_severity"), [
    ("1", AlertType.CRITICAL, "critical"),
    ("2", AlertType.ERROR, "major"),
    ("3", AlertType.WARNING, None),
    ("4", AlertType.WARNING, None),
    ("5", AlertType.INFO, None),
    ("0", AlertType.RESOLVED, None),
])
def test_each_severity_maps_to_an_alert_type(
    ingest, mailbox, severity, alert_type, incident_severity
):
    alert = alert_of(ingest(plain_mail(
        mailbox.email_address, f"severity: {severity}\ndescription: x\nsource_id: s{severity}"
    )))
    assert alert.alert_type == alert_type
    # mailbox opens incidents for critical and error only (create_incidents_for).
    assert (alert.incident.severity if alert.incident else None) == incident_severity


def test_warnings_open_incidents_with_low_urgency_when_the_integration_asks(ingest, mailbox):
    mailbox.create_incidents_for = ["critical", "error", "warning"]
    mailbox.save()
    alert = alert_of(ingest(plain_mail(mailbox.email_address, "severity: 3\ndescription: x")))
    assert alert.incident.severity == "minor"
    assert alert.incident.urgency == Incident.Urgency.LOW


@pytest.mark.parametrize("severity", ["7", "-1", "high", "2.5", ""])
def test_a_severity_outside_0_to_5_becomes_4_with_a_warning(ingest, mailbox, severity):
    alert = alert_of(ingest(plain_mail(
        mailbox.email_address, f"severity: {severity}\ndescription: x"
    )))
    assert alert.alert_type == AlertType.WARNING
    assert alert.extra["email_severity"] == 4
    assert any("severity" in warning.lower() for warning in alert.warnings)


def test_a_missing_severity_becomes_4(ingest, mailbox):
    alert = alert_of(ingest(plain_mail(mailbox.email_address, "description: x")))
    assert alert.extra["email_severity"] == 4
    assert alert.warnings[0] == "No severity given; using 4."


def test_event_time_in_milliseconds_is_recognised(ingest, mailbox):
    alert = alert_of(ingest(plain_mail(
        mailbox.email_address, "severity: 5\nevent_time: 1767225600123"
    )))
    assert alert.extra["event_time"] == "2026-01-01T00:00:00.123000+00:00"
    assert alert.warnings == []


@pytest.mark.parametrize("event_time", [None, "yesterday", "-5", "99999999999", "1e400"])
def test_a_missing_or_bad_event_time_falls_back_to_received_time_with_a_warning(
    ingest, mailbox, event_time
):
    line = f"event_time: {event_time}\n" if event_time is not None else ""
    event = ingest(plain_mail(mailbox.email_address, f"severity: 5\n{line}description: x"))
    alert = alert_of(event)
    assert datetime.fromisoformat(alert.extra["event_time"]) == event.received_at
    assert len(alert.warnings) == 1
    assert "event_time" in alert.warnings[0]
    assert "received" in alert.warnings[0]


def test_keys_are_case_insensitive_and_whitespace_is_trimmed(ingest, mailbox):
    body = "  SEVERITY :  2  \n\tDescription:   CPU hot on web-1   \nSource ID: web-1-cpu\n"
    alert = alert_of(ingest(plain_mail(mailbox.email_address, body)))
    assert alert.alert_type == AlertType.ERROR
    assert alert.message == "CPU hot on web-1"
    assert alert.entity_id == "web-1-cpu"


def test_source_id_may_be_written_with_a_hyphen(ingest, mailbox):
    alert = alert_of(ingest(plain_mail(mailbox.email_address, "Source-Id: q-7\nseverity: 5")))
    assert alert.entity_id == "q-7"


def test_values_may_contain_colons_and_quoted_lines_and_signatures_are_ignored(
    ingest, mailbox
):
    body = (
        "severity: 1\ndescription: Backup failed: exit 2 at 03:00\n"
        "> severity: 5\n-- \nsource_id: from-the-signature\n"
    )
    alert = alert_of(ingest(plain_mail(mailbox.email_address, body)))
    assert alert.message == "Backup failed: exit 2 at 03:00"
    assert alert.alert_type == AlertType.CRITICAL
    assert alert.entity_id != "from-the-signature"


def test_without_description_the_subject_is_the_title(ingest, mailbox):
    alert = alert_of(ingest(plain_mail(
        mailbox.email_address, "severity: 5\n", subject="=?utf-8?q?Caf=C3=A9_down?="
    )))
    assert alert.message == "Café down"


def test_without_description_or_subject_the_title_says_it_came_by_email(ingest, mailbox):
    raw = f"From: a@example.com\r\nTo: {mailbox.email_address}\r\n\r\nseverity: 5\r\n"
    alert = alert_of(ingest(raw))
    assert alert.message == "Alert by email"
    # Without other_info the summary is the whole text.
    assert alert.summary == "severity: 5"


def test_without_source_id_each_mail_gets_its_own_entity(ingest, mailbox):
    first = alert_of(ingest(plain_mail(mailbox.email_address, "severity: 1\ndescription: a")))
    second = alert_of(ingest(plain_mail(mailbox.email_address, "severity: 1\ndescription: a")))
    assert first.entity_id and second.entity_id
    assert first.incident != second.incident


def test_multipart_alternative_uses_the_plain_text_part(ingest, mailbox):
    message = EmailMessage()
    message["From"] = "zabbix@example.com"
    message["To"] = mailbox.email_address
    message["Subject"] = "Problem"
    message.set_content("severity: 2\ndescription: From the text part\nsource_id: z-1\n")
    message.add_alternative(
        "<p>severity: 5<br>description: From the HTML part</p>", subtype="html"
    )
    alert = alert_of(ingest(message))
    assert alert.message == "From the text part"
    assert alert.alert_type == AlertType.ERROR


def test_html_only_mail_is_converted_to_text_first(ingest, mailbox):
    message = EmailMessage()
    message["From"] = "monitor@example.com"
    message["To"] = mailbox.email_address
    message["Subject"] = "HTML alert"
    message.set_content(
        "<html><head><style>p {color: red}</style></head><body>"
        "<p>severity: 1</p><div>description: Disk &amp; CPU &lt;high&gt;</div>"
        "other_info: line one<br>source: prtg"
        "<table><tr><td>source_id:</td><td>srv-9</td></tr></table></body></html>",
        subtype="html",
    )
    alert = alert_of(ingest(message))
    assert alert.message == "Disk & CPU <high>"
    assert alert.alert_type == AlertType.CRITICAL
    assert alert.summary == "line one"
    assert alert.payload["source"] == "prtg"
    assert alert.entity_id == "srv-9"
    assert "color" not in str(alert.payload)


def test_quoted_printable_soft_line_breaks_and_escapes_are_decoded(ingest, mailbox):
    raw = (
        "From: nagios@example.com\r\n"
        f"To: {mailbox.email_address}\r\n"
        "Subject: QP\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n"
        "\r\n"
        "severity: 1\r\n"
        "description: Query time above threshold on the reporting data=\r\n"
        "base: p95=3D4.2s, caf=C3=A9\r\n"
        "source_id: report=\r\n"
        "s-db\r\n"
    )
    alert = alert_of(ingest(raw))
    assert alert.message == (
        "Query time above threshold on the reporting database: p95=4.2s, café"
    )
    assert alert.entity_id == "reports-db"


def test_base64_parts_and_non_utf8_charsets_are_decoded(ingest, mailbox):
    message = EmailMessage()
    message["To"] = mailbox.email_address
    message.set_content("severity: 2\ndescription: Température élevée\n",
                        charset="iso-8859-1", cte="base64")
    assert alert_of(ingest(message)).message == "Température élevée"


def test_the_raw_message_is_kept_on_the_inbound_event(ingest, mailbox):
    raw = plain_mail(mailbox.email_address, FULL_BODY)
    event = ingest(raw, "--recipient", mailbox.email_address, "--sender", "nagios@example.com")
    event.refresh_from_db()
    assert bytes(event.body) == raw.encode()
    assert event.source == "email"
    assert event.headers["Recipient"] == mailbox.email_address
    assert event.headers["Envelope-Sender"] == "nagios@example.com"
    assert event.headers["Received-Via"] == "ingest_email"


def test_the_recipient_option_wins_over_the_headers(ingest, mailbox):
    event = ingest(plain_mail("someone@example.com", "severity: 5"),
                   "--recipient", mailbox.email_address)
    assert alert_of(event).integration == mailbox


@pytest.mark.parametrize("header", ["Delivered-To", "X-Original-To", "Cc"])
def test_without_a_recipient_option_the_headers_name_the_integration(
    ingest, mailbox, header
):
    raw = (
        f"To: team-list@example.com\r\n{header}: {mailbox.email_address}\r\n"
        "Subject: s\r\n\r\nseverity: 5\r\n"
    )
    assert alert_of(ingest(raw)).integration == mailbox


def test_addresses_match_whatever_their_case_and_plus_tag(ingest, mailbox):
    local, domain = mailbox.email_address.split("@")
    shouting = f"{local.upper()}+nightly@{domain.upper()}"
    assert alert_of(ingest(plain_mail(shouting, "severity: 5"))).integration == mailbox


def test_mail_to_an_unknown_address_is_recorded_as_rejected(ingest, mailbox):
    out, err = io.StringIO(), io.StringIO()
    address = "alert-0000@alerts.localhost"
    call_command("ingest_email", stdin=io.BytesIO(plain_mail(address, FULL_BODY).encode()),
                 stdout=out, stderr=err)
    event = InboundEvent.objects.get()
    assert event.status == InboundEvent.Status.REJECTED
    assert event.integration is None
    assert address in event.error
    assert b"Disk almost full" in bytes(event.body)
    assert "Rejected" in err.getvalue()
    assert not Alert.objects.exists()


def test_mail_to_another_domain_is_rejected(ingest, mailbox):
    local = mailbox.email_address.split("@")[0]
    event = ingest(plain_mail(f"{local}@elsewhere.example.com", "severity: 1"))
    assert event.status == InboundEvent.Status.REJECTED
    assert "elsewhere.example.com" in event.error


def test_mail_to_a_disabled_integration_is_rejected(ingest, mailbox):
    mailbox.status = Integration.Status.DISABLED
    mailbox.save()
    event = ingest(plain_mail(mailbox.email_address, FULL_BODY))
    assert event.status == InboundEvent.Status.REJECTED
    assert event.integration == mailbox
    assert "disabled" in event.error
    assert not Alert.objects.exists()


def test_after_regenerating_mail_to_the_old_address_is_rejected(ingest, mailbox):
    old = mailbox.email_address
    mailbox.regenerate_email_address()
    assert mailbox.email_address != old

    assert ingest(plain_mail(old, "severity: 1")).status == InboundEvent.Status.REJECTED
    assert alert_of(ingest(plain_mail(mailbox.email_address, "severity: 1"))).integration \
        == mailbox


def test_a_message_over_the_size_limit_is_rejected_with_its_start_kept(
    ingest, mailbox, settings
):
    settings.TOCSIN_MAX_BODY_BYTES = 2000
    event = ingest(plain_mail(mailbox.email_address, "severity: 1\n" + "x" * 5000))
    assert event.status == InboundEvent.Status.REJECTED
    assert "over the limit of 2000 bytes" in event.error
    assert len(bytes(event.body)) == 2000


def test_empty_input_exits_with_ex_dataerr(db):
    with pytest.raises(CommandError, match="empty") as failure:
        call_command("ingest_email", stdin=io.BytesIO(b"\n"))
    assert failure.value.returncode == 65
    assert not InboundEvent.objects.exists()


def test_input_without_headers_exits_with_ex_dataerr(db):
    with pytest.raises(CommandError, match="no header fields") as failure:
        call_command("ingest_email", stdin=io.BytesIO(b"\nseverity: 1\n"))
    assert failure.value.returncode == 65


def test_a_database_that_cannot_store_the_mail_exits_with_ex_tempfail(
    mailbox, monkeypatch
):
    def locked(addresses):
        raise OperationalError("database is locked")

    monkeypatch.setattr("integrations.inbound_mail.find_integration", locked)
    with pytest.raises(CommandError, match="database is locked") as failure:
        call_command("ingest_email",
                     stdin=io.BytesIO(plain_mail(mailbox.email_address, "x").encode()))
    assert failure.value.returncode == 75


def run_command(args, data: bytes, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], input=data, capture_output=True, cwd=ROOT,
        env=env, timeout=120,
    )


def test_as_a_real_pipe_the_exit_codes_tell_the_mta_what_to_do(tmp_path):
    database = tmp_path / "pipe.sqlite3"
    env = base_env(DATABASE_URL=f"sqlite:///{database}")
    assert run_command(["migrate", "-v0"], b"", env).returncode == 0
    mail = plain_mail("alert-unknown@alerts.localhost", FULL_BODY).encode()

    stored = run_command(["ingest_email"], mail, env)
    assert stored.returncode == 0, stored.stderr
    assert b"Rejected, recorded as inbound event" in stored.stderr

    empty = run_command(["ingest_email"], b"", env)
    assert empty.returncode == 65
    assert b"empty" in empty.stderr

    # A To: header the address parser chokes on: bounced with one line, never a traceback.
    garbled = run_command(["ingest_email"], b"To: Group: ;;;\r\n\r\nseverity: 1\n", env)
    assert garbled.returncode == 65, garbled.stderr
    assert b"Traceback" not in garbled.stderr
    assert garbled.stderr.strip().count(b"\n") == 0
    assert b"recorded as rejected inbound event" in garbled.stderr

    # No database server listens there: the MTA must keep the mail and try again.
    started = time.monotonic()
    down = run_command(
        ["ingest_email"], mail,
        {**env, "DATABASE_URL": "postgres://nobody@127.0.0.1:9/none?connect_timeout=2"},
    )
    assert down.returncode == 75, down.stderr
    assert b"try again later" in down.stderr
    assert time.monotonic() - started < 60


def test_received_time_is_used_within_a_day_of_arrival(ingest, mailbox):
    soon = int((datetime.now(UTC) + timedelta(hours=2)).timestamp())
    alert = alert_of(ingest(plain_mail(mailbox.email_address, f"event_time: {soon}")))
    assert alert.extra["event_time"] == datetime.fromtimestamp(soon, tz=UTC).isoformat()
