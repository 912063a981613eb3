"""The on-call REST API (docs/api.md#on-call): users, contact methods, notification rules
and who may edit whose; the send-test action. Schedules, overrides and who is on call are
in tests/test_oncall_schedules_api.py."""

import pytest
from django.contrib.auth.models import User

from oncall import api as oncall_api
from oncall.models import ContactMethod, NotificationRule, PersonalNotification
from tests.conftest import api_client_for, make_user


@pytest.fixture
def other(db):
    return make_user("otto", "Responder")


def email_of(user, address=None):
    return ContactMethod.objects.create(user=user, kind="email",
                                        address=address or f"{user.username}@example.com")


# Users


def test_any_role_member_lists_active_users_by_username(responder, manager, other):
    User.objects.filter(pk=make_user("gone", "Responder").pk).update(is_active=False)
    response = api_client_for(responder).get("/api/v1/users/")
    assert response.status_code == 200
    rows = response.json()["results"]
    assert [row["username"] for row in rows] == ["max", "otto", "rita"]
    assert rows[0] == {"id": manager.pk, "username": "max", "email": ""}


def test_a_user_without_a_role_may_not_list_users(db):
    assert api_client_for(make_user("nora", staff=False)).get("/api/v1/users/").status_code \
        == 403
    assert api_client_for(None).get("/api/v1/users/").status_code == 401


def test_users_are_read_only(as_manager):
    response = as_manager.post("/api/v1/users/", {"username": "new"}, format="json")
    assert response.status_code == 405
    assert not User.objects.filter(username="new").exists()


# Contact methods


