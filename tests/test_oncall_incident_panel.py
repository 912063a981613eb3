"""The incident page's "Pages" section: who was paged and how each message went."""

from django.contrib.auth.models import Permission
from django.urls import reverse

from incidents import lifecycle
from oncall.models import Page, PersonalNotification
from tests.conftest import api_client_for, make_user


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
    assert "Invalid &#x27;To&#x27; Phone Number" in text
    assert 'tocsin-badge--failed">Failed' in text and 'tocsin-badge--sent">Sent' in text
    # Addresses are their owner's: everyone who sees the incident sees this section.
    assert "+4915112345678" not in text and "pia@example.com" not in text


# Paging someone by hand (adding a responder)


def test_responder_pages_someone_from_the_incident_page(client, responder, incident, mailoutbox,
                                                        django_capture_on_commit_callbacks):
    paged = make_user("pia")
    paged.email = "pia@example.com"
    paged.save()
    client.force_login(responder)
    page_html = incident_page(client, incident).text
    assert 'formaction="/admin/oncall/personalnotification/page-for-incident/' in page_html
    with django_capture_on_commit_callbacks():
        response = client.post(
            reverse("admin:oncall_personalnotification_page", args=[incident.pk]),
            {"page_user": paged.pk, "title": "fields of the incident form are ignored"})
    assert response.status_code == 302
    page = Page.objects.get()
    assert (page.incident, page.user, page.reason) == (incident, paged, "paged by rita")
    [message] = page.notifications.all()
    # No rules: an email at once to the account address.
    assert (message.kind, message.address) == ("email", "pia@example.com")
    assert incident.timeline.filter(kind="page", actor=responder).exists()
    incident.refresh_from_db()
    assert incident.title == "Disk full on db-1"
    assert "Paged pia" in client.get(response.url).text


def test_nobody_is_paged_about_a_resolved_incident(client, responder, incident):
    lifecycle.resolve(incident)
    client.force_login(responder)
    assert "Page someone" not in incident_page(client, incident).text
    client.post(reverse("admin:oncall_personalnotification_page", args=[incident.pk]),
                {"page_user": responder.pk})
    assert not Page.objects.exists()


def test_paging_needs_the_add_page_permission(client, incident):
    viewer = make_user("vera")
    viewer.user_permissions.add(Permission.objects.get(codename="view_incident"))
    client.force_login(viewer)
    response = client.post(
        reverse("admin:oncall_personalnotification_page", args=[incident.pk]),
        {"page_user": viewer.pk})
    assert response.status_code == 403
    assert not Page.objects.exists()


def test_api_pages_someone_and_lists_the_pages_with_their_messages(responder, incident):
    paged = make_user("pia")
    client = api_client_for(responder)
    response = client.post(f"/api/v1/incidents/{incident.pk}/pages/",
                           {"user": paged.pk, "reason": "need a DBA"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["user"], body["reason"], body["step"], body["loop"]) == (
        paged.pk, "need a DBA", None, 0)
    # pia has no rules and no email address: the page is recorded, and says nobody was told.
    [message] = body["notifications"]
    assert (message["kind"], message["status"]) == ("email", "failed")
    listed = client.get(f"/api/v1/incidents/{incident.pk}/pages/").json()
    assert [page["id"] for page in listed["results"]] == [body["id"]]


def test_api_refuses_a_page_about_a_resolved_incident_and_an_unknown_person(responder,
                                                                            incident):
    client = api_client_for(responder)
    unknown = client.post(f"/api/v1/incidents/{incident.pk}/pages/", {"user": 9999},
                          format="json")
    assert unknown.status_code == 400 and "user" in unknown.json()
    lifecycle.resolve(incident)
    resolved = client.post(f"/api/v1/incidents/{incident.pk}/pages/", {"user": responder.pk},
                           format="json")
    assert resolved.status_code == 409
    assert "resolved" in resolved.json()["detail"]
    assert client.post("/api/v1/incidents/999999/pages/", {"user": responder.pk},
                       format="json").status_code == 404
    assert not Page.objects.exists()


def test_api_pages_need_a_role(incident):
    outsider = api_client_for(make_user("olaf"))
    assert outsider.get(f"/api/v1/incidents/{incident.pk}/pages/").status_code == 403
    assert outsider.post(f"/api/v1/incidents/{incident.pk}/pages/", {"user": 1},
                         format="json").status_code == 403
