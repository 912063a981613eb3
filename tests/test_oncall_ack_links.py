"""Acknowledge links (/ack/<token>/) and the voice call's keypress (/ack/<token>/call/):
docs/on-call.md#acknowledge-links."""

import base64
import hashlib
import hmac
import re
import time
from unittest import mock

import pytest
from django.contrib.auth.models import Group, Permission
from django.core import signing
from django.http import QueryDict
from django.test import Client
from django.urls import reverse

from incidents import lifecycle
from incidents.models import Incident, TimelineEntry
from oncall.acklinks import ack_call_url, ack_url, make_token
from oncall.models import ContactMethod, NotificationRule
from oncall.sending import page_user
from oncall.views import twilio_signature
from tests.conftest import make_user
from tests.sinks import Reply

pytestmark = pytest.mark.django_db


@pytest.fixture
def oncall_user(db):
    return make_user("olga", "Responder")


@pytest.fixture
def link(oncall_user, incident):
    return reverse("acknowledge-link", args=[make_token(oncall_user.pk, incident.pk)])


@pytest.fixture
def call_link(oncall_user, incident):
    return reverse("acknowledge-call", args=[make_token(oncall_user.pk, incident.pk)])


def timeline(incident):
    return list(TimelineEntry.objects.filter(incident=incident).values_list("kind", "message"))


def expired_token(user, incident):
    """A token signed 24 hours and one minute ago (signing reads time.time())."""
    with mock.patch.object(signing.time, "time", return_value=time.time() - 24 * 3600 - 60):
        return make_token(user.pk, incident.pk)


# --- the link's page --------------------------------------------------------------------

def test_get_shows_the_incident_and_a_button_and_changes_nothing(client, link, incident,
                                                                 oncall_user):
    before = timeline(incident)
    response = client.get(link)
    assert response.status_code == 200
    page = response.content.decode()
    assert f"Incident #{incident.number}" in page
    assert "Disk full on db-1" in page
    assert "Checkout" in page  # the service
    assert "Triggered" in page and "High" in page
    assert '<form method="post" id="ack-form">' in page
    assert "as olga" in page
    assert f"/admin/incidents/incident/{incident.pk}/change/" in page
    incident.refresh_from_db()
    assert incident.status == Incident.Status.TRIGGERED
    assert incident.acknowledged_at is None
    assert timeline(incident) == before


def test_head_and_repeated_gets_change_nothing_either(client, link, incident):
    before = timeline(incident)
    for _ in range(3):
        assert client.get(link).status_code == 200
    assert client.head(link).status_code == 200
    incident.refresh_from_db()
    assert incident.status == Incident.Status.TRIGGERED
    assert timeline(incident) == before


def test_page_is_not_cached_and_sends_no_referrer_to_other_sites(client, link):
    response = client.get(link)
    assert "no-store" in response["Cache-Control"]
    assert response["Referrer-Policy"] == "same-origin"
    assert '<meta name="referrer" content="same-origin">' in response.content.decode()


def test_post_acknowledges_as_the_links_user_with_their_name_on_the_timeline(
        client, link, incident, oncall_user):
    response = client.post(link)
    assert response.status_code == 200
    assert "You acknowledged incident" in response.content.decode()
    incident.refresh_from_db()
    assert incident.status == Incident.Status.ACKNOWLEDGED
    entry = TimelineEntry.objects.get(incident=incident, kind=TimelineEntry.Kind.ACKNOWLEDGED)
    assert entry.actor == oncall_user
    assert entry.message == "Acknowledged by olga: with an acknowledge link"
    # No login happened: the link acted, the browser holds no session.
    assert "_auth_user_id" not in client.session


def test_second_post_answers_409_naming_who_acknowledged(client, link, incident):
    client.post(link)
    acknowledged_at = Incident.objects.get(pk=incident.pk).acknowledged_at
    response = client.post(link)
    assert response.status_code == 409
    page = response.content.decode()
    assert "Already acknowledged" in page and "By olga" in page
    assert 'id="ack-form"' not in page
    assert TimelineEntry.objects.filter(incident=incident,
                                        kind=TimelineEntry.Kind.ACKNOWLEDGED).count() == 1
    assert Incident.objects.get(pk=incident.pk).acknowledged_at == acknowledged_at


