"""Stakeholder messages are no open relay (docs/notifications.md): plain addresses only in
the allowed domains, at most TOCSIN_STAKEHOLDER_MAX_RECIPIENTS addresses per alert, and
everything dropped recorded with its reason on the alert, the notification and the note."""

import json

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User

from incidents.models import Team
from integrations.models import Alert
from notifications.models import Notification
from notifications.stakeholders import Stakeholders

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

    dropped = alert.extra["stakeholders_dropped"]
    assert dropped == [{"emails": a, "reason": OVER_50} for a in addresses[50:]]
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
    assert len(dropped) == 501
    assert {d["reason"] for d in dropped} == {"over the limit of 1 recipients per alert"}
