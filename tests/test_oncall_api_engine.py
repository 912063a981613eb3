"""The on-call API over the real engine and channels: who is on call and the final shifts
as the API answers them (daylight saving included), rotation edits that keep past shifts,
the iCalendar feed, addresses as the channels check them and a real test send."""

from datetime import UTC, date, datetime, time, timedelta
from time import perf_counter as time_now
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from icalendar import Calendar

from oncall.models import ContactMethod, Override, Rotation, Schedule
from tests.conftest import api_client_for, make_user
from tests.sinks import Reply


@pytest.fixture
def other(db):
    return make_user("otto", "Responder")


@pytest.fixture
def berlin(team, responder, other):
    """Daily 09:00 Berlin handoffs from Monday 1 March 2027: rita, otto, rita, otto…"""
    schedule = Schedule.objects.create(name="Primary", team=team, time_zone="Europe/Berlin")
    Rotation.objects.create(
        schedule=schedule, name="Days", shift_kind="daily", shift_length=1,
        handoff_date=date(2027, 3, 1), handoff_time=time(9), participants=[responder.pk,
                                                                            other.pk])
    return schedule


def on_call(client, schedule, at):
    response = client.get(f"/api/v1/schedules/{schedule.pk}/oncall/", {"at": at})
    assert response.status_code == 200, response.content
    return response.json()


def test_oncall_names_the_user_of_the_shift_at_that_instant(as_responder, berlin, other):
    # Tuesday 2 March, 09:30 in Berlin (CET): the second shift, otto's.
    assert on_call(as_responder, berlin, "2027-03-02T08:30:00Z") == {
        "at": "2027-03-02T08:30:00Z", "users": [{"id": other.pk, "username": "otto"}]}


def test_the_handoff_keeps_9_local_after_the_clocks_go_forward(as_responder, berlin,
                                                               responder, other):
    # Monday 29 March 2027, after Berlin's change to CEST on the 28th: 07:30Z is 09:30
    # local, so the 29th shift (rita's) has begun; a handoff fixed in UTC would still
    # show otto until 08:00Z.
    assert on_call(as_responder, berlin, "2027-03-29T07:30:00Z")["users"] == [
        {"id": responder.pk, "username": "rita"}]
    assert on_call(as_responder, berlin, "2027-03-29T08:30:00+02:00")["users"] == [
        {"id": other.pk, "username": "otto"}]


def test_shifts_are_the_final_intervals_with_overrides_marked(as_responder, berlin, manager,
                                                              responder, other):
    override = Override.objects.create(
        schedule=berlin, user=manager, replaces=other,
        start=datetime(2027, 3, 28, 12, tzinfo=UTC), end=datetime(2027, 3, 28, 14, tzinfo=UTC))
    response = as_responder.get(f"/api/v1/schedules/{berlin.pk}/shifts/", {
        "start": "2027-03-27T00:00:00Z", "end": "2027-03-30T00:00:00Z"})
    assert response.status_code == 200, response.content

    def shift(user, start, end, override_id=None):
        return {"user": user.pk, "username": user.username, "start": start, "end": end,
                "override": override_id}

    assert response.json() == [
        shift(other, "2027-03-27T00:00:00Z", "2027-03-27T08:00:00Z"),
        # 09:00 CET to 09:00 CEST: the night the clocks go forward, 23 hours.
        shift(responder, "2027-03-27T08:00:00Z", "2027-03-28T07:00:00Z"),
        shift(other, "2027-03-28T07:00:00Z", "2027-03-28T12:00:00Z"),
        shift(manager, "2027-03-28T12:00:00Z", "2027-03-28T14:00:00Z", override.pk),
        shift(other, "2027-03-28T14:00:00Z", "2027-03-29T07:00:00Z"),
        shift(responder, "2027-03-29T07:00:00Z", "2027-03-30T00:00:00Z"),
    ]


