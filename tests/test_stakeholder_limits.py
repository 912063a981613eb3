"""Stakeholder messages are no open relay (docs/notifications.md): plain addresses only in
the allowed domains, at most TOCSIN_STAKEHOLDER_MAX_RECIPIENTS addresses per alert, and
everything dropped recorded with its reason on the alert, the notification and the note."""

import json

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User

from incidents.models import Team
from integrations.models import Alert
from notifications import stakeholders
from notifications.models import Notification
from notifications.stakeholders import LOOKUP_CHUNK, RECORD_BYTES, Stakeholders, counted

OVER_50 = "over the limit of 50 recipients per alert"
REFUSED = "domain not allowed for stakeholder email"
NO_PLAIN = "plain addresses are not allowed (no stakeholder email domain is set)"


@pytest.fixture
def example_org(settings):
    settings.TOCSIN_STAKEHOLDER_EMAIL_DOMAINS = ["example.org"]


@pytest.fixture
def people(db):
    alice = User.objects.create_user("alice", "alice@corp.test")
    bob = User.objects.create_user("bob", "bob@elsewhere.test")
    payments = Team.objects.create(name="Payments")
    payments.members.add(bob)
    return {"alice": alice, "bob": bob, "team": payments}


@pytest.fixture
def post_alert(client, integration, run_tasks, deliver_inline,
               django_capture_on_commit_callbacks):
    def post(stakeholders, subject="Checkout is down"):
        body = {"message": "Checkout down", "alert_type": "critical",
                "stakeholders": stakeholders,
                "stakeholders_comms": {"subject": subject, "body": "We are on it."}}
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(f"/api/events/{integration.key}/", data=json.dumps(body),
                                   content_type="application/json")
        assert response.status_code == 200, response.content
        return Alert.objects.get(inbound_event__trace_id=response.json()["trace_id"])
    return post


def mailed(smtp_sink) -> list[str]:
    return [address for message in smtp_sink.messages for address in message["to"]]


def test_the_defaults_are_50_recipients_and_no_plain_domain():
    assert django_settings.TOCSIN_STAKEHOLDER_MAX_RECIPIENTS == 50
    assert django_settings.TOCSIN_STAKEHOLDER_EMAIL_DOMAINS == []


def test_two_thousand_addresses_reach_only_the_first_fifty(example_org, post_alert, smtp_sink):
    addresses = [f"person{n}@example.org" for n in range(2000)]
    alert = post_alert({"emails": addresses})

    [message] = smtp_sink.messages
    assert message["to"] == addresses[:50]
    assert message["message"]["Subject"] == "Checkout is down"
    assert "To" not in message["message"]  # Bcc: recipients do not see each other

    # The first of the 1,950 dropped are recorded one by one, the rest counted.
    dropped = alert.extra["stakeholders_dropped"]
    *listed, rest = dropped
    assert listed == [{"emails": a, "reason": OVER_50} for a in addresses[50:50 + len(listed)]]
    assert rest == {"more": 1950 - len(listed), "reason": OVER_50}
    assert len(json.dumps(dropped)) < RECORD_BYTES + 100
    notification = Notification.objects.get(type="stakeholders")
    assert notification.recipients == addresses[:50]
    assert notification.ignored == dropped
    note = alert.incident.timeline.get(kind="note")
    assert note.message == (
        "Stakeholder message sent to 50 recipient(s); ignored: person50@example.org, "
        "person51@example.org, person52@example.org, person53@example.org, "
        f"person54@example.org and 1945 more ({OVER_50})"
    )
    assert note.data["ignored_count"] == 1950


def test_the_limit_counts_unique_addresses_after_teams_are_expanded(
    settings, example_org, post_alert, smtp_sink, db
):
    settings.TOCSIN_STAKEHOLDER_MAX_RECIPIENTS = 3
    team = Team.objects.create(name="Support")
    members = [User.objects.create_user(f"agent{n}", f"agent{n}@corp.test") for n in range(3)]
    team.members.add(*members)
    alert = post_alert({"users": ["agent0", "AGENT0@corp.test"], "teams": ["Support"],
                        "emails": ["Agent1@Corp.test", "late@example.org"]})

    assert mailed(smtp_sink) == ["agent0@corp.test", "agent1@corp.test", "agent2@corp.test"]
    over = "over the limit of 3 recipients per alert"
    assert alert.extra["stakeholders_dropped"] == [
        {"emails": "Agent1@Corp.test", "reason": over},
        {"emails": "late@example.org", "reason": over},
    ]


