"""Contact channels: what Twilio and an ntfy server receive, byte for byte, at a local sink;
how their answers become sent, retried or failed messages; the guard; addresses."""

import base64
from datetime import timedelta
from urllib.parse import parse_qsl

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.utils import timezone
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from incidents import lifecycle
from oncall.acklinks import read_token
from oncall.messages import gsm7, gsm7_length, page_message, sms_page_text
from oncall.models import ContactMethod, PersonalNotification
from oncall.sending import page_user, redact_links, send_test
from oncall.validation import normalize_contact_address
from tests.conftest import make_user
from tests.sinks import TWILIO_FROM as FROM
from tests.sinks import TWILIO_SID as SID
from tests.sinks import TWILIO_TOKEN as TOKEN
from tests.sinks import HTTPSink, Reply
from tocsin.transport import TransportError, http

Status = PersonalNotification.Status


@pytest.fixture(autouse=True)
def public_url(settings):
    settings.TOCSIN_PUBLIC_URL = "https://tocsin.example.com"


@pytest.fixture
def paged(db):
    return make_user("rita", "Responder")


def contact(user, kind, address, **fields):
    return ContactMethod.objects.create(user=user, kind=kind, address=address, **fields)


def page_through(inline, incident, user, kind, address):
    method = contact(user, kind, address)
    user.notification_rules.create(contact_method=method, delay_minutes=0)
    inline(page_user, incident, user)
    return PersonalNotification.objects.get(page__incident=incident, user=user)


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def ack_token_of(link: str) -> str:
    return link.rstrip("/").rsplit("/", 1)[-1]


# SMS -----------------------------------------------------------------------------------

def test_sms_page_posts_exactly_the_contract_form_to_twilio_messages(
        twilio, inline, incident, paged):
    row = page_through(inline, incident, paged, "sms", "+4915112345678")

    [request] = twilio.requests
    assert request.method == "POST"
    assert request.path == f"/2010-04-01/Accounts/{SID}/Messages.json"
    assert request.headers["authorization"] == basic(SID, TOKEN)
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    link = f"https://tocsin.example.com/ack/{ack_token_of(request.form['Body'])}/"
    # Exactly these fields, each once (order does not matter to Twilio).
    assert sorted(parse_qsl(request.body.decode(), keep_blank_values=True)) == sorted({
        "To": "+4915112345678", "From": FROM,
        "Body": f"#{incident.number} Disk full on db-1 Ack: {link}"}.items())
    target = read_token(ack_token_of(link))
    assert (target.user_id, target.incident_id) == (paged.pk, incident.pk)
    row.refresh_from_db()
    assert row.status == Status.SENT and row.attempts == 1 and row.sent_at is not None
    assert row.response_status == 201
    assert row.remote_id == "SM00000000000000000000000000000001"
    # Kept as sent, but for the acknowledge link, which acts as the person.
    assert row.text == redact_links(request.form["Body"])


def test_sms_shortens_the_title_to_fit_one_segment_and_never_the_link():
    link = "https://tocsin.example.com/ack/12:345:1pXyZa:" + "s" * 43 + "/"
    text = sms_page_text(42, "Replication lag on the primary database cluster " * 4, link)

    assert len(text) == 160
    assert text.startswith("#42 Replication lag on the primary")
    assert text.endswith(f"... Ack: {link}")


def test_sms_replaces_characters_outside_gsm7_so_one_emoji_keeps_one_segment():
    link = "https://tocsin.example.com/ack/t/"
    text = sms_page_text(7, "Müller’s “disk” 🔥 full – łódź café", link)

    assert text == f"#7 Müller's \"disk\" ? full - ?odz café Ack: {link}"
    assert all(char == gsm7(char) for char in text)
    assert gsm7_length("[€]") == 6


@hypothesis_settings(max_examples=300, deadline=None)
@given(title=st.text(max_size=500), number=st.integers(min_value=1, max_value=10**9))
def test_any_title_gives_one_gsm7_segment_ending_in_the_whole_link(title, number):
    link = "https://tocsin.example.com/ack/12:345:1pXyZa:" + "s" * 43 + "/"

    text = sms_page_text(number, title, link)

    assert text.startswith(f"#{number} ") and text.endswith(f" Ack: {link}")
    assert "  " not in text
    assert gsm7(text) == text
    assert gsm7_length(text) <= 160