def test_a_used_link_answers_409_on_get_too_with_no_button(client, link, incident):
    client.post(link)
    for response in (client.get(link), client.head(link)):
        assert response.status_code == 409
    page = client.get(link).content.decode()
    assert "Already acknowledged" in page and "By olga" in page
    assert 'id="ack-form"' not in page


def test_link_of_an_incident_someone_else_acknowledged_answers_409_naming_them(
        client, link, incident, manager):
    lifecycle.acknowledge(incident, actor=manager)
    before = timeline(incident)
    response = client.get(link)
    assert response.status_code == 409
    page = response.content.decode()
    assert "Already acknowledged" in page and "By max" in page
    assert "Disk full on db-1" in page  # the incident is still shown, only the button goes
    assert 'id="ack-form"' not in page
    assert client.post(link).status_code == 409
    assert timeline(incident) == before


def test_link_of_a_resolved_incident_answers_409_and_stays_resolved(client, link, incident):
    lifecycle.resolve(incident)  # by an alert: no actor
    for response in (client.get(link), client.post(link)):
        assert response.status_code == 409
        page = response.content.decode()
        assert "Already resolved" in page and "Automatically" in page
        assert 'id="ack-form"' not in page
    incident.refresh_from_db()
    assert incident.status == Incident.Status.RESOLVED
    assert incident.acknowledged_at is None


def test_expired_link_answers_410_and_changes_nothing(client, incident, oncall_user):
    url = reverse("acknowledge-link", args=[expired_token(oncall_user, incident)])
    for response in (client.get(url), client.post(url)):
        assert response.status_code == 410
        assert "This link has expired" in response.content.decode()
        assert "Disk full on db-1" not in response.content.decode()
    incident.refresh_from_db()
    assert incident.status == Incident.Status.TRIGGERED


def test_link_just_inside_24_hours_still_works(client, incident, oncall_user):
    with mock.patch.object(signing.time, "time", return_value=time.time() - 24 * 3600 + 60):
        token = make_token(oncall_user.pk, incident.pk)
    assert client.post(reverse("acknowledge-link", args=[token])).status_code == 200


def change_one_character(text: str, index: int) -> str:
    replacement = "A" if text[index] != "A" else "B"
    return text[:index] + replacement + text[index + 1:]


@pytest.mark.parametrize("where", [0, 3, -3, -1])
def test_a_link_with_one_character_changed_answers_400(client, oncall_user, incident, where):
    token = make_token(oncall_user.pk, incident.pk)
    tampered = change_one_character(token, where if where >= 0 else len(token) + where)
    response = client.post(f"/ack/{tampered}/")
    assert response.status_code == 400
    assert "This link is not valid" in response.content.decode()
    assert "Disk full on db-1" not in response.content.decode()
    incident.refresh_from_db()
    assert incident.status == Incident.Status.TRIGGERED


def test_a_link_for_another_user_or_incident_cannot_be_made_by_editing_the_value(
        client, oncall_user, incident):
    other = make_user("otto", "Responder")
    timestamp_and_signature = make_token(oncall_user.pk, incident.pk).split(":", 2)[2]
    forged = f"{other.pk}:{incident.pk}:{timestamp_and_signature}"
    assert client.post(f"/ack/{forged}/").status_code == 400
    incident.refresh_from_db()
    assert incident.status == Incident.Status.TRIGGERED


def test_another_signed_value_of_the_portal_is_not_an_acknowledge_link(client, oncall_user,
                                                                       incident):
    other = signing.TimestampSigner().sign(f"{oncall_user.pk}:{incident.pk}")
    assert client.post(f"/ack/{other}/").status_code == 400