def test_an_address_outside_the_allowed_domains_is_dropped(example_org, post_alert,
                                                           smtp_sink):
    alert = post_alert({"emails": ["cfo@example.org", "mallory@evil.test",
                                   "x@example.org.evil.test", "y@notexample.org"]})
    assert mailed(smtp_sink) == ["cfo@example.org"]
    assert alert.extra["stakeholders_dropped"] == [
        {"emails": "mallory@evil.test", "reason": REFUSED},
        {"emails": "x@example.org.evil.test", "reason": REFUSED},
        {"emails": "y@notexample.org", "reason": REFUSED},
    ]
    note = alert.incident.timeline.get(kind="note")
    assert f"mallory@evil.test, x@example.org.evil.test, y@notexample.org ({REFUSED})" \
        in note.message


def test_a_subdomain_is_not_the_domain_unless_it_is_listed_too(settings, post_alert,
                                                               smtp_sink):
    settings.TOCSIN_STAKEHOLDER_EMAIL_DOMAINS = ["example.org"]
    alert = post_alert({"emails": ["a@evil.com.example.org", "b@ops.example.org"]})
    assert smtp_sink.messages == []
    assert [d["emails"] for d in alert.extra["stakeholders_dropped"]] == [
        "a@evil.com.example.org", "b@ops.example.org"]

    settings.TOCSIN_STAKEHOLDER_EMAIL_DOMAINS = ["example.org", "ops.example.org"]
    post_alert({"emails": ["a@evil.com.example.org", "b@ops.example.org"]}, subject="Again")
    assert mailed(smtp_sink) == ["b@ops.example.org"]


def test_domains_match_whatever_their_case(settings, post_alert, smtp_sink):
    settings.TOCSIN_STAKEHOLDER_EMAIL_DOMAINS = ["Example.ORG"]
    alert = post_alert({"emails": ["CFO@EXAMPLE.org", "ceo@example.Org"]})
    assert mailed(smtp_sink) == ["cfo@example.org", "ceo@example.org"]
    assert "stakeholders_dropped" not in alert.extra


def test_users_and_teams_are_mailed_when_no_plain_domain_is_allowed(people, post_alert,
                                                                    smtp_sink):
    alert = post_alert({"users": ["alice"], "teams": ["Payments"],
                        "emails": ["cfo@example.org"]})
    assert mailed(smtp_sink) == ["alice@corp.test", "bob@elsewhere.test"]
    assert alert.extra["stakeholders_dropped"] == [
        {"emails": "cfo@example.org", "reason": NO_PLAIN}]
    notification = Notification.objects.get(type="stakeholders")
    assert notification.ignored == [{"emails": "cfo@example.org", "reason": NO_PLAIN}]


def test_only_refused_addresses_send_nothing_and_say_why(post_alert, smtp_sink):
    alert = post_alert({"emails": ["cfo@example.org"]})
    assert smtp_sink.messages == [] and not Notification.objects.exists()
    note = alert.incident.timeline.get(kind="note")
    assert note.message == ("No stakeholder could be reached; ignored: cfo@example.org "
                            f"({NO_PLAIN})")


def test_once_the_limit_is_reached_later_names_are_dropped_unread(
    people, django_assert_max_num_queries
):
    resolver = Stakeholders(limit=1, domains=[])
    with django_assert_max_num_queries(2):
        recipients, dropped = resolver.resolve(
            {"users": ["alice"] + [f"ghost{n}" for n in range(500)], "teams": ["Payments"]})
    assert recipients == ["alice@corp.test"]
    assert counted(dropped) == 501
    assert {d["reason"] for d in dropped} == {"over the limit of 1 recipients per alert"}


# --- what a long list costs ---------------------------------------------------------------

NO_USER = "no active user with an email address"
NO_TEAM = "no such team"


