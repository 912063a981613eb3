"""The on-call admin: who may see and edit what, the humane inputs (participants,
restrictions, local times), the timeline's layout, the profile page and the index panel."""

import re
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse
from django.utils import timezone

from oncall.admin.restriction_text import format_restrictions, parse_restrictions
from oncall.admin.timeline import build_days
from oncall.models import (
    ContactMethod,
    NotificationRule,
    Override,
    PersonalNotification,
    Rotation,
    Schedule,
)
from oncall.shifts import Shift
from tests.conftest import make_user
from tests.sinks import TWILIO_SID as SID
from tests.sinks import Reply

BERLIN = ZoneInfo("Europe/Berlin")
UTC = ZoneInfo("UTC")


def signed_in(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def schedule(team):
    return Schedule.objects.create(name="Platform primary", team=team, time_zone="Europe/Berlin")


# Restrictions as text ------------------------------------------------------------------


def test_restriction_text_reads_day_ranges_lists_and_windows_passing_midnight():
    assert parse_restrictions("Mon-Fri 09:00-17:00; sat,Sunday 22:00-6:00") == [
        {"weekdays": [0, 1, 2, 3, 4], "start": "09:00", "end": "17:00"},
        {"weekdays": [5, 6], "start": "22:00", "end": "06:00"},
    ]


def test_restriction_day_range_wraps_over_the_weekend():
    assert parse_restrictions("Fri-Mon 18:00-08:00")[0]["weekdays"] == [0, 4, 5, 6]


def test_restrictions_are_shown_back_in_the_syntax_they_were_typed_in():
    text = "Mon-Fri 09:00-17:00; Sat,Sun 22:00-06:00; Daily 12:00-13:00; Mon,Wed-Fri 01:00-02:00"
    assert format_restrictions(parse_restrictions(text)) == text


@pytest.mark.parametrize("text", ["Mon-Fri", "Funday 09:00-10:00", "Mon 9-17"])
def test_restriction_text_that_cannot_be_read_names_the_entry(text):
    with pytest.raises(Exception) as caught:
        parse_restrictions(text)
    assert text.split()[0] in str(caught.value)


# The timeline's layout -----------------------------------------------------------------


def berlin(*args):
    return datetime(*args, tzinfo=BERLIN)


def test_timeline_places_shifts_by_their_share_of_a_short_daylight_saving_day():
    # 28 March 2027 has 23 hours in Berlin: 12:00 local is 11/23 of the way through it.
    shifts = [Shift(1, berlin(2027, 3, 27, 12), berlin(2027, 3, 28, 12)),
              Shift(2, berlin(2027, 3, 28, 12), berlin(2027, 3, 29, 12))]
    days = build_days(shifts, first_day=date(2027, 3, 28), days=1, zone=BERLIN,
                      now=berlin(2027, 3, 28, 15), names={1: "alice", 2: "bob"})
    [day] = days
    alice, bob = day.bars
    assert (alice.label, alice.left, round(alice.width, 3)) == ("alice", 0, round(1100 / 23, 3))
    assert (bob.label, round(bob.left, 3), round(bob.left + bob.width, 3)) == (
        "bob", round(1100 / 23, 3), 100)
    # The bars keep the whole shift, so an override made from one covers all of it.
    assert alice.start == berlin(2027, 3, 27, 12)
    assert day.is_today and day.now_at == pytest.approx(100 * 14 / 23)


def test_timeline_marks_gaps_as_nobody_and_stacks_people_on_call_together():
    shifts = [Shift(1, berlin(2027, 1, 4, 0), berlin(2027, 1, 4, 12)),
              Shift(2, berlin(2027, 1, 4, 6), berlin(2027, 1, 4, 12), override_id=7)]
    [day] = build_days(shifts, first_day=date(2027, 1, 4), days=1, zone=BERLIN,
                       now=berlin(2027, 1, 1), names={1: "alice", 2: "bob"})
    nobody = [bar for bar in day.bars if bar.user_id is None]
    assert [(bar.left, bar.width) for bar in nobody] == [(50, 50)]
    assert day.lanes == 2 and not day.is_today
    assert {bar.label: bar.lane for bar in day.bars if bar.user_id} == {"alice": 0, "bob": 1}


def test_a_person_keeps_their_colour_from_one_fortnight_to_the_next():
    # bob is on call first in one fortnight and alice in the next; their colours stay.
    first = build_days([Shift(2, berlin(2027, 1, 4, 0), berlin(2027, 1, 4, 12)),
                        Shift(1, berlin(2027, 1, 4, 12), berlin(2027, 1, 5, 0))],
                       first_day=date(2027, 1, 4), days=1, zone=BERLIN,
                       now=berlin(2027, 1, 1), names={1: "alice", 2: "bob"}, people=[1, 2])
    later = build_days([Shift(1, berlin(2027, 1, 18, 0), berlin(2027, 1, 18, 12)),
                        Shift(2, berlin(2027, 1, 18, 12), berlin(2027, 1, 19, 0))],
                       first_day=date(2027, 1, 18), days=1, zone=BERLIN,
                       now=berlin(2027, 1, 1), names={1: "alice", 2: "bob"}, people=[1, 2])
    colours = [{bar.label: bar.colour for bar in days[0].bars} for days in (first, later)]
    assert colours[0] == colours[1] == {"alice": 0, "bob": 1}


# Contact methods and rules: each their own ---------------------------------------------


def test_responder_sees_and_opens_only_their_own_contact_methods(client, responder, manager):
    own = ContactMethod.objects.create(user=responder, kind="email", address="rita@example.com")
    other = ContactMethod.objects.create(user=manager, kind="email", address="max@example.com")
    signed_in(client, responder)
    listing = client.get(reverse("admin:oncall_contactmethod_changelist"))
    assert list(listing.context["cl"].queryset) == [own]
    assert client.get(reverse("admin:oncall_contactmethod_change", args=[own.pk])).status_code \
        == 200
    # Like a missing row: back to the index, nothing shown.
    response = client.get(reverse("admin:oncall_contactmethod_change", args=[other.pk]))
    assert response.status_code == 302
    response = client.post(reverse("admin:oncall_contactmethod_toggle", args=[other.pk]))
    assert response.status_code == 302
    other.refresh_from_db()
    assert other.enabled


def test_responder_adding_a_contact_method_for_someone_else_is_refused(client, responder, manager):
    signed_in(client, responder)
    url = reverse("admin:oncall_contactmethod_add")
    response = client.post(url, {"user": manager.pk, "kind": "email",
                                 "address": "max@example.com", "enabled": "on"})
    # The user field is fixed to the signed-in user: what was posted for it is ignored.
    assert response.status_code == 302
    assert list(ContactMethod.objects.values_list("user__username", "address")) == [
        ("rita", "max@example.com")]


def test_responder_cannot_be_handed_someone_elses_user_in_the_add_form(client, responder,
                                                                       manager):
    signed_in(client, responder)
    page = client.get(reverse("admin:oncall_contactmethod_add") + f"?user={manager.pk}")
    form = page.context["adminform"].form
    assert form.fields["user"].disabled
    assert list(form.fields["user"].queryset) == [responder]


def test_manager_adds_a_contact_method_for_anyone_and_returns_to_the_profile(client, manager,
                                                                             responder):
    signed_in(client, manager)
    profile = reverse("admin:oncall_contactmethod_profile")
    url = reverse("admin:oncall_contactmethod_add") + f"?next={profile}"
    response = client.post(url, {"user": responder.pk, "kind": "ntfy",
                                 "address": "https://ntfy.example.com/rita", "enabled": "on"})
    assert response.status_code == 302 and response["Location"] == profile
    assert ContactMethod.objects.get().user == responder


def test_next_pointing_elsewhere_is_ignored(client, manager):
    signed_in(client, manager)
    url = reverse("admin:oncall_contactmethod_add") + "?next=https://evil.example.com/"
    response = client.post(url, {"user": manager.pk, "kind": "email",
                                 "address": "max@example.com", "enabled": "on"})
    assert response["Location"] == reverse("admin:oncall_contactmethod_changelist")


def test_rule_with_another_users_contact_method_is_a_form_error(client, manager, responder):
    theirs = ContactMethod.objects.create(user=responder, kind="email", address="r@example.com")
    signed_in(client, manager)
    response = client.post(reverse("admin:oncall_notificationrule_add"), {
        "user": manager.pk, "contact_method": theirs.pk, "delay_minutes": 5})
    assert response.status_code == 200
    assert "contact_method" in response.context["adminform"].form.errors
    assert not NotificationRule.objects.exists()


def test_a_rule_delay_past_the_acknowledge_links_24_hours_is_a_form_error(client, responder):
    mine = ContactMethod.objects.create(user=responder, kind="email", address="r@example.com")
    signed_in(client, responder)
    add = reverse("admin:oncall_notificationrule_add")
    response = client.post(add, {"contact_method": mine.pk, "delay_minutes": 1441})
    assert response.status_code == 200
    assert "1440" in str(response.context["adminform"].form.errors["delay_minutes"])
    assert not NotificationRule.objects.exists()
    assert client.post(add, {"contact_method": mine.pk, "delay_minutes": 1440}).status_code == 302
    assert NotificationRule.objects.get().delay_minutes == 1440


def test_responder_picks_rules_only_among_their_own_contact_methods(client, responder, manager):
    mine = ContactMethod.objects.create(user=responder, kind="email", address="r@example.com")
    ContactMethod.objects.create(user=manager, kind="email", address="m@example.com")
    signed_in(client, responder)
    page = client.get(reverse("admin:oncall_notificationrule_add"))
    assert list(page.context["adminform"].form.fields["contact_method"].queryset) == [mine]
    response = client.post(reverse("admin:oncall_notificationrule_add"), {
        "contact_method": mine.pk, "delay_minutes": 0})
    assert response.status_code == 302
    assert NotificationRule.objects.get().user == responder


def test_contact_methods_are_enabled_and_disabled_from_the_profile(client, responder):
    method = ContactMethod.objects.create(user=responder, kind="email", address="r@example.com")
    signed_in(client, responder)
    profile = reverse("admin:oncall_contactmethod_profile")
    response = client.post(reverse("admin:oncall_contactmethod_toggle", args=[method.pk]),
                           {"next": profile})
    assert response["Location"] == profile
    method.refresh_from_db()
    assert not method.enabled
    assert LogEntry.objects.get().change_message == "Disabled."
    assert client.get(reverse("admin:oncall_contactmethod_toggle",
                              args=[method.pk])).status_code == 405


# The profile page and the index panel --------------------------------------------------


def test_profile_lists_methods_rules_and_says_what_happens_without_rules(client, responder):
    responder.email = "rita@example.com"
    responder.save()
    signed_in(client, responder)
    html = client.get(reverse("admin:oncall_contactmethod_profile")).content.decode()
    assert "No rules: when paged, you are emailed at once at rita@example.com." in html
    method = ContactMethod.objects.create(user=responder, kind="sms", address="+4915112345678")
    NotificationRule.objects.create(user=responder, contact_method=method, delay_minutes=5)
    html = client.get(reverse("admin:oncall_contactmethod_profile")).content.decode()
    assert "+4915112345678" in html and "after 5 min" in html and "Send test" in html


def test_profile_and_its_link_are_there_for_a_staff_user_in_no_group(client, db):
    nobody = make_user("nobody")
    signed_in(client, nobody)
    page = client.get(reverse("admin:oncall_contactmethod_profile"))
    assert page.status_code == 200
    html = page.content.decode()
    assert "My profile" in html and "Add a contact method" not in html


def test_index_panel_shows_every_schedule_to_those_who_may_view_schedules(client, responder,
                                                                          schedule):
    signed_in(client, responder)
    html = client.get(reverse("admin:index")).content.decode()
    assert 'id="tocsin-oncall-now"' in html
    client.force_login(make_user("nobody"))
    assert 'id="tocsin-oncall-now"' not in client.get(reverse("admin:index")).content.decode()


# Schedules -----------------------------------------------------------------------------


def schedule_post(team, **rotation):
    data = {
        "name": "Payments", "description": "", "team": team.pk, "time_zone": "America/New_York",
        "fallback_user": "",
        "rotations-TOTAL_FORMS": "1", "rotations-INITIAL_FORMS": "0",
        "rotations-MIN_NUM_FORMS": "0", "rotations-MAX_NUM_FORMS": "1000",
        "rotations-0-name": "Weekdays", "rotations-0-layer": "1",
        "rotations-0-shift_kind": "daily", "rotations-0-shift_length": "1",
        "rotations-0-handoff_date": "2027-03-01", "rotations-0-handoff_time": "09:00",
        "rotations-0-participants": "", "rotations-0-restrictions": "",
    }
    data.update({f"rotations-0-{key}": value for key, value in rotation.items()})
    return data


def test_manager_creates_a_schedule_with_participants_by_name_and_restrictions_as_text(
        client, manager, responder, team):
    signed_in(client, manager)
    response = client.post(reverse("admin:oncall_schedule_add"), schedule_post(
        team, participants="rita, max", restrictions="Mon-Fri 09:00-17:00; Sat 22:00-06:00"))
    assert response.status_code == 302, response.context["errors"]
    rotation = Rotation.objects.get()
    assert rotation.schedule.time_zone == "America/New_York"
    assert rotation.participants == [responder.pk, manager.pk]
    assert rotation.restrictions == [
        {"weekdays": [0, 1, 2, 3, 4], "start": "09:00", "end": "17:00"},
        {"weekdays": [5], "start": "22:00", "end": "06:00"},
    ]
    page = client.get(reverse("admin:oncall_schedule_change", args=[rotation.schedule.pk]))
    html = page.content.decode()
    assert 'value="rita, max"' in html
    assert 'value="Mon-Fri 09:00-17:00; Sat 22:00-06:00"' in html


def test_unknown_participants_and_unreadable_restrictions_are_form_errors(client, manager, team):
    signed_in(client, manager)
    response = client.post(reverse("admin:oncall_schedule_add"), schedule_post(
        team, participants="max, ghost", restrictions="weekdays"))
    assert response.status_code == 200
    [errors] = response.context["inline_admin_formsets"][0].formset.errors
    assert "No user named “ghost”." in errors["participants"]
    assert "restrictions" in errors
    assert not Schedule.objects.exists()


def test_a_shift_longer_than_a_year_of_its_kind_is_a_form_error(client, manager, team):
    signed_in(client, manager)
    response = client.post(reverse("admin:oncall_schedule_add"), schedule_post(
        team, participants="max", shift_kind="weekly", shift_length="60"))
    assert response.status_code == 200
    [errors] = response.context["inline_admin_formsets"][0].formset.errors
    assert "1 to 53" in errors["shift_length"][0]
    assert not Schedule.objects.exists()


def test_an_unknown_time_zone_is_refused(client, manager, team):
    signed_in(client, manager)
    response = client.post(reverse("admin:oncall_schedule_add"),
                           schedule_post(team, participants="max") | {"time_zone": "Mars/Base"})
    assert response.status_code == 200
    assert "time_zone" in response.context["adminform"].form.errors


def test_responder_reads_a_schedule_page_with_its_timeline_but_cannot_change_it(
        client, responder, schedule):
    signed_in(client, responder)
    page = client.get(reverse("admin:oncall_schedule_change", args=[schedule.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="tocsin-timeline"' in html and "Europe/Berlin" in html
    assert html.count("tocsin-tl__row--today") == 1
    response = client.post(reverse("admin:oncall_schedule_change", args=[schedule.pk]),
                           {"name": "Renamed"})
    assert response.status_code == 403


def test_a_responders_own_shifts_offer_no_override_they_cannot_make(client, responder,
                                                                   manager, schedule):
    Rotation.objects.create(schedule=schedule, name="Days", shift_kind="daily",
                            handoff_date=date(2026, 1, 5), handoff_time=time(9),
                            participants=[responder.pk, manager.pk])
    signed_in(client, responder)
    html = client.get(reverse("admin:oncall_schedule_change", args=[schedule.pk])).text
    # Standing in for max is offered; standing in for themselves is not.
    assert f"replaces={manager.pk}" in html
    assert f"replaces={responder.pk}" not in html
    assert "your shift: a teammate swaps in" in html


def test_a_read_only_override_shows_its_times_in_the_schedules_zone(client, responder,
                                                                   manager, schedule):
    override = Override.objects.create(
        schedule=schedule, user=manager, created_by=manager,
        start=datetime(2027, 1, 4, 8, tzinfo=UTC), end=datetime(2027, 1, 4, 16, tzinfo=UTC))
    signed_in(client, responder)
    html = client.get(reverse("admin:oncall_override_change", args=[override.pk])).text
    assert "2027-01-04 09:00 CET" in html and "2027-01-04 17:00 CET" in html


# Overrides -----------------------------------------------------------------------------


def override_post(schedule, user, replaces="", start=("2027-01-04", "09:00"),
                  end=("2027-01-04", "17:00")):
    return {"schedule": schedule.pk, "user": user.pk if user else "",
            "replaces": replaces.pk if replaces else "",
            "start_0": start[0], "start_1": start[1], "end_0": end[0], "end_1": end[1]}


def test_responder_adds_a_swap_for_themselves_in_the_schedules_local_time(
        client, responder, manager, schedule):
    schedule.fallback_user = manager  # on call whenever nobody else is: always, here
    schedule.save()
    signed_in(client, responder)
    response = client.post(reverse("admin:oncall_override_add"),
                           override_post(schedule, responder, replaces=manager))
    assert response.status_code == 302
    override = Override.objects.get()
    assert (override.user, override.replaces, override.created_by) == (
        responder, manager, responder)
    # 09:00 in Berlin in January is 08:00 UTC.
    assert override.start == datetime(2027, 1, 4, 8, tzinfo=UTC)
    assert override.end == datetime(2027, 1, 4, 16, tzinfo=UTC)
    # The confirmation names the times as they were typed, in the schedule's zone.
    assert str(override) == "rita on call 2027-01-04 09:00 – 2027-01-04 17:00 CET"
    assert "rita on call 2027-01-04 09:00" in client.get(response.url).content.decode()


def test_a_swap_for_someone_not_on_call_then_is_a_form_error(client, responder, manager,
                                                             schedule):
    # Nobody is on call in this schedule: standing in for max would change nothing.
    signed_in(client, responder)
    response = client.post(reverse("admin:oncall_override_add"),
                           override_post(schedule, responder, replaces=manager))
    assert response.status_code == 200
    assert "max is not on call" in response.context["adminform"].form.errors["replaces"][0]
    assert not Override.objects.exists()


def test_responder_cannot_put_someone_else_on_call(client, responder, manager, schedule):
    signed_in(client, responder)
    client.post(reverse("admin:oncall_override_add"), override_post(schedule, manager))
    # The user field is fixed: the override, if any, puts the responder on call.
    assert not Override.objects.exclude(user=responder).exists()


def test_manager_puts_anyone_on_call(client, responder, manager, schedule):
    signed_in(client, manager)
    response = client.post(reverse("admin:oncall_override_add"),
                           override_post(schedule, responder))
    assert response.status_code == 302
    assert Override.objects.get().user == responder


def test_an_override_ending_before_it_starts_is_a_form_error(client, manager, schedule):
    signed_in(client, manager)
    response = client.post(reverse("admin:oncall_override_add"), override_post(
        schedule, manager, end=("2027-01-04", "08:00")))
    assert response.status_code == 200
    assert "end" in response.context["adminform"].form.errors


def test_responder_deletes_their_own_override_only(client, responder, manager, schedule):
    start = timezone.now()
    own = Override.objects.create(schedule=schedule, user=responder, start=start,
                                  end=start + timedelta(hours=1), created_by=responder)
    other = Override.objects.create(schedule=schedule, user=manager, start=start,
                                    end=start + timedelta(hours=1))
    signed_in(client, responder)
    assert client.post(reverse("admin:oncall_override_delete", args=[other.pk]),
                       {"post": "yes"}).status_code == 403
    assert client.post(reverse("admin:oncall_override_delete", args=[own.pk]),
                       {"post": "yes"}).status_code == 302
    assert list(Override.objects.all()) == [other]


def test_responder_cannot_undo_an_override_a_manager_made_for_them(client, responder, manager,
                                                                  schedule):
    start = timezone.now()
    planned = Override.objects.create(schedule=schedule, user=responder, replaces=manager,
                                      start=start, end=start + timedelta(hours=1),
                                      created_by=manager)
    signed_in(client, responder)
    page = client.get(reverse("admin:oncall_override_change", args=[planned.pk]))
    assert page.status_code == 200 and not page.context["has_delete_permission"]
    assert client.post(reverse("admin:oncall_override_delete", args=[planned.pk]),
                       {"post": "yes"}).status_code == 403
    # Nor through the list's bulk action.
    client.post(reverse("admin:oncall_override_changelist"),
                {"action": "delete_selected", "_selected_action": [planned.pk], "post": "yes"})
    assert list(Override.objects.all()) == [planned]
    signed_in(client, manager)
    assert client.post(reverse("admin:oncall_override_delete", args=[planned.pk]),
                       {"post": "yes"}).status_code == 302
    assert not Override.objects.exists()


def test_add_override_form_is_prefilled_from_the_timeline_in_local_time(client, responder,
                                                                        manager, schedule):
    schedule.fallback_user = manager
    schedule.save()
    signed_in(client, responder)
    url = reverse("admin:oncall_override_add") + (
        f"?schedule={schedule.pk}&start=2027-07-05T07:00:00Z&end=2027-07-06T07:00:00Z"
        f"&replaces={manager.pk}&next=/admin/")
    form = client.get(url).context["adminform"].form
    # Berlin is two hours ahead of UTC in July.
    assert form.initial["start"] == [date(2027, 7, 5), time(9, 0)]
    assert form.initial["end"] == [date(2027, 7, 6), time(9, 0)]
    assert form.initial["user"] == responder.pk
    assert form.initial["replaces"] == str(manager.pk)
    data = override_post(schedule, responder, replaces=manager,
                         start=("2027-07-05", "09:00"), end=("2027-07-06", "09:00"))
    response = client.post(url, data)
    assert response["Location"] == "/admin/"
    assert Override.objects.get().start == datetime(2027, 7, 5, 7, tzinfo=UTC)


def test_override_times_skipped_or_repeated_by_daylight_saving_are_read_like_handoffs(
        client, manager, schedule):
    signed_in(client, manager)
    # Berlin, 28 March 2027: 02:00 CET becomes 03:00 CEST, so 02:30 moves to 03:00 CEST;
    # 31 October 2027: 02:30 happens twice and the first (CEST, +02:00) counts.
    response = client.post(reverse("admin:oncall_override_add"), override_post(
        schedule, manager, start=("2027-03-28", "02:30"), end=("2027-10-31", "02:30")))
    assert response.status_code == 302
    override = Override.objects.get()
    assert override.start == datetime(2027, 3, 28, 1, 0, tzinfo=UTC)
    assert override.end == datetime(2027, 10, 31, 0, 30, tzinfo=UTC)


# With the engine and the channels ------------------------------------------------------




def test_a_phone_number_that_is_not_one_is_a_form_error_and_a_good_one_is_stored_as_e164(
        client, responder):
    signed_in(client, responder)
    url = reverse("admin:oncall_contactmethod_add")
    response = client.post(url, {"kind": "sms", "address": "0151 1234", "enabled": "on"})
    assert response.status_code == 200
    assert "country code" in str(response.context["adminform"].form.errors["address"])
    response = client.post(url, {"kind": "sms", "address": "+49 151 1234 5678", "enabled": "on"})
    assert response.status_code == 302
    assert ContactMethod.objects.get().address == "+4915112345678"


def test_send_test_from_the_profile_reaches_twilio_and_says_so(client, responder, twilio):
    method = ContactMethod.objects.create(user=responder, kind="sms", address="+4915112345678")
    signed_in(client, responder)
    profile = reverse("admin:oncall_contactmethod_profile")
    response = client.post(reverse("admin:oncall_contactmethod_send_test", args=[method.pk]),
                           {"next": profile}, follow=True)
    assert response.redirect_chain == [(profile, 302)]
    [request] = twilio.requests
    assert request.path == f"/2010-04-01/Accounts/{SID}/Messages.json"
    assert request.form["To"] == "+4915112345678"
    assert "Test sent to SMS +4915112345678 (HTTP 201)." in response.content.decode()
    row = PersonalNotification.objects.get()
    assert (row.purpose, row.status, row.user) == ("test", "sent", responder)


def test_a_refused_test_shows_twilios_answer(client, responder, twilio):
    twilio.reply(Reply(400, {"code": 21211, "message": "The 'To' number is not valid."}))
    method = ContactMethod.objects.create(user=responder, kind="sms", address="+4915112345678")
    signed_in(client, responder)
    response = client.post(reverse("admin:oncall_contactmethod_send_test", args=[method.pk]),
                           follow=True)
    html = response.content.decode()
    assert "Test to SMS +4915112345678 failed:" in html
    assert PersonalNotification.objects.get().status == "failed"


def rotation(schedule, participants, **fields):
    return Rotation.objects.create(
        schedule=schedule, name=fields.pop("name", "Primary"), shift_kind="daily",
        handoff_date=fields.pop("handoff_date", date(2026, 1, 5)), handoff_time=time(9),
        participants=[user.pk for user in participants], **fields)


def test_schedule_page_draws_the_engines_shifts_with_overrides_marked_and_linked(
        client, responder, manager, schedule):
    rotation(schedule, [responder, manager])
    now = timezone.now()
    swap = Override.objects.create(schedule=schedule, user=responder, replaces=manager,
                                   start=now + timedelta(days=3), end=now + timedelta(days=4))
    signed_in(client, responder)
    page = client.get(reverse("admin:oncall_schedule_change", args=[schedule.pk]))
    days = page.context["timeline_days"]
    assert len(days) == 14 and days[0].is_today
    people = {bar.label for day in days for bar in day.bars}
    assert people == {"rita", "max"}
    overrides = [bar for day in days for bar in day.bars if bar.override_id]
    assert {bar.override_id for bar in overrides} == {swap.pk}
    html = page.content.decode()
    assert "tocsin-tl__bar--override" in html
    add = reverse("admin:oncall_override_add")
    assert f'href="{add}?schedule={schedule.pk}&amp;start=' in html
    assert f"replaces={manager.pk}" in html
    # Two weeks later is another page of the same timeline.
    later = client.get(reverse("admin:oncall_schedule_change", args=[schedule.pk])
                       + f"?from={(days[0].date + timedelta(days=14)).isoformat()}")
    assert not any(day.is_today for day in later.context["timeline_days"])


@pytest.mark.parametrize("first_day", ["9999-12-25", "9999-12-31", "0001-01-01",
                                       "1899-12-31", "9000-01-01", "someday"])
def test_timeline_from_a_day_near_the_calendars_ends_shows_today(client, responder, schedule,
                                                                  first_day):
    rotation(schedule, [responder])
    signed_in(client, responder)
    page = client.get(reverse("admin:oncall_schedule_change", args=[schedule.pk])
                      + f"?from={first_day}")
    assert page.status_code == 200
    assert page.context["timeline_days"][0].is_today


@pytest.mark.parametrize("first_day", ["1900-01-01", "8999-12-31"])
def test_timeline_shows_any_fortnight_within_its_range(client, responder, schedule, first_day):
    rotation(schedule, [responder])
    signed_in(client, responder)
    page = client.get(reverse("admin:oncall_schedule_change", args=[schedule.pk])
                      + f"?from={first_day}")
    assert page.status_code == 200
    assert page.context["timeline_days"][0].date == date.fromisoformat(first_day)


def test_schedule_list_names_who_is_on_call_now_in_each_schedule(client, responder, manager,
                                                                 team, schedule):
    rotation(schedule, [responder])
    swapped = Schedule.objects.create(name="Database", team=team, time_zone="America/New_York")
    rotation(swapped, [responder])
    now = timezone.now()
    Override.objects.create(schedule=swapped, user=manager, replaces=responder,
                            start=now - timedelta(hours=1), end=now + timedelta(hours=1))
    Schedule.objects.create(name="Fallback only", team=team, time_zone="UTC",
                            fallback_user=manager)
    Schedule.objects.create(name="Empty", team=team, time_zone="UTC")
    signed_in(client, responder)
    html = client.get(reverse("admin:oncall_schedule_changelist")).content.decode()
    rows = re.findall(r'<a href="[^"]*">([^<]*)</a></th>.*?'
                      r'<td class="field-on_call_now">([^<]*)</td>', html)
    assert dict(rows) == {"Platform primary": "rita", "Database": "max",
                          "Fallback only": "max", "Empty": "Nobody"}


def test_profile_lists_upcoming_shifts_in_the_schedules_time_zone(client, responder, schedule):
    rotation(schedule, [responder])
    signed_in(client, responder)
    page = client.get(reverse("admin:oncall_contactmethod_profile"))
    upcoming = page.context["upcoming"]
    assert upcoming and upcoming[0]["schedule"] == schedule
    assert upcoming[0]["now"]
    # Berlin's zone abbreviation, not the server's UTC.
    assert upcoming[0]["end"].endswith(("CET", "CEST"))


def test_index_panel_names_who_is_on_call_now(client, responder, schedule):
    rotation(schedule, [responder])
    signed_in(client, responder)
    html = client.get(reverse("admin:index")).content.decode()
    panel = html[html.index('id="tocsin-oncall-now"'):]
    assert "Platform primary" in panel and "rita" in panel[:panel.index("</table>")]


def notification(user, **fields):
    return PersonalNotification.objects.create(
        user=user, kind="email", address=f"{user}@example.com", purpose="test",
        dedup_key=f"test:{user}:{fields.get('status', 'x')}", **fields)


def test_responders_see_only_their_own_messages_and_may_not_resend(client, responder, manager):
    own = notification(responder, status="failed")
    notification(manager, status="failed")
    signed_in(client, responder)
    listing = client.get(reverse("admin:oncall_personalnotification_changelist"))
    assert list(listing.context["cl"].queryset) == [own]
    assert listing.context["action_form"] is None  # no re-send action offered
    assert client.post(reverse("admin:oncall_personalnotification_resend",
                               args=[own.pk])).status_code == 403


def test_message_logs_person_filter_lists_each_person_once(client, responder, manager):
    for number in range(3):
        PersonalNotification.objects.create(
            user=responder, kind="email", address="rita@example.com", purpose="test",
            dedup_key=f"test:rita:{number}")
    notification(manager)
    signed_in(client, manager)
    listing = client.get(reverse("admin:oncall_personalnotification_changelist"))
    person = next(spec for spec in listing.context["cl"].filter_specs
                  if spec.parameter_name == "user__id__exact")
    assert person.lookup_choices == [(manager.pk, "max"), (responder.pk, "rita")]


def test_manager_resends_a_failed_message(client, manager, responder,
                                          django_capture_on_commit_callbacks):
    failed = notification(responder, status="failed", error="boom")
    signed_in(client, manager)
    html = client.get(reverse("admin:oncall_personalnotification_change",
                              args=[failed.pk])).content.decode()
    assert "boom" in html and "Re-send</button>" in html
    with django_capture_on_commit_callbacks():
        response = client.post(reverse("admin:oncall_personalnotification_changelist"), {
            "action": "resend_selected", "_selected_action": [failed.pk]}, follow=True)
    assert "1 message(s) queued to be sent again." in response.content.decode()
    failed.refresh_from_db()
    assert failed.status == "pending"
