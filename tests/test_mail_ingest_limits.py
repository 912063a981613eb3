"""Mail ingest under abuse and mistakes: malformed recipient headers, rate limits, posts that
cannot be authenticated, rejected posts in the log, and large mail whatever the global
upload limit (docs/email-integration.md)."""

import io
import json
import logging

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from integrations import email_body, inbound_mail
from integrations.models import InboundEvent, Integration
from tests.test_email_webhooks import (
    MAILGUN_KEY,
    SECRET,
    alert_mail,
    basic_auth,
    mailgun_form,
    postmark_payload,
)

# To: headers that have crashed or could crash the address parser.
NASTY_TO_HEADERS = [
    b"<<<@@@",
    b'"unbalanced <alert@alerts.localhost>',
    b"=?bogus?b?!!!?=",
    b"=?utf-8?q?=ZZ=?= <x@y>",
    b"=?utf-8?b?AAAA?=@alerts.localhost",
    b"a\x00b@alerts.localhost",
    b"\x00",
    b"<a@[1.2.3>",
    b"Group: ;;;",
    b"Group: a@b, c@d;",
    b"(((((comment",
    b'"\\" <@>',
    b"\xff\xfe\xfd",
    b"=?utf-8?q?\xff\xfe?=",
    b"a@b@c",
    b",,,,",
    b"<" * 5000,
]


@pytest.fixture(autouse=True)
def anymail_settings(settings):
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET, "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_KEY}


@pytest.fixture
def mailbox(service):
    return Integration.objects.create(name="Nagios mail", kind="email", service=service)


def raw_mail(to: bytes, message_id: str = "<1@monitoring.example.com>") -> bytes:
    return (
        b"From: nagios@monitoring.example.com\r\nTo: " + to + b"\r\nSubject: disk\r\n"
        b"Message-ID: " + message_id.encode() + b"\r\n\r\nseverity: 1\ndescription: Disk full\n"
    )


@pytest.mark.parametrize("header", NASTY_TO_HEADERS)
def test_a_malformed_to_header_exits_65_or_0_with_one_line_and_the_mail_recorded(db, header):
    stderr = io.StringIO()
    try:
        call_command("ingest_email", stdin=io.BytesIO(raw_mail(header)),
                     stdout=io.StringIO(), stderr=stderr)
    except CommandError as exc:
        assert exc.returncode == 65
        assert "\n" not in str(exc)
        assert "recorded as rejected inbound event" in str(exc)
    else:
        # An address could be read, but it is nobody's: recorded, not bounced.
        assert stderr.getvalue().count("\n") <= 1
    event = InboundEvent.objects.get()
    assert event.status == InboundEvent.Status.REJECTED
    assert "\x00" not in json.dumps(event.headers)


@hypothesis_settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_reading_recipients_never_raises_whatever_the_header_bytes(header):
    raw = b"To: " + header.replace(b"\n", b" ").replace(b"\r", b" ") + b"\r\n\r\nbody\n"
    for address in inbound_mail.header_recipients(email_body.read_headers(raw)):
        assert address.isprintable()


def test_mail_over_the_rate_limit_exits_75_and_is_not_stored(mailbox):
    mailbox.rate_limit_per_minute = 1
    mailbox.save()
    to = mailbox.email_address.encode()
    call_command("ingest_email", stdin=io.BytesIO(raw_mail(to, "<a@x>")), stdout=io.StringIO())
    with pytest.raises(CommandError, match="Rate limit of 1 messages per minute") as failure:
        call_command("ingest_email", stdin=io.BytesIO(raw_mail(to, "<b@x>")),
                     stdout=io.StringIO())
    assert failure.value.returncode == 75
    assert InboundEvent.objects.count() == 1


def post_postmark(client, payload, **extra):
    return client.post("/anymail/postmark/inbound/", data=json.dumps(payload),
                       content_type="application/json", **{**basic_auth(), **extra})


def with_message_id(payload: dict, message_id: str) -> dict:
    payload["Headers"] = [h for h in payload["Headers"] if h["Name"] != "Message-ID"]
    payload["Headers"].append({"Name": "Message-ID", "Value": message_id})
    return payload


def test_anymail_mail_over_the_rate_limit_is_answered_429_with_retry_after(client, mailbox):
    mailbox.rate_limit_per_minute = 1
    mailbox.save()
    first = post_postmark(client, with_message_id(postmark_payload(mailbox), "<a@x>"))
    second = post_postmark(client, with_message_id(postmark_payload(mailbox), "<b@x>"))
    assert first.status_code == 200
    assert second.status_code == 429
    assert 1 <= int(second["Retry-After"]) <= 60
    assert "Rate limit" in second.json()["message"]
    assert InboundEvent.objects.count() == 1


def test_the_same_mail_posted_twice_by_the_esp_is_stored_once(client, mailbox):
    assert post_postmark(client, postmark_payload(mailbox)).status_code == 200
    assert post_postmark(client, postmark_payload(mailbox)).status_code == 200
    assert InboundEvent.objects.count() == 1


def test_an_idempotency_key_on_the_post_wins_over_the_message_id(client, mailbox):
    first = with_message_id(postmark_payload(mailbox), "<a@x>")
    second = with_message_id(postmark_payload(mailbox), "<b@x>")
    assert post_postmark(client, first, HTTP_IDEMPOTENCY_KEY="post-1").status_code == 200
    assert post_postmark(client, second, HTTP_IDEMPOTENCY_KEY="post-1").status_code == 200
    assert InboundEvent.objects.count() == 1
    too_long = post_postmark(client, second, HTTP_IDEMPOTENCY_KEY="k" * 256)
    assert too_long.status_code == 400
    assert InboundEvent.objects.count() == 1