def test_nobody_on_call_gives_the_fallback_user(as_responder, berlin, manager):
    berlin.fallback_user = manager
    berlin.save()
    # Before the first handoff the rotation is inactive.
    assert on_call(as_responder, berlin, "2027-02-01T12:00:00Z")["users"] == [
        {"id": manager.pk, "username": "max"}]


def test_editing_participants_through_the_api_keeps_the_shifts_already_worked(
        team, manager, responder, other):
    schedule = Schedule.objects.create(name="Live", team=team, time_zone="America/New_York")
    rotation = Rotation.objects.create(
        schedule=schedule, name="Days", shift_kind="daily",
        handoff_date=(timezone.now() - timedelta(days=10)).date(), handoff_time=time(9),
        participants=[responder.pk, other.pk])
    client = api_client_for(manager)
    url = f"/api/v1/schedules/{schedule.pk}/shifts/"
    past = {"start": (timezone.now() - timedelta(days=5)).isoformat(),
            "end": (timezone.now() - timedelta(days=1)).isoformat()}
    before = client.get(url, past).json()

    response = client.patch(f"/api/v1/schedules/{schedule.pk}/", {
        "rotations": [{"id": rotation.pk, "participants": [manager.pk]}]}, format="json")

    assert response.status_code == 200, response.content
    assert client.get(url, past).json() == before
    in_two_days = (timezone.now() + timedelta(days=2)).isoformat()
    assert on_call(client, schedule, in_two_days)["users"] == [
        {"id": manager.pk, "username": "max"}]


def test_oncall_everywhere_lists_every_schedule_by_name(as_responder, berlin, team, manager,
                                                        other):
    Schedule.objects.create(name="Backup", team=team, fallback_user=manager)
    response = as_responder.get("/api/v1/oncall/", {"at": "2027-03-02T08:30:00Z"})
    assert response.status_code == 200, response.content
    assert response.json() == [
        {"schedule": {"id": Schedule.objects.get(name="Backup").pk, "name": "Backup"},
         "users": [{"id": manager.pk, "username": "max"}]},
        {"schedule": {"id": berlin.pk, "name": "Primary"},
         "users": [{"id": other.pk, "username": "otto"}]},
    ]


def test_the_ical_feed_holds_the_coming_shifts(as_responder, team, responder, other):
    schedule = Schedule.objects.create(name="Weekly", team=team, time_zone="Europe/Berlin")
    Rotation.objects.create(
        schedule=schedule, name="Weeks", shift_kind="weekly",
        handoff_date=date(2026, 1, 5), handoff_time=time(10),
        participants=[responder.pk, other.pk])
    response = as_responder.get(f"/api/v1/schedules/{schedule.pk}/ical/")
    assert response.status_code == 200
    events = Calendar.from_ical(response.content).walk("VEVENT")
    # 97 days of weekly shifts: 14 or 15 of them, alternating.
    assert 14 <= len(events) <= 16
    summaries = [str(event["SUMMARY"]) for event in events]
    assert set(summaries) == {"On call: rita (Weekly)", "On call: otto (Weekly)"}
    assert all(a != b for a, b in zip(summaries, summaries[1:], strict=False))
    assert len({str(event["UID"]) for event in events}) == len(events)
    handoffs = [event["DTSTART"].dt for event in events[1:]]
    assert all(start.astimezone(ZoneInfo("Europe/Berlin")).hour == 10 for start in handoffs)


# Contact methods as the channels check them