def test_sms_with_a_link_too_long_for_one_segment_keeps_the_whole_link():
    link = "https://tocsin.example.com/" + "a" * 150 + "/"
    text = sms_page_text(42, "Disk full on db-1 and a much longer explanation " * 3, link)

    assert text.endswith(f" Ack: {link}")
    assert len(text) > 160
    # The title is still shortened to something readable, not dropped.
    assert text.startswith("#42 Disk full on db-1")


# Voice ---------------------------------------------------------------------------------

def test_voice_page_posts_twiml_that_reads_the_incident_and_gathers_one_key(
        twilio, inline, service, paged):
    incident = lifecycle.open_incident(service=service, title="Disk <full> & slow",
                                       entity_id="db-2")
    row = page_through(inline, incident, paged, "voice", "+12025550123")

    [request] = twilio.requests
    assert request.path == f"/2010-04-01/Accounts/{SID}/Calls.json"
    assert request.headers["authorization"] == basic(SID, TOKEN)
    assert set(request.form) == {"To", "From", "Twiml"}
    assert request.form["To"] == "+12025550123" and request.form["From"] == FROM
    twiml = request.form["Twiml"]
    prefix = '<Response><Gather numDigits="1" action="https://tocsin.example.com/ack/'
    assert twiml.startswith(prefix)
    token = twiml[len(prefix):].split("/", 1)[0]
    assert twiml == (
        f'{prefix}{token}/call/" method="POST"><Say>Tocsin. Incident {incident.number} on '
        "Checkout: Disk &lt;full&gt; &amp; slow. Press 1 to acknowledge.</Say></Gather>"
        "<Say>No key was pressed. The incident is not acknowledged. Goodbye.</Say>"
        "</Response>")
    assert read_token(token).incident_id == incident.pk
    row.refresh_from_db()
    assert row.status == Status.SENT


def test_voice_test_call_says_it_is_a_test_without_asking_for_a_key(twilio, paged):
    row = send_test(contact(paged, "voice", "+12025550123"))

    assert row.status == Status.SENT
    assert twilio.requests[0].form["Twiml"] == (
        "<Response><Say>This is a test call from Tocsin. Your voice contact method works. "
        "Goodbye.</Say></Response>")


# Twilio's answers ----------------------------------------------------------------------

def test_twilio_500_is_retried_later_with_backoff(twilio, inline, deliver_inline, incident,
                                                  paged):
    twilio.reply(Reply(500, {"code": 20500, "message": "Internal Server Error"}))
    before = timezone.now()

    row = page_through(inline, incident, paged, "sms", "+4915112345678")

    row.refresh_from_db()
    assert row.status == Status.PENDING and row.attempts == 1
    assert row.next_attempt_at > before + timedelta(seconds=5)
    assert row.response_status == 500
    assert row.error.startswith("Twilio failed (HTTP 500, error 20500: Internal Server Error)")
    assert [pk for pk, _ in deliver_inline] == [row.pk]


