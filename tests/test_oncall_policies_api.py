"""Escalation policies through the REST API (docs/api.md#escalation-policies): steps and
their targets written and read inline, checked, and who may change them."""

from incidents.models import EscalationPolicy
from oncall.models import EscalationStep, Schedule
from tests.conftest import make_user

URL = "/api/v1/escalation-policies/"


def policy_body(team, *steps, **fields):
    return {"name": "Checkout", "team": team.pk, "repeat": 2, "steps": list(steps), **fields}


def test_a_manager_writes_a_policy_with_steps_and_reads_it_back(as_manager, team, responder):
    schedule = Schedule.objects.create(name="Primary", team=team, time_zone="Europe/Berlin")
    response = as_manager.post(URL, policy_body(
        team,
        {"delay_minutes": 5, "targets": [{"schedule": schedule.pk}]},
        {"delay_minutes": 10, "targets": [{"user": responder.pk}, {"team": team.pk}]},
    ), format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["repeat"], body["page_drills"]) == (2, False)
    assert body["steps"] == [
        {"delay_minutes": 5, "targets": [{"schedule": schedule.pk}]},
        {"delay_minutes": 10, "targets": [{"user": responder.pk}, {"team": team.pk}]},
    ]
    assert as_manager.get(f"{URL}{body['id']}/").json()["steps"] == body["steps"]


def test_putting_steps_replaces_them_and_leaving_them_out_keeps_them(as_manager, team,
                                                                    responder):
    created = as_manager.post(URL, policy_body(
        team, {"delay_minutes": 5, "targets": [{"user": responder.pk}]}), format="json").json()
    as_manager.patch(f"{URL}{created['id']}/", {"repeat": 0}, format="json")
    assert EscalationStep.objects.count() == 1
    response = as_manager.patch(f"{URL}{created['id']}/", {"steps": [
        {"delay_minutes": 1, "targets": [{"team": team.pk}]},
        {"delay_minutes": 3, "targets": [{"user": responder.pk}]}]}, format="json")
    assert response.status_code == 200
    assert [(s.position, s.delay_minutes) for s in EscalationStep.objects.order_by("position")] \
        == [(0, 1), (1, 3)]


def test_bad_steps_and_targets_are_400s_naming_the_problem(as_manager, team, responder):
    inactive = make_user("ian")
    inactive.is_active = False
    inactive.save()
    cases = [
        ({"repeat": 10}, "repeat"),
        ({"steps": [{"delay_minutes": 0, "targets": [{"user": responder.pk}]}]}, "steps"),
        ({"steps": [{"delay_minutes": 5, "targets": []}]}, "steps"),
        ({"steps": [{"delay_minutes": 5, "targets": [{"person": 1}]}]}, "steps"),
        ({"steps": [{"delay_minutes": 5, "targets": [{"user": 1, "team": 1}]}]}, "steps"),
        ({"steps": [{"delay_minutes": 5, "targets": [{"schedule": 999}]}]}, "steps"),
        ({"steps": [{"delay_minutes": 5, "targets": [{"user": inactive.pk}]}]}, "steps"),
    ]
    for fields, named in cases:
        response = as_manager.post(URL, {**policy_body(team), **fields}, format="json")
        assert response.status_code == 400, fields
        assert named in response.json(), (fields, response.json())
    assert not EscalationPolicy.objects.exists()


def test_a_responder_reads_policies_but_cannot_change_them(as_responder, team):
    policy = EscalationPolicy.objects.create(name="Checkout", team=team)
    assert as_responder.get(URL).json()["results"][0]["id"] == policy.pk
    assert as_responder.post(URL, policy_body(team), format="json").status_code == 403
    assert as_responder.patch(f"{URL}{policy.pk}/", {"repeat": 1},
                              format="json").status_code == 403


def test_a_schedule_a_policy_pages_cannot_be_deleted_from_under_it(as_manager, team):
    schedule = Schedule.objects.create(name="Primary", team=team, time_zone="UTC")
    as_manager.post(URL, policy_body(
        team, {"delay_minutes": 5, "targets": [{"schedule": schedule.pk}]}), format="json")
    response = as_manager.delete(f"/api/v1/schedules/{schedule.pk}/")
    assert response.status_code == 409
    assert Schedule.objects.filter(pk=schedule.pk).exists()