def test_a_phone_number_is_stored_in_e164(as_responder):
    response = as_responder.post("/api/v1/contact-methods/", {
        "kind": "sms", "address": "+49 151 1234 5678"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["address"] == "+4915112345678"
    assert ContactMethod.objects.get().address == "+4915112345678"


@pytest.mark.parametrize("kind,address", [
    ("sms", "0151 12345678"), ("voice", "+1 555"), ("email", "rita@"),
    ("ntfy", "ftp://ntfy.sh/rita"), ("ntfy", "https://ntfy.sh/"),
])
def test_a_bad_address_is_a_400_naming_the_address(as_responder, kind, address):
    response = as_responder.post("/api/v1/contact-methods/", {
        "kind": kind, "address": address}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["address"]
    assert not ContactMethod.objects.exists()


def test_changing_the_kind_checks_the_address_again(as_responder, responder):
    method = ContactMethod.objects.create(user=responder, kind="email",
                                          address="rita@example.com")
    response = as_responder.patch(f"/api/v1/contact-methods/{method.pk}/", {"kind": "sms"},
                                  format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["address"]


def test_a_real_test_send_answers_what_the_ntfy_server_said(as_responder, responder,
                                                            http_sink):
    method = ContactMethod.objects.create(user=responder, kind="ntfy",
                                          address=f"{http_sink.url}/rita-pages")
    sent = as_responder.post(f"/api/v1/contact-methods/{method.pk}/test/")
    assert sent.status_code == 201, sent.content
    assert (sent.json()["status"], sent.json()["response_status"]) == ("sent", 200)
    [request] = http_sink.requests
    assert request.path == "/rita-pages"

    http_sink.reply(Reply(403, {"error": "forbidden"}))
    refused = as_responder.post(f"/api/v1/contact-methods/{method.pk}/test/")
    assert refused.status_code == 201
    assert refused.json()["status"] == "failed"
    assert "HTTP 403" in refused.json()["error"]


def test_an_unknown_time_zone_is_a_400_naming_it(api_client_for_manager, team):
    response = api_client_for_manager.post("/api/v1/schedules/", {
        "name": "Mars", "team": team.pk, "time_zone": "Mars/Olympus_Mons"}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["time_zone"]


def test_a_malformed_restriction_is_a_400_naming_the_entry(api_client_for_manager, team,
                                                           responder):
    response = api_client_for_manager.post("/api/v1/schedules/", {
        "name": "Nights", "team": team.pk, "rotations": [{
            "name": "N", "handoff": "2027-03-01T22:00", "participants": [responder.pk],
            "restrictions": [{"weekdays": [0], "start": "22:00", "end": "06:00"},
                             {"weekdays": [7], "start": "22:00", "end": "06:00"}]}]},
        format="json")
    assert response.status_code == 400
    [problem] = response.json()["rotations"]["0"]["restrictions"]
    assert problem.startswith("Restriction 2: weekday 7")


@pytest.fixture
def api_client_for_manager(manager):
    return api_client_for(manager)


def test_a_year_of_a_three_layer_schedule_comes_back_whole_and_quickly(
        as_responder, berlin, manager, responder, other):
    Rotation.objects.create(
        schedule=berlin, name="Hours", layer=2, shift_kind="hourly", shift_length=6,
        handoff_date=date(2027, 1, 1), handoff_time=time(0), participants=[manager.pk],
        restrictions=[{"weekdays": [5, 6], "start": "22:00", "end": "06:00"}])
    Rotation.objects.create(
        schedule=berlin, name="Weeks", layer=0, shift_kind="weekly",
        handoff_date=date(2026, 12, 28), handoff_time=time(9), participants=[other.pk])
    berlin.fallback_user = manager
    berlin.save()
    started = time_now()
    response = as_responder.get(f"/api/v1/schedules/{berlin.pk}/shifts/", {
        "start": "2027-01-01T00:00:00Z", "end": "2028-01-01T00:00:00Z"})
    elapsed = time_now() - started
    assert response.status_code == 200, response.content
    rows = response.json()
    # With a fallback user someone is always on call: the intervals tile the year.
    assert rows[0]["start"] == "2027-01-01T00:00:00Z"
    assert rows[-1]["end"] == "2028-01-01T00:00:00Z"
    ends = {row["end"] for row in rows}
    assert all(row["start"] in ends for row in rows[1:])
    assert {row["username"] for row in rows} == {"rita", "otto", "max"}
    assert elapsed < 3, f"a year of shifts took {elapsed:.2f}s"