def warnings_logged(caplog) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.levelno >= logging.WARNING]


@pytest.mark.parametrize("anymail", [{}, {"MAILGUN_API_KEY": "key-only-for-sending"}])
def test_without_a_way_to_authenticate_posts_are_refused_with_one_log_line(
    client, mailbox, settings, caplog, anymail
):
    settings.DEBUG = False
    settings.ANYMAIL = anymail
    response = post_postmark(client, postmark_payload(mailbox))
    assert response.status_code == 503
    assert "not configured" in response.json()["message"]
    [record] = warnings_logged(caplog)
    assert "ANYMAIL_WEBHOOK_SECRET" in record.getMessage()
    assert record.exc_info is None
    assert not InboundEvent.objects.exists()


def test_a_signing_key_alone_authenticates_its_own_esp_only(client, mailbox, settings):
    settings.DEBUG = False
    settings.ANYMAIL = {"MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_KEY}
    mailgun = client.post("/anymail/mailgun/inbound_mime/", data=mailgun_form(mailbox))
    assert mailgun.status_code == 200
    assert post_postmark(client, postmark_payload(mailbox)).status_code == 503
    assert InboundEvent.objects.count() == 1


def test_with_debug_on_unauthenticated_posts_are_accepted_for_local_trials(
    client, mailbox, settings
):
    settings.DEBUG = True
    settings.ANYMAIL = {}
    response = client.post("/anymail/postmark/inbound/",
                           data=json.dumps(postmark_payload(mailbox)),
                           content_type="application/json")
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("url", "post"),
    [
        ("/anymail/mailgun/inbound_mime/",
         lambda client, mailbox: client.post(
             "/anymail/mailgun/inbound_mime/",
             data=mailgun_form(mailbox, key="someone-elses-key"), **basic_auth())),
        ("/anymail/postmark/inbound/",
         lambda client, mailbox: post_postmark(
             client, postmark_payload(mailbox), **basic_auth("tocsin:guess"))),
        ("/anymail/postmark/inbound/",
         lambda client, mailbox: client.post(
             "/anymail/postmark/inbound/", data=b"{not json",
             content_type="application/json", **basic_auth())),
        ("/anymail/postmark/inbound/",
         lambda client, mailbox: client.post(
             "/anymail/postmark/inbound/", data=b"[1, 2]",
             content_type="application/json", **basic_auth())),
    ],
    ids=["bad_signature", "bad_credentials", "not_json", "not_an_object"],
)
def test_a_rejected_post_is_one_warning_line_without_traceback(
    client, mailbox, caplog, url, post
):
    client.raise_request_exception = False
    response = post(client, mailbox)
    assert response.status_code == 400
    assert response.json()["message"]
    [record] = warnings_logged(caplog)
    assert record.exc_info is None
    assert url in record.getMessage()
    assert not InboundEvent.objects.exists()


# About 3 MB of mail against Django's default 2.5 MB upload limit.
LARGE = 3 * 1024 * 1024


@pytest.fixture
def large_mail_settings(settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2621440
    settings.TOCSIN_MAX_BODY_BYTES = 8 * 1024 * 1024


def large_body() -> str:
    line = "other_info: " + "x" * 100 + "\n"
    return "severity: 1\ndescription: Disk full\nsource_id: db-2\n" + line * (LARGE // len(line))


def test_a_3_mb_mime_form_post_is_accepted_whatever_the_global_upload_limit(
    client, mailbox, large_mail_settings, run_tasks, django_capture_on_commit_callbacks
):
    form = mailgun_form(mailbox)
    form["body-mime"] = alert_mail(mailbox.email_address, large_body()).as_string()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/anymail/mailgun/inbound_mime/", data=form, **basic_auth())
    assert response.status_code == 200
    event = InboundEvent.objects.get()
    assert event.status == InboundEvent.Status.COMPLETED, event.error
    assert len(bytes(event.body)) > LARGE
    assert event.alert.message == "Disk full"


def test_a_3_mb_json_post_is_accepted_whatever_the_global_upload_limit(
    client, mailbox, large_mail_settings
):
    payload = postmark_payload(mailbox)
    payload["TextBody"] = large_body()
    assert post_postmark(client, payload).status_code == 200
    assert InboundEvent.objects.get().status == InboundEvent.Status.QUEUED


def test_a_post_over_the_mail_limit_is_413_before_it_is_read(client, mailbox, settings):
    settings.TOCSIN_INBOUND_MAIL_MAX_BYTES = 1024 * 1024
    # The declared length alone decides: the 2-byte body is never looked at.
    response = client.post("/anymail/postmark/inbound/", data=b"{}",
                           content_type="application/json", CONTENT_LENGTH=str(1024 * 1024 + 1),
                           **basic_auth())
    assert response.status_code == 413
    assert "larger than 1048576 bytes" in response.json()["message"]
    payload = postmark_payload(mailbox)
    payload["TextBody"] = "x" * (1024 * 1024)
    assert post_postmark(client, payload).status_code == 413
    assert not InboundEvent.objects.exists()