@pytest.mark.parametrize("path", [
    "/ack/garbage/",
    "/ack/" + "A" * 10_000 + "/",
    "/ack/%E2%9C%93%F0%9F%94%A5%00/",
    "/ack/a%2Fb/",
    "/ack/a%2F..%2F..%2Fadmin/",
    "/ack/1:2:3/",
    "/ack/%C0%AF/",
    "/ack/:/",
])
def test_absurd_tokens_answer_4xx_never_500(client, path):
    for response in (client.get(path), client.post(path)):
        assert 400 <= response.status_code < 500


def test_token_whose_value_is_not_two_ascii_numbers_is_refused(client):
    signer = signing.TimestampSigner(salt="tocsin.oncall.acknowledge-link")
    for value in ["١:٢", "1:", "x:1", "1:2:3", "¹:²"]:
        response = client.get(f"/ack/{signer.sign(value)}/")
        assert response.status_code == 400, value


def test_link_of_a_deleted_incident_answers_404(client, link, incident):
    incident.delete()
    response = client.post(link)
    assert response.status_code == 404
    assert "This incident no longer exists" in response.content.decode()


def test_link_of_a_deactivated_user_answers_403_and_changes_nothing(client, link, incident,
                                                                    oncall_user):
    oncall_user.is_active = False
    oncall_user.save()
    for response in (client.get(link), client.post(link)):
        assert response.status_code == 403
        assert "Disk full on db-1" not in response.content.decode()
    incident.refresh_from_db()
    assert incident.status == Incident.Status.TRIGGERED


def test_a_responders_link_stops_working_once_they_leave_the_responder_group(
        client, link, incident, oncall_user):
    assert client.get(link).status_code == 200  # a Responder: the page and its button
    before = timeline(incident)
    oncall_user.groups.remove(Group.objects.get(name="Responder"))
    for response in (client.get(link), client.post(link)):
        assert response.status_code == 403
        page = response.content.decode()
        assert "You may no longer acknowledge incidents" in page
        assert "Ask an administrator" in page
        assert "Disk full on db-1" not in page
        assert 'id="ack-form"' not in page
    incident.refresh_from_db()
    assert incident.status == Incident.Status.TRIGGERED
    assert incident.acknowledged_at is None
    assert timeline(incident) == before


def test_a_link_acknowledges_for_a_user_who_holds_the_right_without_a_role(
        client, incident):
    """The right decides, not the group's name: a user granted it directly may use it."""
    user = make_user("petra")
    user.user_permissions.add(Permission.objects.get(codename="acknowledge_incident"))
    link = reverse("acknowledge-link", args=[make_token(user.pk, incident.pk)])
    assert client.post(link).status_code == 200
    incident.refresh_from_db()
    assert incident.status == Incident.Status.ACKNOWLEDGED


def test_link_of_a_deleted_user_answers_403(client, link, incident, oncall_user):
    oncall_user.delete()
    assert client.post(link).status_code == 403
    incident.refresh_from_db()
    assert incident.status == Incident.Status.TRIGGERED


def test_page_shows_only_its_own_incident(client, link, service):
    other = lifecycle.open_incident(service=service, title="Secret other outage",
                                    entity_id="x-1")
    page = client.get(link).content.decode()
    assert "Secret other outage" not in page
    assert f"/incidents/incident/{other.pk}/" not in page


def test_other_methods_are_refused(client, link):
    assert client.put(link).status_code == 405
    assert client.delete(link).status_code == 405


def test_ack_url_is_absolute_on_the_public_url(settings, oncall_user, incident):
    settings.TOCSIN_PUBLIC_URL = "https://tocsin.example.org/portal"
    url = ack_url(oncall_user.pk, incident.pk)
    assert url.startswith("https://tocsin.example.org/portal/ack/") and url.endswith("/")
    assert ack_call_url(oncall_user.pk, incident.pk).endswith("/call/")


# --- CSRF: the real browser flow ------------------------------------------------------------

