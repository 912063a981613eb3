"""Schedules through the REST API (docs/api.md#on-call): rotations written inline and
edited in place, overrides and who may add or delete them, who is on call, shifts and the
iCalendar feed."""

from datetime import UTC, datetime, timedelta

import pytest
from icalendar import Calendar

from oncall import ical
from oncall.models import Override, Rotation, Schedule
from oncall.shifts import Shift
from tests.conftest import api_client_for, make_user


@pytest.fixture
def other(db):
    return make_user("otto", "Responder")


@pytest.fixture
def schedule(team, responder, other):
    schedule = Schedule.objects.create(name="Primary", team=team, time_zone="Europe/Berlin")
    Rotation.objects.create(
        schedule=schedule, name="Weekdays", layer=1, shift_kind="daily", shift_length=1,
        handoff_date=datetime(2027, 3, 1).date(), handoff_time=datetime(2027, 3, 1, 9).time(),
        participants=[responder.pk, other.pk])
    return schedule


def rotation_entry(*participants, **fields):
    return {"name": "Primary", "layer": 1, "shift_kind": "weekly", "shift_length": 1,
            "handoff": "2027-03-01T09:00", "participants": [u.pk for u in participants],
            "restrictions": [], **fields}


# Schedules and their rotations


def test_a_manager_creates_a_schedule_with_rotations_inline(as_manager, team, responder, other):
    response = as_manager.post("/api/v1/schedules/", {
        "name": "Database", "team": team.pk, "time_zone": "America/New_York",
        "fallback_user": other.pk,
        "rotations": [
            rotation_entry(responder, other, name="Week"),
            rotation_entry(other, name="Nights", layer=2, shift_kind="daily",
                           handoff="2027-03-14T02:30:00",
                           restrictions=[{"weekdays": [0, 1, 2, 3, 4], "start": "22:00",
                                          "end": "06:00"}]),
        ]}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    schedule = Schedule.objects.get(pk=body["id"])
    assert (schedule.time_zone, schedule.fallback_user) == ("America/New_York", other)
    # Higher layers first, as the model orders them.
    assert [r["name"] for r in body["rotations"]] == ["Nights", "Week"]
    nights = schedule.rotations.get(name="Nights")
    assert str(nights.handoff_date) == "2027-03-14" and str(nights.handoff_time) == "02:30:00"
    assert nights.participants == [other.pk]
    assert body["rotations"][0]["handoff"] == "2027-03-14T02:30:00"
    assert body["rotations"][0]["restrictions"] == [
        {"weekdays": [0, 1, 2, 3, 4], "start": "22:00", "end": "06:00"}]


def test_a_handoff_with_an_offset_is_a_400_saying_it_is_local(as_manager, team, responder):
    response = as_manager.post("/api/v1/schedules/", {
        "name": "Database", "team": team.pk, "time_zone": "Europe/Berlin",
        "rotations": [rotation_entry(responder, handoff="2027-03-01T09:00:00+01:00")]},
        format="json")
    assert response.status_code == 400
    [problem] = response.json()["rotations"]["0"]["handoff"]
    assert "wall-clock time in the schedule's time zone" in problem
    assert not Schedule.objects.exists()


@pytest.mark.parametrize("handoff", ["next monday", "2027-02-30T09:00", 20270301])
def test_a_handoff_that_is_no_date_and_time_is_a_400(as_manager, team, responder, handoff):
    response = as_manager.post("/api/v1/schedules/", {
        "name": "Database", "team": team.pk,
        "rotations": [rotation_entry(responder, handoff=handoff)]}, format="json")
    assert response.status_code == 400
    assert "handoff" in response.json()["rotations"]["0"]


def test_participants_must_be_users_and_may_repeat(as_manager, team, responder, other):
    refused = as_manager.post("/api/v1/schedules/", {
        "name": "Database", "team": team.pk,
        "rotations": [rotation_entry(responder, name="A", participants=[responder.pk, 9999])]},
        format="json")
    assert refused.status_code == 400
    assert refused.json()["rotations"]["0"]["participants"] == [
        "participants: there is no user 9999."]
    # [rita, otto, rita]: rita takes two shifts in three, which some teams want.
    accepted = as_manager.post("/api/v1/schedules/", {
        "name": "Database", "team": team.pk,
        "rotations": [rotation_entry(responder, other, responder, name="A")]}, format="json")
    assert accepted.status_code == 201, accepted.content
    assert accepted.json()["rotations"][0]["participants"] == [responder.pk, other.pk,
                                                               responder.pk]


def test_a_rotation_needs_a_participant_and_a_positive_length(as_manager, team, responder):
    response = as_manager.post("/api/v1/schedules/", {
        "name": "Database", "team": team.pk,
        "rotations": [{**rotation_entry(responder), "participants": [], "shift_length": 0}]},
        format="json")
    assert response.status_code == 400
    assert set(response.json()["rotations"]["0"]) == {"participants", "shift_length"}


def test_a_shift_is_at_most_a_year_of_its_kind_as_in_the_admin(as_manager, team, schedule,
                                                             responder):
    too_long = as_manager.post("/api/v1/schedules/", {
        "name": "Database", "team": team.pk,
        "rotations": [rotation_entry(responder, shift_kind="weekly", shift_length=60)]},
        format="json")
    assert too_long.status_code == 400
    assert "1 to 53" in too_long.json()["rotations"]["0"]["shift_length"][0]
    # A daily rotation of 100 days is fine; made weekly by a PATCH naming only the kind, it
    # would be 100 weeks.
    days = schedule.rotations.get()
    days.shift_length = 100
    days.save()
    response = as_manager.patch(f"/api/v1/schedules/{schedule.pk}/", {
        "rotations": [{"id": days.pk, "shift_kind": "weekly"}]}, format="json")
    assert response.status_code == 400, response.content
    assert "shift_length" in response.json()["rotations"]["0"]
    assert schedule.rotations.get().shift_kind == "daily"


def test_a_responder_reads_schedules_but_cannot_change_them(as_responder, schedule, team):
    assert as_responder.get("/api/v1/schedules/").json()["results"][0]["name"] == "Primary"
    assert as_responder.get(f"/api/v1/schedules/{schedule.pk}/").status_code == 200
    assert as_responder.post("/api/v1/schedules/", {"name": "Mine", "team": team.pk},
                             format="json").status_code == 403
    assert as_responder.patch(f"/api/v1/schedules/{schedule.pk}/", {"name": "Renamed"},
                              format="json").status_code == 403
    assert as_responder.delete(f"/api/v1/schedules/{schedule.pk}/").status_code == 403
    schedule.refresh_from_db()
    assert schedule.name == "Primary"


def test_putting_rotations_updates_by_id_creates_new_and_deletes_the_missing(
        as_manager, schedule, team, responder, other):
    kept = schedule.rotations.get()
    dropped = Rotation.objects.create(
        schedule=schedule, name="Old", handoff_date=kept.handoff_date,
        handoff_time=kept.handoff_time, participants=[other.pk])
    response = as_manager.put(f"/api/v1/schedules/{schedule.pk}/", {
        "name": "Primary", "team": team.pk, "time_zone": "Europe/Berlin",
        "rotations": [
            {**rotation_entry(other, responder, name="Weekdays", shift_kind="daily"),
             "id": kept.pk},
            rotation_entry(responder, name="Weekend", layer=2),
        ]}, format="json")
    assert response.status_code == 200, response.content
    rotations = {r.name: r for r in schedule.rotations.all()}
    assert set(rotations) == {"Weekdays", "Weekend"}
    # The same row, edited in place: its history keeps the shifts already worked.
    assert rotations["Weekdays"].pk == kept.pk
    assert rotations["Weekdays"].participants == [other.pk, responder.pk]
    assert not Rotation.objects.filter(pk=dropped.pk).exists()
    assert [r["name"] for r in response.json()["rotations"]] == ["Weekend", "Weekdays"]


def test_patching_a_rotation_changes_only_the_keys_sent(as_manager, schedule, other):
    rotation = schedule.rotations.get()
    response = as_manager.patch(f"/api/v1/schedules/{schedule.pk}/", {
        "rotations": [{"id": rotation.pk, "participants": [other.pk]}]}, format="json")
    assert response.status_code == 200, response.content
    rotation.refresh_from_db()
    assert rotation.participants == [other.pk]
    assert (rotation.name, rotation.shift_kind) == ("Weekdays", "daily")


def test_a_new_rotation_in_a_patch_still_needs_its_fields(as_manager, schedule):
    response = as_manager.patch(f"/api/v1/schedules/{schedule.pk}/", {
        "rotations": [{"layer": 3}]}, format="json")
    assert response.status_code == 400
    assert set(response.json()["rotations"]["0"]) == {"name", "handoff", "participants"}
    assert schedule.rotations.count() == 1


def test_patching_other_fields_leaves_the_rotations_alone(as_manager, schedule):
    response = as_manager.patch(f"/api/v1/schedules/{schedule.pk}/",
                                {"description": "Tier 1"}, format="json")
    assert response.status_code == 200, response.content
    assert schedule.rotations.count() == 1
    assert len(response.json()["rotations"]) == 1


def test_a_rotation_id_of_another_schedule_is_a_400(as_manager, schedule, team, responder):
    elsewhere = Schedule.objects.create(name="Other", team=team)
    response = as_manager.patch(f"/api/v1/schedules/{elsewhere.pk}/", {
        "rotations": [{**rotation_entry(responder), "id": schedule.rotations.get().pk}]},
        format="json")
    assert response.status_code == 400
    assert "has no rotation" in response.json()["rotations"]["0"]["id"][0]
    assert schedule.rotations.count() == 1


# Overrides


def overrides_url(schedule):
    return f"/api/v1/schedules/{schedule.pk}/overrides/"


SPAN = {"start": "2027-03-02T08:00:00Z", "end": "2027-03-02T20:00:00+00:00"}


def test_a_manager_puts_anyone_on_call(as_manager, manager, schedule, responder, other):
    # otto has the shift from 2 March 09:00 Berlin; rita takes it.
    response = as_manager.post(overrides_url(schedule), {
        **SPAN, "user": responder.pk, "replaces": other.pk}, format="json")
    assert response.status_code == 201, response.content
    override = Override.objects.get(pk=response.json()["id"])
    assert (override.user, override.replaces, override.created_by) == (responder, other,
                                                                       manager)
    assert override.start == datetime(2027, 3, 2, 8, tzinfo=UTC)
    assert response.json()["start"] == "2027-03-02T08:00:00Z"


def test_replacing_someone_who_is_not_on_call_then_is_a_400(as_manager, schedule, responder,
                                                            other):
    # On 2 March from 09:00 Berlin the shift is otto's, not rita's.
    response = as_manager.post(overrides_url(schedule), {
        **SPAN, "user": other.pk, "replaces": responder.pk}, format="json")
    assert response.status_code == 400
    assert "rita is not on call" in response.json()["replaces"][0]
    assert not Override.objects.exists()


def test_a_responder_may_take_a_shift_for_themselves(as_responder, responder, schedule, other):
    response = as_responder.post(overrides_url(schedule), {
        **SPAN, "user": responder.pk, "replaces": other.pk}, format="json")
    assert response.status_code == 201, response.content
    assert Override.objects.get().created_by == responder


def test_a_responder_may_not_put_someone_else_on_call(as_responder, responder, schedule,
                                                      other):
    response = as_responder.post(overrides_url(schedule), {
        **SPAN, "user": other.pk}, format="json")
    assert response.status_code == 403
    assert response.json() == {"detail": "You may only add overrides that put yourself on call."}
    assert not Override.objects.exists()


def test_a_responder_deletes_only_the_swaps_they_made(as_responder, responder, manager,
                                                      schedule, other):
    start, end = datetime(2027, 3, 2, 8, tzinfo=UTC), datetime(2027, 3, 2, 20, tzinfo=UTC)
    mine = Override.objects.create(schedule=schedule, user=responder, start=start, end=end,
                                   created_by=responder)
    theirs = Override.objects.create(schedule=schedule, user=other, start=start, end=end,
                                     created_by=other)
    # The Manager's plan puts the responder on call: not theirs to drop.
    planned = Override.objects.create(schedule=schedule, user=responder, replaces=other,
                                      start=start, end=end, created_by=manager)
    assert as_responder.delete(f"{overrides_url(schedule)}{theirs.pk}/").status_code == 403
    refused = as_responder.delete(f"{overrides_url(schedule)}{planned.pk}/")
    assert refused.status_code == 403
    assert refused.json() == {
        "detail": "You may only delete overrides you made that put yourself on call."}
    assert as_responder.delete(f"{overrides_url(schedule)}{mine.pk}/").status_code == 204
    assert set(Override.objects.all()) == {theirs, planned}


@pytest.mark.parametrize("query", [
    "oncall/?at=9999-12-31T23:59:59.999999%2B00:00",
    "oncall/?at=9999-12-31T23:00:00-05:00",
    "shifts/?start=9999-12-30T00:00:00Z",
    "shifts/?start=1066-10-14T09:00:00Z",
])
def test_instants_at_the_calendars_edges_are_a_400_not_a_500(as_manager, schedule, query):
    response = as_manager.get(f"/api/v1/schedules/{schedule.pk}/{query}")
    assert response.status_code == 400
    assert "between the years 1900 and 9000" in str(response.json())


def test_a_responder_may_not_edit_an_override(as_responder, responder, schedule):
    mine = Override.objects.create(schedule=schedule, user=responder,
                                   start=datetime(2027, 3, 2, tzinfo=UTC),
                                   end=datetime(2027, 3, 3, tzinfo=UTC))
    assert as_responder.patch(f"{overrides_url(schedule)}{mine.pk}/",
                              {"end": "2027-03-09T00:00Z"}, format="json").status_code == 403


def test_a_manager_moves_an_override(as_manager, responder, schedule):
    override = Override.objects.create(schedule=schedule, user=responder,
                                       start=datetime(2027, 3, 2, tzinfo=UTC),
                                       end=datetime(2027, 3, 3, tzinfo=UTC))
    response = as_manager.patch(f"{overrides_url(schedule)}{override.pk}/",
                                {"end": "2027-03-04T00:00:00+01:00"}, format="json")
    assert response.status_code == 200, response.content
    override.refresh_from_db()
    assert override.end == datetime(2027, 3, 3, 23, tzinfo=UTC)


@pytest.mark.parametrize("start", ["2027-03-02T08:00:00", "2027-03-02", "tomorrow"])
def test_an_override_without_an_offset_is_a_400_naming_the_field(as_manager, schedule,
                                                                 responder, start):
    response = as_manager.post(overrides_url(schedule), {
        "start": start, "end": "2027-03-02T20:00:00Z", "user": responder.pk}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["start"]
    assert "ISO 8601 instant with its offset" in response.json()["start"][0]


def test_an_override_must_end_after_it_starts(as_manager, schedule, responder):
    response = as_manager.post(overrides_url(schedule), {
        "start": "2027-03-02T08:00:00Z", "end": "2027-03-02T09:00:00+01:00",
        "user": responder.pk}, format="json")
    assert response.status_code == 400
    assert response.json() == {"end": ["The end must be after the start."]}


def test_a_user_cannot_replace_themselves(as_manager, schedule, responder):
    response = as_manager.post(overrides_url(schedule), {
        **SPAN, "user": responder.pk, "replaces": responder.pk}, format="json")
    assert response.status_code == 400
    assert "replaces" in response.json()


def test_overrides_are_listed_by_start_and_filtered_by_overlap(as_responder, schedule,
                                                               responder, team):
    def at(day, hour=0):
        return datetime(2027, 3, day, hour, tzinfo=UTC)

    late = Override.objects.create(schedule=schedule, user=responder, start=at(5), end=at(6))
    early = Override.objects.create(schedule=schedule, user=responder, start=at(1), end=at(2))
    middle = Override.objects.create(schedule=schedule, user=responder, start=at(3), end=at(4))
    Override.objects.create(schedule=Schedule.objects.create(name="Other", team=team),
                            user=responder, start=at(1), end=at(9))
    rows = as_responder.get(overrides_url(schedule)).json()["results"]
    assert [row["id"] for row in rows] == [early.pk, middle.pk, late.pk]
    overlapping = as_responder.get(
        overrides_url(schedule), {"start": "2027-03-02T00:00:00Z",
                                  "end": "2027-03-05T00:00:00Z"}).json()["results"]
    # Touching ends do not overlap: early ends when the span starts, late starts at its end.
    assert [row["id"] for row in overlapping] == [middle.pk]


def test_a_bad_overlap_filter_is_a_400_naming_it(as_responder, schedule):
    response = as_responder.get(overrides_url(schedule), {"start": "2027-03-02T00:00:00"})
    assert response.status_code == 400
    assert list(response.json()) == ["start"]


def test_overrides_of_an_unknown_schedule_are_a_404(as_manager, responder):
    assert as_manager.get("/api/v1/schedules/999/overrides/").status_code == 404
    assert as_manager.post("/api/v1/schedules/999/overrides/", {
        **SPAN, "user": responder.pk}, format="json").status_code == 404


def test_an_override_of_another_schedule_is_a_404_here(as_manager, schedule, team, responder):
    elsewhere = Schedule.objects.create(name="Other", team=team)
    override = Override.objects.create(schedule=elsewhere, user=responder,
                                       start=datetime(2027, 3, 2, tzinfo=UTC),
                                       end=datetime(2027, 3, 3, tzinfo=UTC))
    assert as_manager.get(f"{overrides_url(schedule)}{override.pk}/").status_code == 404
    assert as_manager.delete(f"{overrides_url(schedule)}{override.pk}/").status_code == 404
    assert Override.objects.filter(pk=override.pk).exists()


# Who is on call, shifts, iCalendar: the parameters (the engine's answers are in
# tests/test_oncall_api_engine.py)


@pytest.mark.parametrize("query", ["at=yesterday", "at=2027-03-02T08:00:00",
                                   "at=2027-03-02T08:00:00 01:00"])
def test_a_bad_instant_for_oncall_is_a_400_naming_at(as_responder, schedule, query):
    response = as_responder.get(f"/api/v1/schedules/{schedule.pk}/oncall/?{query}")
    assert response.status_code == 400
    assert list(response.json()) == ["at"]
    assert "%2B" in response.json()["at"][0]


def test_oncall_defaults_to_now(as_responder, schedule):
    before = datetime.now(UTC)
    response = as_responder.get(f"/api/v1/schedules/{schedule.pk}/oncall/")
    assert response.status_code == 200
    at = datetime.fromisoformat(response.json()["at"])
    assert before <= at <= datetime.now(UTC)
    assert isinstance(response.json()["users"], list)


def test_shifts_refuse_an_empty_or_overlong_span(as_responder, schedule):
    url = f"/api/v1/schedules/{schedule.pk}/shifts/"
    backwards = as_responder.get(url, {"start": "2027-03-02T00:00:00Z",
                                       "end": "2027-03-02T00:00:00Z"})
    assert backwards.status_code == 400
    assert backwards.json() == {"end": ["The end must be after the start."]}
    overlong = as_responder.get(url, {"start": "2027-01-01T00:00:00Z",
                                      "end": "2028-01-03T00:00:00Z"})
    assert overlong.status_code == 400
    assert "366 days" in overlong.json()["end"][0]
    a_leap_year = as_responder.get(url, {"start": "2028-01-01T00:00:00Z",
                                         "end": "2029-01-01T00:00:00Z"})
    assert a_leap_year.status_code == 200


def test_unknown_schedules_are_a_404_everywhere(as_responder):
    for tail in ("", "oncall/", "shifts/", "ical/"):
        assert as_responder.get(f"/api/v1/schedules/999/{tail}").status_code == 404


def test_a_user_without_a_role_sees_no_schedule(db, schedule):
    client = api_client_for(make_user("nora"))
    for url in (f"/api/v1/schedules/{schedule.pk}/", f"/api/v1/schedules/{schedule.pk}/oncall/",
                f"/api/v1/schedules/{schedule.pk}/ical/", "/api/v1/oncall/",
                overrides_url(schedule)):
        assert client.get(url).status_code == 403, url


def test_the_ical_feed_has_one_event_per_shift(as_responder, schedule, responder, other,
                                               monkeypatch):
    now = datetime.now(UTC)
    asked = []

    def schedule_shifts(asked_schedule, start, end):
        asked.append((asked_schedule, start, end))
        return [Shift(responder.pk, start, now),
                Shift(other.pk, now, now + timedelta(hours=8), override_id=7)]

    monkeypatch.setattr(ical, "schedule_shifts", schedule_shifts)
    response = as_responder.get(f"/api/v1/schedules/{schedule.pk}/ical/")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/calendar; charset=utf-8"
    calendar = Calendar.from_ical(response.content)
    assert calendar["PRODID"] == ical.PRODID
    events = calendar.walk("VEVENT")
    assert [str(e["SUMMARY"]) for e in events] == [
        "On call: rita (Primary)", "On call: otto (Primary) (override)"]
    assert events[1]["DTSTART"].dt == now.replace(microsecond=0)
    [(_, start, end)] = asked
    assert start == (now - timedelta(days=7)).replace(hour=0, minute=0, second=0,
                                                      microsecond=0)
    assert timedelta(days=90) <= end - now < timedelta(days=90, minutes=1)
    again = Calendar.from_ical(as_responder.get(f"/api/v1/schedules/{schedule.pk}/ical/")
                               .content)
    assert [str(e["UID"]) for e in again.walk("VEVENT")] == [str(e["UID"]) for e in events]
    assert str(events[0]["UID"]).startswith(f"schedule-{schedule.pk}-user-{responder.pk}-")


def test_the_schema_lists_the_on_call_endpoints(administrator):
    schema = api_client_for(administrator).get("/api/v1/schema/?format=json").json()
    for path in ("/api/v1/users/", "/api/v1/contact-methods/{id}/test/",
                 "/api/v1/notification-rules/", "/api/v1/schedules/{id}/oncall/",
                 "/api/v1/schedules/{id}/shifts/", "/api/v1/schedules/{id}/ical/",
                 "/api/v1/schedules/{schedule_pk}/overrides/{id}/", "/api/v1/oncall/"):
        assert path in schema["paths"], path