def names(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{n}" for n in range(count)]


def reasons(dropped: list[dict]) -> dict[str, int]:
    """How many entries were dropped for each reason, counted or listed."""
    totals = {}
    for item in dropped:
        totals[item["reason"]] = totals.get(item["reason"], 0) + item.get("more", 1)
    return totals


def test_thousands_of_unknown_names_cost_two_queries(db, django_assert_max_num_queries):
    resolver = Stakeholders(limit=50, domains=["example.org"])
    with django_assert_max_num_queries(2):  # 500 names read, 300 per query
        recipients, dropped = resolver.resolve({
            "users": names("ghost", 3000), "teams": names("team", 3000),
            "emails": [f"p{n}@example.org" for n in range(3000)]})

    # Ten entries per recipient are read (500); the rest is dropped unread.
    assert recipients == []
    assert reasons(dropped) == {
        NO_USER: 500,
        "not examined: over the limit of 500 entries per alert": 8500,
    }


def test_with_a_higher_limit_queries_grow_by_chunks_not_by_names(
    db, django_assert_max_num_queries
):
    resolver = Stakeholders(limit=1000, domains=["example.org"])  # 10,000 entries read
    with django_assert_max_num_queries(2 * 3000 // LOOKUP_CHUNK):
        recipients, dropped = resolver.resolve({
            "users": names("ghost", 3000), "teams": names("team", 3000),
            "emails": [f"p{n}@example.org" for n in range(3000)]})
    assert len(recipients) == 1000
    assert reasons(dropped) == {NO_USER: 3000, NO_TEAM: 3000,
                                "over the limit of 1000 recipients per alert": 2000}


def test_past_ten_entries_per_recipient_the_rest_is_not_examined(db):
    resolver = Stakeholders(limit=2, domains=["example.org"])
    recipients, dropped = resolver.resolve({
        "users": names("ghost", 15), "teams": names("team", 10), "emails": ["a@example.org"]})
    unread = "not examined: over the limit of 20 entries per alert"
    assert recipients == []
    assert dropped == ([{"users": name, "reason": NO_USER} for name in names("ghost", 15)]
                       + [{"teams": name, "reason": NO_TEAM} for name in names("team", 5)]
                       + [{"teams": f"team{n}", "reason": unread} for n in range(5, 10)]
                       + [{"emails": "a@example.org", "reason": unread}])


@pytest.mark.parametrize("chunk", [1, 2, 300])
def test_names_match_as_they_did_one_by_one_whatever_the_chunk(chunk, monkeypatch, db):
    monkeypatch.setattr(stakeholders, "LOOKUP_CHUNK", chunk)
    ann = User.objects.create_user("Ann", "ann@corp.test")
    twin = User.objects.create_user("twin", "ANN@corp.test")  # the same address, a later id
    numbered = User.objects.create_user(str(ann.pk), "numbered@corp.test")
    User.objects.create_user("nomail", "")
    gone = User.objects.create_user("gone", "gone@corp.test", is_active=False)
    ops = Team.objects.create(name="Ops")
    ops.members.add(numbered, gone, twin)
    Team.objects.create(name="OPS").members.add(User.objects.create_user("o", "o@corp.test"))
    empty = Team.objects.create(name="Empty")
    # One by one, ".first()" chose among teams of the same name (by the database's order).
    first_ops = Team.objects.filter(name__iexact="ops").first()
    members = first_ops.members.filter(is_active=True).exclude(email="").order_by("pk")

    recipients, dropped = Stakeholders(limit=50, domains=["example.org"]).resolve({
        "users": [" ANN ", "ann@CORP.test", str(ann.pk), "nomail", "gone", "ghost"],
        "teams": ["oPs", empty.pk, "Nothing"],
        "emails": ["cfo@example.org", "numbered@corp.test"]})

    # str(ann.pk) is Ann's id and another user's name: the lower id, Ann, as before.
    assert recipients == list(dict.fromkeys(
        ["ann@corp.test"] + [m.email.lower() for m in members] + ["cfo@example.org"]))
    assert dropped == [
        {"users": "nomail", "reason": NO_USER},
        {"users": "gone", "reason": NO_USER},
        {"users": "ghost", "reason": NO_USER},
        {"teams": empty.pk, "reason": "the team has no members with email"},
        {"teams": "Nothing", "reason": NO_TEAM},
        {"emails": "numbered@corp.test", "reason": REFUSED},
    ]


def test_a_name_of_odd_digits_is_no_id_and_breaks_nothing(db):
    recipients, dropped = Stakeholders(limit=50, domains=[]).resolve(
        {"users": ["²", "9" * 30], "teams": ["٣", "9" * 30]})
    assert recipients == []
    assert [d["reason"] for d in dropped] == [NO_USER, NO_USER, NO_TEAM, NO_TEAM]


def test_a_long_entry_is_recorded_cut(db):
    _, dropped = Stakeholders(limit=50, domains=[]).resolve({"users": ["x" * 5000]})
    assert dropped == [{"users": "x" * 254 + "…", "reason": NO_USER}]


def test_a_hundred_thousand_names_leave_a_small_record(people, post_alert, smtp_sink):
    alert = post_alert({"users": ["alice"] + names("u", 50_000), "teams": names("t", 50_000)})

    assert mailed(smtp_sink) == ["alice@corp.test"]
    dropped = alert.extra["stakeholders_dropped"]
    assert counted(dropped) == 100_000
    assert len(json.dumps(dropped)) < 64 * 1024
    notification = Notification.objects.get(type="stakeholders")
    assert notification.ignored == dropped
    note = alert.incident.timeline.get(kind="note")
    assert note.data["ignored_count"] == 100_000
    assert note.message == (
        "Stakeholder message sent to 1 recipient(s); ignored: u0, u1, u2, u3, u4 and 494 more "
        "(no active user with an email address); "
        "99501 entries (not examined: over the limit of 500 entries per alert)")