def test_a_responders_contact_method_is_their_own_by_default(as_responder, responder):
    response = as_responder.post("/api/v1/contact-methods/", {
        "kind": "email", "address": " rita@example.com ", "label": "Work"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["user"] == responder.pk
    assert body["enabled"] is True
    stored = ContactMethod.objects.get(pk=body["id"])
    assert (stored.user, stored.address, stored.label) == (responder, "rita@example.com", "Work")


def test_a_responder_sees_only_their_own_contact_methods(as_responder, responder, other):
    mine = email_of(responder)
    theirs = email_of(other)
    rows = as_responder.get("/api/v1/contact-methods/").json()["results"]
    assert [row["id"] for row in rows] == [mine.pk]
    assert as_responder.get(f"/api/v1/contact-methods/{theirs.pk}/").status_code == 404
    assert as_responder.patch(f"/api/v1/contact-methods/{theirs.pk}/", {"enabled": False},
                              format="json").status_code == 404
    assert as_responder.delete(f"/api/v1/contact-methods/{theirs.pk}/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.enabled


def test_a_responder_may_not_add_a_contact_method_for_someone_else(as_responder, other):
    response = as_responder.post("/api/v1/contact-methods/", {
        "user": other.pk, "kind": "email", "address": "x@example.com"}, format="json")
    assert response.status_code == 403
    assert response.json() == {"detail": "You may only manage your own contact methods."}
    assert not ContactMethod.objects.exists()


def test_a_responder_edits_and_deletes_their_own(as_responder, responder):
    mine = email_of(responder)
    response = as_responder.patch(f"/api/v1/contact-methods/{mine.pk}/", {"enabled": False},
                                  format="json")
    assert response.status_code == 200, response.content
    mine.refresh_from_db()
    assert mine.enabled is False
    assert as_responder.delete(f"/api/v1/contact-methods/{mine.pk}/").status_code == 204
    assert not ContactMethod.objects.exists()


def test_a_manager_keeps_anyones_contact_methods(as_manager, responder, other):
    created = as_manager.post("/api/v1/contact-methods/", {
        "user": other.pk, "kind": "email", "address": "otto@example.com"}, format="json")
    assert created.status_code == 201, created.content
    assert ContactMethod.objects.get(pk=created.json()["id"]).user == other
    email_of(responder)
    rows = as_manager.get("/api/v1/contact-methods/").json()["results"]
    assert [row["user"] for row in rows] == sorted([responder.pk, other.pk])
    filtered = as_manager.get(f"/api/v1/contact-methods/?user={other.pk}").json()["results"]
    assert [row["user"] for row in filtered] == [other.pk]


def test_a_contact_method_never_moves_to_another_user(as_manager, responder, other):
    method = email_of(responder)
    response = as_manager.patch(f"/api/v1/contact-methods/{method.pk}/", {"user": other.pk},
                                format="json")
    assert response.status_code == 400
    assert "user" in response.json()
    method.refresh_from_db()
    assert method.user == responder


def test_the_same_address_twice_is_a_400_naming_the_address(as_responder, responder):
    email_of(responder, "rita@example.com")
    response = as_responder.post("/api/v1/contact-methods/", {
        "kind": "email", "address": "rita@example.com"}, format="json")
    assert response.status_code == 400
    assert response.json() == {"address": ["This user already has this email address."]}


def test_an_unknown_kind_is_a_400_naming_the_kind(as_responder):
    response = as_responder.post("/api/v1/contact-methods/", {
        "kind": "pigeon", "address": "loft 3"}, format="json")
    assert response.status_code == 400
    assert "kind" in response.json()


def test_a_user_without_a_role_has_no_contact_methods_api(db):
    client = api_client_for(make_user("nora"))
    assert client.get("/api/v1/contact-methods/").status_code == 403
    assert client.post("/api/v1/contact-methods/", {"kind": "email", "address": "n@x.org"},
                       format="json").status_code == 403


# Sending a test


@pytest.fixture
def failing_test_send(monkeypatch):
    """The channels' send_test, replaced by one whose send failed: the endpoint's part is
    to call it for the right contact method and to answer with the record."""
    calls = []

    def send_test(method, *, actor=None):
        calls.append((method, actor))
        return PersonalNotification.objects.create(
            user=method.user, contact_method=method, kind=method.kind, address=method.address,
            purpose=PersonalNotification.Purpose.TEST, dedup_key=f"test-{len(calls)}",
            status=PersonalNotification.Status.FAILED, attempts=1, response_status=400,
            error="Twilio refused the number (400)")

    monkeypatch.setattr(oncall_api.sending, "send_test", send_test)
    return calls


def test_send_test_answers_the_notification_with_its_outcome(as_responder, responder,
                                                             failing_test_send):
    method = email_of(responder)
    response = as_responder.post(f"/api/v1/contact-methods/{method.pk}/test/")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "failed"
    assert body["error"] == "Twilio refused the number (400)"
    assert body["purpose"] == "test"
    assert body["contact_method"] == method.pk
    assert failing_test_send == [(method, responder)]


def test_a_responder_cannot_test_someone_elses_contact_method(as_responder, other,
                                                              failing_test_send):
    theirs = email_of(other)
    assert as_responder.post(f"/api/v1/contact-methods/{theirs.pk}/test/").status_code == 404
    assert failing_test_send == []


def test_a_manager_tests_anyones_contact_method(as_manager, other, failing_test_send):
    theirs = email_of(other)
    assert as_manager.post(f"/api/v1/contact-methods/{theirs.pk}/test/").status_code == 201
    assert failing_test_send[0][0] == theirs


# Notification rules


def test_a_rule_belongs_to_its_contact_methods_user_by_default(as_responder, responder):
    method = email_of(responder)
    response = as_responder.post("/api/v1/notification-rules/", {
        "contact_method": method.pk, "delay_minutes": 5}, format="json")
    assert response.status_code == 201, response.content
    rule = NotificationRule.objects.get(pk=response.json()["id"])
    assert (rule.user, rule.contact_method, rule.delay_minutes) == (responder, method, 5)
    assert response.json()["user"] == responder.pk


def test_a_responder_may_not_add_rules_on_someone_elses_contact_method(as_responder, other):
    method = email_of(other)
    others = as_responder.post("/api/v1/notification-rules/", {
        "contact_method": method.pk}, format="json")
    missing = as_responder.post("/api/v1/notification-rules/", {
        "contact_method": method.pk + 1000}, format="json")
    # Told apart from an id that does not exist, it would say whose ids exist.
    assert others.status_code == missing.status_code == 400
    assert others.json()["contact_method"][0].replace(str(method.pk), "N") == \
        missing.json()["contact_method"][0].replace(str(method.pk + 1000), "N")
    assert not NotificationRule.objects.exists()


def test_a_responder_may_not_add_rules_for_someone_else(as_responder, responder, other):
    response = as_responder.post("/api/v1/notification-rules/", {
        "user": other.pk, "contact_method": email_of(responder).pk}, format="json")
    assert response.status_code == 403
    assert response.json() == {"detail": "You may only manage your own notification rules."}
    assert not NotificationRule.objects.exists()


def test_a_rules_contact_method_must_be_its_users(as_manager, responder, other):
    response = as_manager.post("/api/v1/notification-rules/", {
        "user": responder.pk, "contact_method": email_of(other).pk}, format="json")
    assert response.status_code == 400
    assert response.json() == {"contact_method": ["Pick one of this user's contact methods."]}


@pytest.mark.parametrize("delay", [-1, 1441, "soon"])
def test_a_delay_outside_a_day_is_a_400(as_responder, responder, delay):
    response = as_responder.post("/api/v1/notification-rules/", {
        "contact_method": email_of(responder).pk, "delay_minutes": delay}, format="json")
    assert response.status_code == 400
    assert "delay_minutes" in response.json()


def test_two_rules_at_the_same_delay_on_one_method_are_a_400(as_responder, responder):
    method = email_of(responder)
    NotificationRule.objects.create(user=responder, contact_method=method, delay_minutes=0)
    response = as_responder.post("/api/v1/notification-rules/", {"contact_method": method.pk},
                                 format="json")
    assert response.status_code == 400
    assert response.json() == {
        "delay_minutes": ["This contact method already has a rule at 0 minutes."]}


def test_a_responder_sees_and_edits_only_their_own_rules(as_responder, responder, other):
    mine = NotificationRule.objects.create(user=responder, contact_method=email_of(responder))
    theirs = NotificationRule.objects.create(user=other, contact_method=email_of(other))
    rows = as_responder.get("/api/v1/notification-rules/").json()["results"]
    assert [row["id"] for row in rows] == [mine.pk]
    assert as_responder.patch(f"/api/v1/notification-rules/{theirs.pk}/",
                              {"delay_minutes": 9}, format="json").status_code == 404
    response = as_responder.patch(f"/api/v1/notification-rules/{mine.pk}/",
                                  {"delay_minutes": 9}, format="json")
    assert response.status_code == 200, response.content
    mine.refresh_from_db()
    assert mine.delay_minutes == 9


def test_a_manager_lists_everyones_rules_by_user_then_delay(as_manager, responder, other):
    late = NotificationRule.objects.create(user=responder, contact_method=email_of(responder),
                                           delay_minutes=10)
    early = NotificationRule.objects.create(user=responder, contact_method=late.contact_method,
                                            delay_minutes=0)
    theirs = NotificationRule.objects.create(user=other, contact_method=email_of(other))
    rows = as_manager.get("/api/v1/notification-rules/").json()["results"]
    by_user = sorted([(responder.pk, [early.pk, late.pk]), (other.pk, [theirs.pk])])
    assert [row["id"] for row in rows] == [pk for _, pks in by_user for pk in pks]


def test_a_duplicate_that_slips_past_the_check_meets_the_constraint_as_a_400(
        as_responder, responder, monkeypatch):
    """Two requests racing: both pass the serializer's check, the database refuses one."""
    email_of(responder, "rita@example.com")
    monkeypatch.setattr(ContactMethod.objects, "filter",
                        lambda *a, **k: ContactMethod.objects.none(), raising=False)
    response = as_responder.post("/api/v1/contact-methods/", {
        "kind": "email", "address": "rita@example.com"}, format="json")
    assert response.status_code == 400
    assert response.json() == {"address": ["This user already has this address."]}
    assert ContactMethod.objects.count() == 1
