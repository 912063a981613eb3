"""The incident page's "Pages" section: who was paged and how each message went."""

from django.urls import reverse

from oncall.models import Page, PersonalNotification
from tests.conftest import make_user


def incident_page(client, incident):
    return client.get(reverse("admin:incidents_incident_change", args=[incident.pk]))


def test_incident_page_says_nobody_was_paged(client, responder, incident):
    client.force_login(responder)
    assert "Nobody has been paged about this incident." in incident_page(client, incident).text


def test_incident_page_lists_each_page_with_its_messages_and_their_outcome(
        client, responder, incident):
    paged = make_user("pia")
    page = Page.objects.create(incident=incident, user=paged, reason="by hand")
    PersonalNotification.objects.create(
        page=page, incident=incident, user=paged, kind="sms", purpose="page",
        address="+4915112345678", dedup_key="page:sms", status="failed",
        error="HTTP 400: Invalid 'To' Phone Number")
    PersonalNotification.objects.create(
        page=page, incident=incident, user=paged, kind="email", purpose="page",
        address="pia@example.com", dedup_key="page:email", status="sent")
    client.force_login(responder)
    text = incident_page(client, incident).text
    assert "<strong>pia</strong> paged" in text and "(by hand)" in text
    assert "+4915112345678" in text and "Invalid &#x27;To&#x27; Phone Number" in text
    assert 'tocsin-badge--failed">Failed' in text
    assert "pia@example.com" in text and 'tocsin-badge--sent">Sent' in text
