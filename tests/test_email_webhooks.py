"""Alert mail through django-anymail's inbound webhooks (/anymail/<esp>/inbound/), with the
payloads and authentication each provider really sends (docs/email-integration.md)."""

import base64
import hashlib
import hmac
import json
import logging
import subprocess
import sys
from email.message import EmailMessage

import pytest
from django.db import OperationalError

from incidents.models import Incident
from integrations import email_body
from integrations.models import Alert, AlertType, InboundEvent, Integration
from tests.ingest_helpers import run_tasks  # noqa: F401 (fixture)
from tests.processes import ROOT, base_env

SECRET = "tocsin:webhook-s3cret"
MAILGUN_KEY = "mailgun-signing-key-0123456789"
BODY = (
    "severity: 1\ndescription: Disk almost full on db-2\nsource: nagios\n"
    "source_id: db-2-disk\nevent_time: 1767225600\nother_info: /var at 97%\n"
)


def basic_auth(credentials: str = SECRET) -> dict:
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(credentials.encode()).decode()}


@pytest.fixture(autouse=True)
def anymail_settings(settings):
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET, "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_KEY}


@pytest.fixture
def mailbox(service):
    return Integration.objects.create(name="Nagios mail", kind="email", service=service)


@pytest.fixture
def deliver(client, run_tasks, django_capture_on_commit_callbacks):  # noqa: F811
    """POST to a webhook URL with the worker running inline; returns the response."""

    def _deliver(url, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(url, **kwargs)

    return _deliver


def alert_mail(to: str, body: str = BODY) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Nagios <nagios@monitoring.example.com>"
    message["To"] = to
    message["Subject"] = "PROBLEM: db-2 disk"
    message["Message-ID"] = "<20260101000000.1234@monitoring.example.com>"
    message["Date"] = "Thu, 01 Jan 2026 00:00:00 +0000"
    message.set_content(body)
    return message


def assert_alert_opened_incident(mailbox) -> Alert:
    event = InboundEvent.objects.get()
    assert event.status == InboundEvent.Status.COMPLETED, event.error
    assert event.source == "email"
    assert event.integration == mailbox
    alert = event.alert
    assert alert.alert_type == AlertType.CRITICAL
    assert alert.message == "Disk almost full on db-2"
    assert alert.entity_id == "db-2-disk"
    assert alert.incident.status == Incident.Status.TRIGGERED
    return alert


# Mailgun: a route with forward("https://…/anymail/mailgun/inbound_mime/"); the form is
# signed with the webhook signing key: HMAC-SHA256 of timestamp + token.

def mailgun_signature(timestamp: str, token: str, key: str = MAILGUN_KEY) -> str:
    return hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()


def mailgun_form(mailbox, *, key: str = MAILGUN_KEY) -> dict:
    timestamp, token = "1767225600", "5b6f0cc45d3f3a6ec36a2a8c1f6b1e0d2c9a2f3e8d4b5a6c7d"
    return {
        "recipient": mailbox.email_address,
        "sender": "nagios@monitoring.example.com",
        "from": "Nagios <nagios@monitoring.example.com>",
        "subject": "PROBLEM: db-2 disk",
        "body-mime": alert_mail(mailbox.email_address).as_string(),
        "timestamp": timestamp,
        "token": token,
        "signature": mailgun_signature(timestamp, token, key),
    }


def test_mailgun_raw_mime_forward(deliver, mailbox):
    response = deliver("/anymail/mailgun/inbound_mime/", data=mailgun_form(mailbox),
                       **basic_auth())
    assert response.status_code == 200
    alert = assert_alert_opened_incident(mailbox)
    assert alert.inbound_event.headers["Received-Via"] == "Mailgun"
    assert alert.inbound_event.headers["Envelope-Sender"] == "nagios@monitoring.example.com"


def test_mailgun_parsed_fields_forward(deliver, mailbox):
    form = mailgun_form(mailbox)
    del form["body-mime"]
    form.update({
        "body-plain": BODY,
        "stripped-text": BODY,
        "body-html": "<p>" + BODY.replace("\n", "<br>") + "</p>",
        "message-headers": json.dumps([
            ["From", "Nagios <nagios@monitoring.example.com>"],
            ["To", mailbox.email_address],
            ["Subject", "PROBLEM: db-2 disk"],
            ["Content-Type", "multipart/alternative; boundary=\"b1\""],
        ]),
    })
    assert deliver("/anymail/mailgun/inbound/", data=form, **basic_auth()).status_code == 200
    assert_alert_opened_incident(mailbox)


def test_mailgun_with_a_wrong_signature_is_refused(deliver, mailbox):
    form = mailgun_form(mailbox, key="someone-elses-key")
    response = deliver("/anymail/mailgun/inbound_mime/", data=form, **basic_auth())
    assert response.status_code == 400
    assert not InboundEvent.objects.exists()


# Postmark: an inbound stream whose webhook URL carries the basic-auth credentials.

def postmark_payload(mailbox, *, raw: bool = False, original_recipient: bool = True) -> dict:
    payload = {
        "FromName": "Nagios",
        "MessageStream": "inbound",
        "From": "nagios@monitoring.example.com",
        "FromFull": {"Email": "nagios@monitoring.example.com", "Name": "Nagios",
                     "MailboxHash": ""},
        "To": mailbox.email_address,
        "ToFull": [{"Email": mailbox.email_address, "Name": "", "MailboxHash": ""}],
        "Cc": "", "CcFull": [], "Bcc": "", "BccFull": [],
        "OriginalRecipient": mailbox.email_address,
        "Subject": "PROBLEM: db-2 disk",
        "MessageID": "73e6d360-66eb-11e1-8e72-a8904824019b",
        "ReplyTo": "", "MailboxHash": "",
        "Date": "Thu, 1 Jan 2026 00:00:00 +0000",
        "TextBody": BODY,
        "HtmlBody": "",
        "StrippedTextReply": "",
        "Tag": "",
        "Headers": [
            {"Name": "Return-Path", "Value": "<nagios@monitoring.example.com>"},
            {"Name": "X-Spam-Status", "Value": "No"},
            {"Name": "X-Spam-Score", "Value": "-0.1"},
            {"Name": "Message-ID", "Value": "<20260101000000.1234@monitoring.example.com>"},
        ],
        "Attachments": [],
    }
    if raw:
        payload["RawEmail"] = alert_mail(mailbox.email_address).as_string()
    if not original_recipient:
        del payload["OriginalRecipient"]
    return payload


def post_postmark(deliver, payload, credentials=SECRET):
    return deliver("/anymail/postmark/inbound/", data=json.dumps(payload),
                   content_type="application/json", **basic_auth(credentials))


def test_postmark_parsed_payload(deliver, mailbox):
    assert post_postmark(deliver, postmark_payload(mailbox)).status_code == 200
    alert = assert_alert_opened_incident(mailbox)
    assert alert.inbound_event.headers["Envelope-Sender"] == "nagios@monitoring.example.com"


def test_postmark_raw_email(deliver, mailbox):
    assert post_postmark(deliver, postmark_payload(mailbox, raw=True)).status_code == 200
    assert_alert_opened_incident(mailbox)


def test_postmark_without_original_recipient_uses_the_to_header(deliver, mailbox):
    payload = postmark_payload(mailbox, original_recipient=False)
    payload["To"] = f"ops@example.com, {mailbox.email_address}"
    payload["ToFull"].insert(0, {"Email": "ops@example.com", "Name": "", "MailboxHash": ""})
    assert post_postmark(deliver, payload).status_code == 200
    assert_alert_opened_incident(mailbox)


def test_postmark_with_wrong_credentials_is_refused(deliver, mailbox):
    response = post_postmark(deliver, postmark_payload(mailbox), "tocsin:guess")
    assert response.status_code == 400
    assert not InboundEvent.objects.exists()


def test_postmark_html_only_mail(deliver, mailbox):
    payload = postmark_payload(mailbox)
    payload["TextBody"] = ""
    payload["HtmlBody"] = "<html><body><p>" + BODY.replace("\n", "<br>\n") + "</p></body></html>"
    assert post_postmark(deliver, payload).status_code == 200
    assert_alert_opened_incident(mailbox)


# SendGrid: Inbound Parse posts multipart/form-data to a URL with basic-auth credentials;
# "POST the raw, full MIME message" gives the `email` field, otherwise parsed fields.

pytestmark_sendgrid = pytest.mark.filterwarnings(
    "ignore::anymail.exceptions.AnymailNotSupportedWarning"
)


def sendgrid_form(mailbox, *, raw: bool) -> dict:
    form = {
        "envelope": json.dumps(
            {"to": [mailbox.email_address], "from": "nagios@monitoring.example.com"}
        ),
        "from": "Nagios <nagios@monitoring.example.com>",
        "to": mailbox.email_address,
        "subject": "PROBLEM: db-2 disk",
        "charsets": json.dumps({"to": "UTF-8", "from": "UTF-8", "subject": "UTF-8",
                                "text": "utf-8"}),
        "dkim": "{@monitoring.example.com : pass}",
        "SPF": "pass",
        "sender_ip": "192.0.2.10",
        "spam_score": "0.1",
        "spam_report": "Spam detection software... 0.1 points",
    }
    if raw:
        form["email"] = alert_mail(mailbox.email_address).as_string()
    else:
        form["headers"] = (
            "From: Nagios <nagios@monitoring.example.com>\n"
            f"To: {mailbox.email_address}\nSubject: PROBLEM: db-2 disk\n"
            "Message-ID: <20260101000000.1234@monitoring.example.com>\n"
        )
        form["text"] = BODY
        form["attachments"] = "0"
    return form


@pytestmark_sendgrid
@pytest.mark.parametrize("raw", [True, False], ids=["raw-mime", "parsed"])
def test_sendgrid_inbound_parse(deliver, mailbox, raw):
    response = deliver("/anymail/sendgrid/inbound/", data=sendgrid_form(mailbox, raw=raw),
                       **basic_auth())
    assert response.status_code == 200
    assert_alert_opened_incident(mailbox)


@pytestmark_sendgrid
def test_sendgrid_with_wrong_credentials_is_refused(deliver, mailbox):
    response = deliver("/anymail/sendgrid/inbound/", data=sendgrid_form(mailbox, raw=True),
                       **basic_auth("sendgrid:wrong"))
    assert response.status_code == 400
    assert not InboundEvent.objects.exists()


# Amazon SES: a receipt rule with an SNS action (Base64 encoding) publishes to a topic whose
# HTTPS subscription is https://user:password@…/anymail/amazon_ses/inbound/.

TOPIC = "arn:aws:sns:eu-west-1:123456789012:tocsin-inbound"


def sns_envelope(message_type: str, message_id: str, **fields) -> dict:
    return {
        "Type": message_type,
        "MessageId": message_id,
        "TopicArn": TOPIC,
        "Timestamp": "2026-01-01T00:00:01.000Z",
        "SignatureVersion": "1",
        "Signature": "EXAMPLEpH+DcEwjAPg8O9mY8dReBSwksfg2S7WKQcikcNKWLQjwu6A4VbeS0QHVCkhRS7fUQ",
        "SigningCertURL": "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-"
                          "0000000000000000000000.pem",
        **fields,
    }


def ses_notification(mailbox) -> dict:
    raw = alert_mail(mailbox.email_address).as_bytes()
    ses_event = {
        "notificationType": "Received",
        "mail": {
            "timestamp": "2026-01-01T00:00:00.000Z",
            "source": "nagios@monitoring.example.com",
            "messageId": "o3vrnil0e2ic28trm7dfhrc2v0clambda4nbp0g1",
            "destination": [mailbox.email_address],
            "headersTruncated": False,
            "headers": [{"name": "Subject", "value": "PROBLEM: db-2 disk"}],
            "commonHeaders": {"from": ["Nagios <nagios@monitoring.example.com>"],
                              "to": [mailbox.email_address],
                              "subject": "PROBLEM: db-2 disk"},
        },
        "receipt": {
            "timestamp": "2026-01-01T00:00:00.000Z",
            "processingTimeMillis": 574,
            "recipients": [mailbox.email_address],
            "spamVerdict": {"status": "PASS"}, "virusVerdict": {"status": "PASS"},
            "spfVerdict": {"status": "PASS"}, "dkimVerdict": {"status": "PASS"},
            "dmarcVerdict": {"status": "PASS"},
            "action": {"type": "SNS", "topicArn": TOPIC, "encoding": "BASE64"},
        },
        "content": base64.b64encode(raw).decode(),
    }
    return sns_envelope(
        "Notification", "8f2a1c3e-6b1f-5d9a-9c3e-2f1a0b9c8d7e",
        Subject="Amazon SES Email Receipt Notification", Message=json.dumps(ses_event),
        UnsubscribeURL="https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe",
    )


def post_sns(deliver, payload, **auth):
    return deliver(
        "/anymail/amazon_ses/inbound/", data=json.dumps(payload),
        content_type="text/plain; charset=UTF-8",
        HTTP_X_AMZ_SNS_MESSAGE_TYPE=payload["Type"],
        HTTP_X_AMZ_SNS_MESSAGE_ID=payload["MessageId"],
        HTTP_X_AMZ_SNS_TOPIC_ARN=TOPIC,
        **auth,
    )


def test_amazon_ses_sns_notification(deliver, mailbox):
    response = post_sns(deliver, ses_notification(mailbox), **basic_auth())
    assert response.status_code == 200
    alert = assert_alert_opened_incident(mailbox)
    assert alert.inbound_event.headers["Received-Via"] == "Amazon SES"


def test_amazon_ses_is_first_asked_for_credentials_then_refused_with_wrong_ones(
    deliver, mailbox
):
    # SNS sends credentials only after a 401 with WWW-Authenticate.
    challenge = post_sns(deliver, ses_notification(mailbox))
    assert challenge.status_code == 401
    assert challenge["WWW-Authenticate"].startswith("Basic")
    assert post_sns(deliver, ses_notification(mailbox), **basic_auth("a:b")).status_code == 400
    assert not InboundEvent.objects.exists()


def test_amazon_ses_subscription_confirmation_logs_the_url_to_open(deliver, mailbox, caplog):
    confirmation = sns_envelope(
        "SubscriptionConfirmation", "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
        Token="2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92768dd60a7",
        Message="You have chosen to subscribe to the topic …",
        SubscribeURL="https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription"
                     "&TopicArn=arn:aws:sns:eu-west-1:123456789012:tocsin-inbound&Token=2336",
    )
    with caplog.at_level(logging.WARNING, logger="integrations.ses"):
        assert post_sns(deliver, confirmation, **basic_auth()).status_code == 200
    assert "Action=ConfirmSubscription" in caplog.text
    assert not InboundEvent.objects.exists()


# Whatever the provider: rejected mail is recorded and answered 200, so it is not resent.

def test_mail_to_an_unknown_address_is_recorded_as_rejected_and_answered_200(
    deliver, mailbox
):
    payload = postmark_payload(mailbox)
    payload["OriginalRecipient"] = "alert-ffffffff@alerts.localhost"
    assert post_postmark(deliver, payload).status_code == 200
    event = InboundEvent.objects.get()
    assert event.status == InboundEvent.Status.REJECTED
    assert event.integration is None
    assert "alert-ffffffff@alerts.localhost" in event.error
    assert not Alert.objects.exists()


def test_mail_to_a_disabled_integration_is_recorded_as_rejected(deliver, mailbox):
    mailbox.status = Integration.Status.DISABLED
    mailbox.save()
    assert post_postmark(deliver, postmark_payload(mailbox)).status_code == 200
    event = InboundEvent.objects.get()
    assert event.status == InboundEvent.Status.REJECTED
    assert event.integration == mailbox


def test_a_mail_that_breaks_receiving_is_still_recorded_and_answered_200(
    deliver, mailbox, monkeypatch
):
    def broken(*args, **kwargs):
        raise ValueError("unexpected header")

    monkeypatch.setattr("integrations.inbound_mail.find_integration", broken)
    assert post_postmark(deliver, postmark_payload(mailbox)).status_code == 200
    event = InboundEvent.objects.get()
    assert event.status == InboundEvent.Status.REJECTED
    assert event.error == "Could not be read: ValueError: unexpected header"
    assert "Disk almost full" in email_body.body_text(email_body.read_message(bytes(event.body)))


def test_a_database_that_cannot_store_the_mail_makes_the_provider_retry(
    client, mailbox, monkeypatch
):
    def locked(*args, **kwargs):
        raise OperationalError("database is locked")

    monkeypatch.setattr("integrations.inbound_mail.find_integration", locked)
    client.raise_request_exception = False
    response = client.post("/anymail/postmark/inbound/", data=json.dumps(
        postmark_payload(mailbox)), content_type="application/json", **basic_auth())
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal server error."}


def test_esp_settings_come_from_anymail_prefixed_environment_variables():
    env = base_env(
        ANYMAIL_WEBHOOK_SECRET=SECRET, ANYMAIL_MAILGUN_WEBHOOK_SIGNING_KEY=MAILGUN_KEY,
        ANYMAIL_RESEND_INBOUND_SECRET="whsec_abc", ANYMAIL_POSTAL_WEBHOOK_KEY="pk",
    )
    shown = subprocess.run(
        [sys.executable, "-c", "import json, django; from django.conf import settings; "
         "django.setup(); print(json.dumps(settings.ANYMAIL))"],
        env={**env, "DJANGO_SETTINGS_MODULE": "tocsin.settings"}, cwd=ROOT,
        capture_output=True, text=True, timeout=60,
    )
    assert json.loads(shown.stdout) == {
        "WEBHOOK_SECRET": SECRET, "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_KEY,
        "POSTAL_WEBHOOK_KEY": "pk", "RESEND_INBOUND_SECRET": "whsec_abc",
    }


def test_mailgun_without_a_signing_key_configured_fails_loudly(client, mailbox, settings):
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET}
    client.raise_request_exception = False
    response = client.post("/anymail/mailgun/inbound_mime/", data=mailgun_form(mailbox),
                           **basic_auth())
    assert response.status_code == 500
    assert not InboundEvent.objects.exists()