def test_post_without_csrf_token_is_refused_and_changes_nothing(link, incident):
    client = Client(enforce_csrf_checks=True)
    assert client.post(link).status_code == 403
    incident.refresh_from_db()
    assert incident.status == Incident.Status.TRIGGERED


def test_anonymous_get_then_post_with_the_cookie_and_token_acknowledges(link, incident):
    client = Client(enforce_csrf_checks=True)
    page = client.get(link)
    assert "csrftoken" in client.cookies  # kept by the client and sent with the POST
    # The form's hidden field, read from the HTML as a browser submits it.
    csrf_token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"',
                           page.content.decode()).group(1)
    response = client.post(link, {"csrfmiddlewaretoken": csrf_token})
    assert response.status_code == 200
    incident.refresh_from_db()
    assert incident.status == Incident.Status.ACKNOWLEDGED


# --- the voice call's keypress --------------------------------------------------------------

def test_pressing_1_acknowledges_by_phone(client, call_link, incident, oncall_user):
    response = client.post(call_link, {"Digits": "1", "CallSid": "CA1"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/xml")
    assert response.content.decode().endswith(
        f"<Response><Say>Incident {incident.number} acknowledged. Goodbye.</Say></Response>")
    incident.refresh_from_db()
    assert incident.status == Incident.Status.ACKNOWLEDGED
    entry = TimelineEntry.objects.get(incident=incident, kind=TimelineEntry.Kind.ACKNOWLEDGED)
    assert entry.actor == oncall_user
    assert entry.message == "Acknowledged by olga: by phone"


@pytest.mark.parametrize("digits", ["2", "", "11", "*"])
def test_pressing_anything_else_does_not_acknowledge(client, call_link, incident, digits):
    response = client.post(call_link, {"Digits": digits})
    assert response.status_code == 200
    assert f"Incident {incident.number} was not acknowledged" in response.content.decode()
    incident.refresh_from_db()
    assert incident.status == Incident.Status.TRIGGERED


def test_pressing_1_after_someone_else_acknowledged_says_who(client, call_link, incident,
                                                             manager):
    lifecycle.acknowledge(incident, actor=manager)
    response = client.post(call_link, {"Digits": "1"})
    assert response.status_code == 200
    assert f"Incident {incident.number} was already acknowledged by max" in \
        response.content.decode()


def test_pressing_1_without_the_right_to_acknowledge_says_so_and_changes_nothing(
        client, call_link, incident, oncall_user):
    oncall_user.groups.clear()
    response = client.post(call_link, {"Digits": "1"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/xml")
    spoken = response.content.decode()
    assert "no longer has a role that may acknowledge incidents" in spoken
    assert "Ask an administrator" in spoken
    incident.refresh_from_db()
    assert incident.status == Incident.Status.TRIGGERED


def test_expired_call_link_is_spoken_with_200(client, incident, oncall_user):
    url = reverse("acknowledge-call", args=[expired_token(oncall_user, incident)])
    response = client.post(url, {"Digits": "1"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/xml")
    assert "This acknowledge link is no longer valid." in response.content.decode()
    incident.refresh_from_db()
    assert incident.status == Incident.Status.TRIGGERED


def test_call_endpoint_takes_only_post(client, call_link):
    assert client.get(call_link).status_code == 405


def sign_like_twilio(auth_token, url, params):
    """Independent of the view: Twilio's documented scheme."""
    data = url + "".join(f"{name}{params[name]}" for name in sorted(params))
    return base64.b64encode(hmac.new(auth_token.encode(), data.encode(),
                                     hashlib.sha1).digest()).decode()


def test_signature_matches_twilios_published_example():
    params = QueryDict(mutable=True)
    params.update({"CallSid": "CA1234567890ABCDE", "Caller": "+12349013030",
                   "Digits": "1234", "From": "+12349013030", "To": "+18005551212"})
    assert twilio_signature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2",
                            params) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", params


@pytest.fixture
def twilio_settings(settings):
    settings.TOCSIN_TWILIO_AUTH_TOKEN = "auth-token-123"
    settings.TOCSIN_PUBLIC_URL = "https://tocsin.example.org"
    settings.ALLOWED_HOSTS = ["*"]
    return settings


def test_call_with_a_good_signature_acknowledges(client, twilio_settings, call_link,
                                                 incident):
    params = {"Digits": "1", "CallSid": "CA42", "From": "+4915112345678"}
    signature = sign_like_twilio("auth-token-123", "https://tocsin.example.org" + call_link,
                                 params)
    # Behind a proxy the Host header is the internal one: it plays no part.
    response = client.post(call_link, params, HTTP_X_TWILIO_SIGNATURE=signature,
                           HTTP_HOST="10.0.0.5:8000")
    assert response.status_code == 200
    incident.refresh_from_db()
    assert incident.status == Incident.Status.ACKNOWLEDGED


@pytest.mark.parametrize("signature", ["", "bm90IGEgc2lnbmF0dXJl", "garbage ✓"])
def test_call_with_a_bad_or_missing_signature_is_refused_with_403(
        client, twilio_settings, call_link, incident, signature):
    headers = {"HTTP_X_TWILIO_SIGNATURE": signature} if signature else {}
    response = client.post(call_link, {"Digits": "1"}, **headers)
    assert response.status_code == 403
    incident.refresh_from_db()
    assert incident.status == Incident.Status.TRIGGERED


def test_call_signed_for_the_host_header_instead_of_the_public_url_is_refused(
        client, twilio_settings, call_link, incident):
    params = {"Digits": "1"}
    signature = sign_like_twilio("auth-token-123", "http://evil.example" + call_link, params)
    response = client.post(call_link, params, HTTP_X_TWILIO_SIGNATURE=signature,
                           HTTP_HOST="evil.example")
    assert response.status_code == 403


def test_call_signed_with_other_params_is_refused(client, twilio_settings, call_link,
                                                  incident):
    signature = sign_like_twilio("auth-token-123", "https://tocsin.example.org" + call_link,
                                 {"Digits": "2"})
    response = client.post(call_link, {"Digits": "1"}, HTTP_X_TWILIO_SIGNATURE=signature)
    assert response.status_code == 403
    incident.refresh_from_db()
    assert incident.status == Incident.Status.TRIGGERED


def test_the_call_a_page_places_acknowledges_when_twilio_posts_the_key_back(
        settings, http_sink, inline, incident, oncall_user):
    """End to end: the voice page's TwiML names the action URL; Twilio signs its request
    with that URL and the auth token; pressing 1 acknowledges."""
    settings.TOCSIN_TWILIO_ACCOUNT_SID = "AC0123"
    settings.TOCSIN_TWILIO_AUTH_TOKEN = "tw-secret"
    settings.TOCSIN_TWILIO_FROM = "+15005550006"
    settings.TOCSIN_TWILIO_API_URL = http_sink.url
    settings.TOCSIN_PUBLIC_URL = "https://tocsin.example.com/portal"
    http_sink.default = Reply(201, {"sid": "CA0001", "status": "queued"})
    ContactMethod.objects.create(user=oncall_user, kind="voice", address="+12025550123")
    NotificationRule.objects.create(user=oncall_user, delay_minutes=0,
                                    contact_method=oncall_user.contact_methods.get())
    inline(page_user, incident, oncall_user)

    [request] = http_sink.requests
    action = re.search(r'action="([^"]+)"', request.form["Twiml"]).group(1)
    assert action.startswith("https://tocsin.example.com/portal/ack/")
    params = {"Digits": "1", "CallSid": "CA0001", "AccountSid": "AC0123"}
    signature = sign_like_twilio("tw-secret", action, params)
    path = action.removeprefix("https://tocsin.example.com/portal")
    response = Client().post(path, params, HTTP_X_TWILIO_SIGNATURE=signature)
    assert response.status_code == 200
    assert f"Incident {incident.number} acknowledged." in response.content.decode()
    incident.refresh_from_db()
    assert incident.status == Incident.Status.ACKNOWLEDGED
