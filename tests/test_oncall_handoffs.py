"""Handoff notices: shortly before a shift starts, and when an override changes someone's
shifts (docs/on-call.md#handoff-notices)."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core import mail
from django.db import transaction

from oncall import handoff_messages, handoffs
from oncall.handoffs import notify_override_change, send_handoff_notices
from oncall.messages import gsm7_length
from oncall.models import ContactMethod, Override, PersonalNotification, Rotation, Schedule
from oncall.shifts import Shift
from tests.conftest import make_user
from tests.sinks import Reply
from tocsin.jobs import JOBS

pytestmark = pytest.mark.django_db
Purpose = PersonalNotification.Purpose


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def ann(db):
    user = make_user("ann", "Responder")
    user.email = "ann@example.org"
    user.save()
    return user


@pytest.fixture
def bob(db):
    user = make_user("bob", "Responder")
    user.email = "bob@example.org"
    user.save()
    return user


@pytest.fixture
def schedule(team, ann, bob):
    """Daily shifts at 09:00 Berlin time from Mon 4 Jan 2027: ann, bob, ann, bob…"""
    schedule = Schedule.objects.create(name="Platform primary", team=team,
                                       time_zone="Europe/Berlin")
    Rotation.objects.create(schedule=schedule, name="Days", shift_kind="daily",
                            handoff_date=date(2027, 1, 4), handoff_time=time(9),
                            participants=[ann.pk, bob.pk])
    return schedule


def notices(**lookup):
    return list(PersonalNotification.objects.filter(purpose=Purpose.HANDOFF, **lookup)
                .order_by("id"))


# --- shortly before a shift ---------------------------------------------------------------

def test_shift_starting_within_the_window_is_announced_with_times_in_the_schedules_zone(
        schedule, ann, bob):
    # 08:50 in Berlin on Tue 5 Jan: bob takes over from ann at 09:00.
    assert send_handoff_notices(now=utc(2027, 1, 5, 7, 50)) == 1
    [notice] = notices()
    assert (notice.user, notice.kind, notice.address) == (bob, "email", "bob@example.org")
    assert notice.contact_method is None
    assert notice.dedup_key == f"handoff:{schedule.pk}:{bob.pk}:20270105T080000"
    assert notice.subject == "[Tocsin] On call for Platform primary from Tue 05 Jan 09:00 CET"
    assert "from  Tue 05 Jan 2027, 09:00 CET" in notice.text
    assert "until Wed 06 Jan 2027, 09:00 CET" in notice.text
    assert "Times are in Europe/Berlin." in notice.text
    assert "Taking over from: ann." in notice.text
    assert notice.status == PersonalNotification.Status.PENDING


def test_each_shift_is_announced_once_however_often_the_job_runs(schedule, bob):
    for minute in range(46, 60):
        send_handoff_notices(now=utc(2027, 1, 5, 7, minute))
    assert [notice.user for notice in notices()] == [bob]


def test_shift_starting_after_the_window_is_not_announced_yet(schedule):
    assert send_handoff_notices(now=utc(2027, 1, 5, 7, 44)) == 0
    assert notices() == []


def test_the_window_follows_the_setting_and_zero_turns_notices_off(settings, schedule, bob):
    settings.TOCSIN_HANDOFF_NOTICE_MINUTES = 60
    assert send_handoff_notices(now=utc(2027, 1, 5, 7, 1)) == 1
    PersonalNotification.objects.all().delete()
    settings.TOCSIN_HANDOFF_NOTICE_MINUTES = 0
    assert send_handoff_notices(now=utc(2027, 1, 5, 7, 55)) == 0


def test_a_job_run_a_little_late_still_announces_the_shift_that_just_started(schedule, bob):
    assert send_handoff_notices(now=utc(2027, 1, 5, 8, 1)) == 1
    assert [notice.user for notice in notices()] == [bob]


def test_a_shift_continuing_the_same_persons_time_on_call_is_no_handoff(team, ann):
    solo = Schedule.objects.create(name="Solo", team=team, time_zone="Europe/Berlin")
    Rotation.objects.create(schedule=solo, name="Days", shift_kind="daily",
                            handoff_date=date(2027, 1, 4), handoff_time=time(9),
                            participants=[ann.pk])
    # ann's shifts follow each other: at 09:00 on the 5th she stays on call.
    assert send_handoff_notices(now=utc(2027, 1, 5, 7, 50)) == 0


def test_the_first_shift_of_a_rotation_is_announced_and_a_shift_in_progress_is_not(
        schedule, ann):
    assert send_handoff_notices(now=utc(2027, 1, 4, 7, 50)) == 1
    assert notices()[0].user == ann
    assert "Taking over from" not in notices()[0].text
    assert send_handoff_notices(now=utc(2027, 1, 4, 12, 0)) == 0


def test_a_shift_across_the_spring_change_shows_summer_time(team, ann, bob):
    # Berlin moves to CEST on Sun 28 Mar 2027: bob's shift of the 28th starts at 09:00
    # CEST, 07:00 UTC.
    schedule = Schedule.objects.create(name="Spring", team=team, time_zone="Europe/Berlin")
    Rotation.objects.create(schedule=schedule, name="Days", shift_kind="daily",
                            handoff_date=date(2027, 3, 27), handoff_time=time(9),
                            participants=[ann.pk, bob.pk])
    assert send_handoff_notices(now=utc(2027, 3, 28, 6, 50)) == 1
    [notice] = notices()
    assert notice.user == bob
    assert "from  Sun 28 Mar 2027, 09:00 CEST" in notice.text
    assert "until Mon 29 Mar 2027, 09:00 CEST" in notice.text


def test_notice_goes_to_the_first_enabled_contact_method_that_is_not_a_call(schedule, bob):
    ContactMethod.objects.create(user=bob, kind="voice", address="+4915112345678")
    ContactMethod.objects.create(user=bob, kind="email", address="old@example.org",
                                 enabled=False)
    sms = ContactMethod.objects.create(user=bob, kind="sms", address="+4915112345679")
    ContactMethod.objects.create(user=bob, kind="email", address="bob@work.example.org")
    send_handoff_notices(now=utc(2027, 1, 5, 7, 50))
    [notice] = notices()
    assert (notice.contact_method, notice.kind, notice.address) == \
        (sms, "sms", "+4915112345679")
    assert notice.text == ("Tocsin: you are on call for Platform primary from Tue 05 Jan "
                           "09:00 CET until Wed 06 Jan 09:00 CET.")
    assert gsm7_length(notice.text) <= 160


def test_sms_notice_of_a_long_schedule_name_still_fits_one_segment(schedule, bob):
    schedule.name = ("Very long schedule name “for the payments platform” " * 3)[:200]
    schedule.save()
    ContactMethod.objects.create(user=bob, kind="sms", address="+4915112345679")
    send_handoff_notices(now=utc(2027, 1, 5, 7, 50))
    [notice] = notices()
    assert gsm7_length(notice.text) <= 160 and notice.text.endswith("...")


def test_a_user_with_nothing_to_reach_them_by_gets_no_notice(schedule, bob):
    bob.email = ""
    bob.save()
    assert send_handoff_notices(now=utc(2027, 1, 5, 7, 50)) == 0
    assert notices() == []


def test_a_deactivated_user_gets_no_notice(schedule, bob):
    bob.is_active = False
    bob.save()
    assert send_handoff_notices(now=utc(2027, 1, 5, 7, 50)) == 0


def test_the_notice_is_sent_through_the_outbox(inline, schedule, bob):
    inline(send_handoff_notices, now=utc(2027, 1, 5, 7, 50))
    [message] = mail.outbox
    assert message.to == ["bob@example.org"]
    assert message.subject == "[Tocsin] On call for Platform primary from Tue 05 Jan 09:00 CET"
    [notice] = notices()
    assert notice.status == PersonalNotification.Status.SENT
    assert notice.attempts == 1


def test_ntfy_notice_has_a_title_and_the_times(http_sink, inline, schedule, bob):
    http_sink.default = Reply(200, {"id": "n1", "event": "message"})
    ContactMethod.objects.create(user=bob, kind="ntfy", address=f"{http_sink.url}/bob")
    inline(send_handoff_notices, now=utc(2027, 1, 5, 7, 50))
    [request] = http_sink.requests
    assert request.path == "/bob"
    assert request.headers["title"] == "On call soon: Platform primary"
    assert request.headers["priority"] == "3"
    assert "click" not in request.headers
    assert request.body.decode() == ("From Tue 05 Jan 2027, 09:00 CET until Wed 06 Jan "
                                     "2027, 09:00 CET. Taking over from: ann.")


def test_the_minute_job_is_declared():
    assert any(job.func == "oncall.handoffs.send_handoff_notices" and job.minutes == 1
               for job in JOBS)


def test_recording_the_same_notice_twice_inserts_one_row_and_queues_it_once(
        schedule, bob, monkeypatch, django_capture_on_commit_callbacks):
    queued = []
    monkeypatch.setattr(handoffs.personal_outbox, "enqueue", queued.append)
    notice = handoffs.handoff_messages.Notice("s", "t", "sms", "p", "pt")
    with django_capture_on_commit_callbacks(execute=True):
        assert handoffs.record_notice(bob, "handoff:race", notice) is True
        assert handoffs.record_notice(bob, "handoff:race", notice) is False
    assert len(notices(dedup_key="handoff:race")) == 1
    assert len(queued) == 1


# --- overrides ------------------------------------------------------------------------------

@pytest.fixture
def cid(db):
    user = make_user("cid", "Responder")
    user.email = "cid@example.org"
    user.save()
    return user


NOW = utc(2027, 1, 5, 12, 0)


@pytest.fixture
def frozen_now(monkeypatch):
    monkeypatch.setattr(handoffs.timezone, "now", lambda: NOW)


def make_override(capture, schedule, **fields):
    with capture(execute=True):
        return Override.objects.create(schedule=schedule, **fields)


def test_adding_an_override_tells_its_user_and_the_one_it_replaces(
        frozen_now, django_capture_on_commit_callbacks, schedule, ann, bob, cid, manager):
    # bob is on call Tue 5 Jan 09:00 to Wed 09:00; cid takes 18:00-22:00 of it.
    override = make_override(django_capture_on_commit_callbacks, schedule, user=cid,
                             replaces=bob, start=utc(2027, 1, 5, 17), end=utc(2027, 1, 5, 21),
                             created_by=manager)
    by_user = {notice.user: notice for notice in notices()}
    assert set(by_user) == {bob, cid}
    assert by_user[cid].subject == "[Tocsin] Your on-call shifts in Platform primary changed"
    assert ("max added an override: cid is on call from Tue 05 Jan 2027, 18:00 CET until "
            "Tue 05 Jan 2027, 22:00 CET in place of bob.") in by_user[cid].text
    assert "  from Tue 05 Jan 2027, 18:00 CET until Tue 05 Jan 2027, 22:00 CET" in \
        by_user[cid].text
    # bob's own shifts in that interval: none now.
    assert "You are not on call between Tue 05 Jan 2027, 18:00 CET" in by_user[bob].text
    assert by_user[bob].dedup_key.startswith(f"override:{override.pk}:added:{bob.pk}:")
    assert ann not in by_user


def test_an_override_replacing_everyone_tells_whoever_the_layers_had_on_call(
        frozen_now, django_capture_on_commit_callbacks, schedule, ann, bob, cid):
    # Tue 18:00 to Wed 12:00 Berlin: bob's shift, then ann's from Wed 09:00.
    make_override(django_capture_on_commit_callbacks, schedule, user=cid,
                  start=utc(2027, 1, 5, 17), end=utc(2027, 1, 6, 11))
    assert {notice.user for notice in notices()} == {ann, bob, cid}
    [to_ann] = notices(user=ann)
    assert "in place of everyone the rotations have on call" in to_ann.text
    assert "Someone added an override" in to_ann.text


def test_removing_an_override_tells_the_same_people_again(
        frozen_now, django_capture_on_commit_callbacks, schedule, bob, cid):
    override = make_override(django_capture_on_commit_callbacks, schedule, user=cid,
                             replaces=bob, start=utc(2027, 1, 5, 17), end=utc(2027, 1, 5, 21))
    with django_capture_on_commit_callbacks(execute=True):
        override.delete()
    removed = notices(dedup_key__contains=":removed:")
    assert {notice.user for notice in removed} == {bob, cid}
    [to_bob] = [notice for notice in removed if notice.user == bob]
    assert "removed an override (it said: cid is on call from" in to_bob.text
    assert "  from Tue 05 Jan 2027, 18:00 CET until Tue 05 Jan 2027, 22:00 CET" in to_bob.text


def test_changing_an_override_says_what_it_was_before(
        frozen_now, django_capture_on_commit_callbacks, schedule, bob, cid):
    override = make_override(django_capture_on_commit_callbacks, schedule, user=cid,
                             replaces=bob, start=utc(2027, 1, 5, 17), end=utc(2027, 1, 5, 21))
    override.end = utc(2027, 1, 5, 22)
    with django_capture_on_commit_callbacks(execute=True):
        override.save()
    [changed] = notices(user=cid, dedup_key__contains=":changed:")
    assert "until Tue 05 Jan 2027, 23:00 CET in place of bob." in changed.text
    assert "Before the change: cid is on call from Tue 05 Jan 2027, 18:00 CET until " \
           "Tue 05 Jan 2027, 22:00 CET in place of bob." in changed.text
    # Saving again without a change tells nobody.
    count = PersonalNotification.objects.count()
    with django_capture_on_commit_callbacks(execute=True):
        override.save()
    assert PersonalNotification.objects.count() == count


def test_an_override_entirely_in_the_past_tells_nobody(
        frozen_now, django_capture_on_commit_callbacks, schedule, bob, cid):
    make_override(django_capture_on_commit_callbacks, schedule, user=cid, replaces=bob,
                  start=utc(2027, 1, 5, 8), end=utc(2027, 1, 5, 11))
    assert notices() == []


def test_an_override_replacing_someone_not_on_call_then_tells_only_its_user(
        frozen_now, django_capture_on_commit_callbacks, schedule, ann, cid):
    # ann is not on call on Tuesday evening (bob is).
    make_override(django_capture_on_commit_callbacks, schedule, user=cid, replaces=ann,
                  start=utc(2027, 1, 5, 17), end=utc(2027, 1, 5, 21))
    assert [notice.user for notice in notices()] == [cid]


def test_an_override_rolled_back_tells_nobody(frozen_now, django_capture_on_commit_callbacks,
                                              schedule, bob, cid):
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError), \
            transaction.atomic():
            Override.objects.create(schedule=schedule, user=cid, replaces=bob,
                                    start=utc(2027, 1, 5, 17), end=utc(2027, 1, 5, 21))
            raise RuntimeError("the request failed after saving")
    assert notices() == []


def test_deleting_a_user_with_overrides_tells_the_others_and_never_the_deleted(
        frozen_now, django_capture_on_commit_callbacks, schedule, bob, cid):
    make_override(django_capture_on_commit_callbacks, schedule, user=cid, replaces=bob,
                  start=utc(2027, 1, 5, 17), end=utc(2027, 1, 5, 21))
    PersonalNotification.objects.all().delete()
    with django_capture_on_commit_callbacks(execute=True):
        cid.delete()
    assert [notice.user for notice in notices()] == [bob]
    assert "Someone removed an override (it said: someone is on call" in notices()[0].text


def test_deleting_a_schedule_sends_no_override_notices(
        frozen_now, django_capture_on_commit_callbacks, schedule, bob, cid):
    make_override(django_capture_on_commit_callbacks, schedule, user=cid, replaces=bob,
                  start=utc(2027, 1, 5, 17), end=utc(2027, 1, 5, 21))
    PersonalNotification.objects.all().delete()
    with django_capture_on_commit_callbacks(execute=True):
        schedule.delete()
    assert notices() == []


def test_an_override_notice_is_recorded_once_per_person_and_action(schedule, bob, cid):
    override = Override.objects.create(schedule=schedule, user=cid, replaces=bob,
                                       start=utc(2027, 1, 5, 17), end=utc(2027, 1, 5, 21))
    state = handoffs.OverrideState.of(override)
    assert notify_override_change("added", state, now=NOW) == 2
    assert notify_override_change("added", state, now=NOW) == 0
    assert len(notices()) == 2


def test_a_long_override_lists_the_shifts_of_its_first_month_only(
        frozen_now, django_capture_on_commit_callbacks, schedule, bob, cid):
    make_override(django_capture_on_commit_callbacks, schedule, user=bob, replaces=cid,
                  start=NOW, end=NOW + timedelta(days=400))
    [to_bob] = notices(user=bob)
    assert "between Tue 05 Jan 2027, 13:00 CET and Fri 05 Feb 2027, 13:00 CET" in to_bob.text


def test_a_rotation_shift_right_after_the_same_persons_override_is_no_handoff(schedule, ann,
                                                                             bob):
    # ann covers the last two hours of bob's Tuesday shift (07:00-09:00 Berlin on Wed),
    # then her own shift begins at 09:00: she stays on call, nothing to announce then.
    Override.objects.create(schedule=schedule, user=ann, replaces=bob,
                            start=utc(2027, 1, 6, 6), end=utc(2027, 1, 6, 8))
    assert send_handoff_notices(now=utc(2027, 1, 6, 5, 50)) == 1  # the override's start
    assert send_handoff_notices(now=utc(2027, 1, 6, 7, 50)) == 0
    [notice] = notices()
    assert "from  Wed 06 Jan 2027, 07:00 CET" in notice.text
    assert "until Thu 07 Jan 2027, 09:00 CET" in notice.text  # through her own shift
    assert "an override puts you on call" in notice.text.lower()


def test_the_fallback_user_is_told_when_the_rotations_leave_nobody(team, ann, cid):
    # ann covers weekdays 09:00-17:00 Berlin; from 17:00 the fallback user cid is on call.
    schedule = Schedule.objects.create(name="Office hours", team=team,
                                       time_zone="Europe/Berlin", fallback_user=cid)
    Rotation.objects.create(schedule=schedule, name="Days", shift_kind="weekly",
                            handoff_date=date(2027, 1, 4), handoff_time=time(9),
                            participants=[ann.pk],
                            restrictions=[{"weekdays": [0, 1, 2, 3, 4], "start": "09:00",
                                           "end": "17:00"}])
    assert send_handoff_notices(now=utc(2027, 1, 5, 15, 50)) == 1
    [notice] = notices()
    assert notice.user == cid
    assert "from  Tue 05 Jan 2027, 17:00 CET" in notice.text
    assert "until Wed 06 Jan 2027, 09:00 CET" in notice.text
    assert "Taking over from: ann." in notice.text


def test_an_override_sms_says_first_what_changes_for_its_reader():
    zone_name = "Europe/Berlin"
    start, end = datetime(2026, 12, 11, 23, tzinfo=UTC), datetime(2026, 12, 13, 23, tzinfo=UTC)
    relieved = handoff_messages.sms_outcome([], (start, end), ZoneInfo(zone_name))
    assert relieved == "you are not on call Sat 12 Dec 00:00 CET-Mon 14 Dec 00:00 CET"
    covering = handoff_messages.sms_outcome(
        [Shift(1, start, end, override_id=3)], (start, end), ZoneInfo(zone_name))
    assert covering == "you are on call Sat 12 Dec 00:00 CET-Mon 14 Dec 00:00 CET"