def test_twilio_400_bad_number_fails_at_once_with_the_answer_kept(twilio, inline, incident,
                                                                  paged):
    answer = {"code": 21211, "message": "Invalid 'To' Phone Number",
              "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}
    twilio.reply(Reply(400, answer))

    row = page_through(inline, incident, paged, "sms", "+4915112345678")

    row.refresh_from_db()
    assert row.status == Status.FAILED and row.attempts == 1
    assert row.response_status == 400
    assert row.error.startswith("Twilio refused (HTTP 400, error 21211: "
                                "Invalid 'To' Phone Number)")
    assert '"more_info": "https://www.twilio.com/docs/errors/21211"' in row.error
    assert len(twilio.requests) == 1
    assert incident.timeline.filter(
        kind="page", message__startswith="SMS to rita failed: Twilio refused"
    ).exists()


def test_sms_without_twilio_settings_fails_at_once_naming_the_settings(
        settings, http_sink, paged):
    settings.TOCSIN_TWILIO_ACCOUNT_SID = ""
    settings.TOCSIN_TWILIO_API_URL = http_sink.url

    row = send_test(contact(paged, "sms", "+4915112345678"))

    assert row.status == Status.FAILED
    assert row.error.startswith("Twilio is not configured: set TOCSIN_TWILIO_ACCOUNT_SID")
    assert http_sink.requests == []


# The guard -----------------------------------------------------------------------------

def test_ntfy_on_a_private_address_is_refused_while_twilios_setting_url_still_works(
        twilio, settings, paged):
    settings.TOCSIN_ALLOW_PRIVATE_DESTINATIONS = False

    push = send_test(contact(paged, "ntfy", f"{twilio.url}/rita-pages"))
    sms = send_test(contact(paged, "sms", "+4915112345678"))

    assert push.status == Status.FAILED
    assert "private, loopback or link-local" in push.error
    assert sms.status == Status.SENT
    assert [r.path for r in twilio.requests] == [f"/2010-04-01/Accounts/{SID}/Messages.json"]


def test_a_trusted_url_redirected_to_another_origin_is_guarded_again(settings, http_sink):
    settings.TOCSIN_ALLOW_PRIVATE_DESTINATIONS = False
    elsewhere = HTTPSink()
    try:
        http_sink.reply(Reply(303, {}, {"Location": f"{elsewhere.url}/internal"}))
        with pytest.raises(http.BlockedAddress):
            http.request("POST", f"{http_sink.url}/api", form={"a": "1"}, trusted=True)
        http_sink.reply(Reply(307, {}, {"Location": f"{elsewhere.url}/internal"}))
        with pytest.raises(TransportError, match="redirect to another host"):
            http.request("POST", f"{http_sink.url}/api", form={"a": "1"}, trusted=True)
        assert elsewhere.requests == []
    finally:
        elsewhere.close()


def test_a_trusted_url_follows_a_redirect_within_its_own_origin(settings, http_sink):
    settings.TOCSIN_ALLOW_PRIVATE_DESTINATIONS = False
    http_sink.reply(Reply(307, {}, {"Location": "/moved"}))

    response = http.request("POST", f"{http_sink.url}/api", form={"a": "1"}, trusted=True)

    assert response.status == 200
    assert [(r.path, r.body) for r in http_sink.requests] == [("/api", b"a=1"),
                                                              ("/moved", b"a=1")]


def test_an_untrusted_request_to_the_same_address_is_refused(settings, http_sink):
    settings.TOCSIN_ALLOW_PRIVATE_DESTINATIONS = False

    with pytest.raises(http.BlockedAddress):
        http.request("POST", f"{http_sink.url}/api", form={"a": "1"})
    assert http_sink.requests == []


# ntfy ----------------------------------------------------------------------------------

def test_ntfy_page_posts_the_text_with_title_priority_and_click_headers(
        http_sink, settings, inline, incident, paged):
    settings.TOCSIN_PUBLIC_URL = "https://tocsin.example.com"
    http_sink.default = Reply(200, {"id": "hwQ2YpKdmg", "event": "message"})

    row = page_through(inline, incident, paged, "ntfy", f"{http_sink.url}/rita-pages")

    [request] = http_sink.requests
    assert request.method == "POST" and request.path == "/rita-pages"
    assert request.headers["title"] == f"#{incident.number} triggered: Disk full on db-1"
    assert request.headers["priority"] == "5"
    token = ack_token_of(request.headers["click"])
    assert request.headers["click"] == f"https://tocsin.example.com/ack/{token}/"
    assert read_token(token).user_id == paged.pk
    assert request.body == ("Disk full on db-1\nService: Checkout · Urgency: High\n"
                            "Tap to acknowledge.").encode()
    assert "authorization" not in request.headers
    row.refresh_from_db()
    assert row.status == Status.SENT and row.remote_id == "hwQ2YpKdmg"


def test_ntfy_encodes_a_non_ascii_title_so_it_can_be_sent(http_sink, inline, service, paged):
    incident = lifecycle.open_incident(service=service, title="Kühlung ausgefallen 🔥",
                                       entity_id="rack-7", urgency="low")

    page_through(inline, incident, paged, "ntfy", f"{http_sink.url}/rita-pages")

    [request] = http_sink.requests
    title = f"#{incident.number} triggered: Kühlung ausgefallen 🔥"
    assert request.headers["title"] == \
        f"=?UTF-8?B?{base64.b64encode(title.encode()).decode()}?="
    assert request.headers["priority"] == "3"
    assert request.body.decode().startswith("Kühlung ausgefallen 🔥\n")


def test_ntfy_server_error_is_retried(http_sink, inline, deliver_inline, incident, paged):
    http_sink.reply(Reply(503, {"error": "busy"}, {"Retry-After": "120"}))

    row = page_through(inline, incident, paged, "ntfy", f"{http_sink.url}/rita-pages")

    row.refresh_from_db()
    assert row.status == Status.PENDING and row.attempts == 1 and row.response_status == 503
    assert row.next_attempt_at >= timezone.now() + timedelta(seconds=100)


# Email ---------------------------------------------------------------------------------

def test_email_page_carries_the_incident_and_both_links(settings, inline, incident, paged):
    settings.TOCSIN_PUBLIC_URL = "https://tocsin.example.com"

    row = page_through(inline, incident, paged, "email", "rita@example.com")

    [message] = mail.outbox
    assert message.to == ["rita@example.com"]
    assert message.subject == f"[Tocsin] #{incident.number} triggered: Disk full on db-1"
    assert "Service: Checkout" in message.body and "Urgency: High" in message.body
    assert f"https://tocsin.example.com/admin/incidents/incident/{incident.pk}/change/" \
        in message.body
    ack_line = next(line for line in message.body.splitlines()
                    if line.startswith("Acknowledge"))
    assert read_token(ack_token_of(ack_line.split()[-1])).incident_id == incident.pk
    html = message.alternatives[0][0]
    assert ">Acknowledge</a>" in html and ack_line.split()[-1] in html
    row.refresh_from_db()
    assert row.status == Status.SENT and row.subject == message.subject
    assert row.text == redact_links(message.body)


# Addresses -----------------------------------------------------------------------------

@pytest.mark.parametrize(("kind", "given", "stored"), [
    ("sms", "+49 151 1234 5678", "+4915112345678"),
    ("voice", " +1 (202) 555-0123 ", "+12025550123"),
    ("email", " rita@example.com ", "rita@example.com"),
    ("ntfy", "https://ntfy.sh/rita-pages", "https://ntfy.sh/rita-pages"),
    ("ntfy", "http://ntfy.internal:8080/ops_team-1?auth=QmFzaWM",
     "http://ntfy.internal:8080/ops_team-1?auth=QmFzaWM"),
])
def test_contact_addresses_are_stored_in_their_normal_form(kind, given, stored):
    assert normalize_contact_address(kind, given) == stored


@pytest.mark.parametrize(("kind", "given", "problem"), [
    ("sms", "0151 1234 5678", "country code"),
    ("sms", "+49 1", "too short"),
    ("sms", "+49 12345", "valid"),
    ("sms", "+999 151 1234 5678", "unknown country code"),
    ("voice", "+1 555", "valid"),
    ("sms", "+hello", "Not a phone number"),
    ("email", "rita@", "valid email"),
    ("ntfy", "ftp://ntfy.sh/rita", "http"),
    ("ntfy", "https://ntfy.sh/", "topic name"),
    ("ntfy", "https:///rita", "http"),
    ("ntfy", "https://user:pw@ntfy.sh/rita", "Credentials"),
    ("ntfy", "https://ntfy.sh/ri ta", "spaces"),
    ("pager", "123", "Unknown kind"),
    ("email", "   ", "Enter an address"),
])
def test_bad_contact_addresses_are_refused_with_a_clear_message(kind, given, problem):
    with pytest.raises(ValidationError) as caught:
        normalize_contact_address(kind, given)
    assert problem in " ".join(caught.value.messages)


def test_a_drill_says_so_on_every_channel(service, paged):
    drill = lifecycle.open_incident(service=service, title="Failover rehearsal",
                                    entity_id="drill-1", drill=True)

    sms = page_message("sms", drill, paged)
    voice = page_message("voice", drill, paged)
    push = page_message("ntfy", drill, paged)

    assert sms.text.startswith(f"#{drill.number} [DRILL] Failover rehearsal Ack: ")
    assert voice.text.startswith(f"Tocsin. This is a drill. Incident {drill.number} on ")
    assert push.subject == f"[DRILL] #{drill.number} triggered: Failover rehearsal"


def test_line_breaks_in_a_title_never_reach_a_header_or_subject(
        http_sink, inline, service, paged):
    incident = lifecycle.open_incident(service=service, title="Disk full\r\nX-Evil: 1",
                                       entity_id="db-9")

    page_through(inline, incident, paged, "ntfy", f"{http_sink.url}/rita-pages")
    email = page_message("email", incident, paged)

    [request] = http_sink.requests
    assert request.headers["title"] == f"#{incident.number} triggered: Disk full X-Evil: 1"
    assert "x-evil" not in request.headers
    assert email.subject == f"[Tocsin] #{incident.number} triggered: Disk full X-Evil: 1"
