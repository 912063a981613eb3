"""An escalation policy's steps on its admin page: whom each step pages and how long it
waits, edited by Managers, read by Responders."""

from django.urls import reverse

from incidents.models import EscalationPolicy
from oncall.models import EscalationStep, EscalationTarget, Schedule


def policy_post(team, **step):
    data = {"name": "Checkout", "description": "", "team": team.pk, "repeat": "1",
            "steps-TOTAL_FORMS": "1", "steps-INITIAL_FORMS": "0",
            "steps-MIN_NUM_FORMS": "0", "steps-MAX_NUM_FORMS": "1000",
            "steps-0-position": "0", "steps-0-delay_minutes": "5"}
    data.update({f"steps-0-{key}": value for key, value in step.items()})
    return data


def test_manager_adds_a_policy_whose_step_pages_a_schedule_and_a_person(client, manager,
                                                                       responder, team):
    schedule = Schedule.objects.create(name="Primary", team=team, time_zone="UTC")
    client.force_login(manager)
    response = client.post(reverse("admin:incidents_escalationpolicy_add"), policy_post(
        team, schedules=[schedule.pk], users=[responder.pk]))
    assert response.status_code == 302, response.context and response.context["errors"]
    policy = EscalationPolicy.objects.get()
    [step] = policy.steps.all()
    assert (policy.repeat, step.delay_minutes) == (1, 5)
    assert {(t.user_id, t.schedule_id) for t in EscalationTarget.objects.all()} == {
        (responder.pk, None), (None, schedule.pk)}
    page = client.get(reverse("admin:incidents_escalationpolicy_change", args=[policy.pk]))
    assert f'<option value="{schedule.pk}" selected>Primary</option>' in page.text


def test_a_step_that_pages_nobody_is_a_form_error(client, manager, team):
    client.force_login(manager)
    response = client.post(reverse("admin:incidents_escalationpolicy_add"),
                           policy_post(team, delay_minutes="10"))
    assert response.status_code == 200
    assert "Pick whom this step pages" in response.text
    assert not EscalationPolicy.objects.exists()


def test_responder_reads_a_policy_and_its_steps(client, responder, team):
    policy = EscalationPolicy.objects.create(name="Checkout", team=team)
    step = EscalationStep.objects.create(policy=policy, position=0, delay_minutes=7)
    EscalationTarget.objects.create(step=step, team=team)
    client.force_login(responder)
    page = client.get(reverse("admin:incidents_escalationpolicy_change", args=[policy.pk]))
    assert page.status_code == 200
    assert "Platform" in page.text and ">7<" in page.text
    response = client.post(reverse("admin:incidents_escalationpolicy_change", args=[policy.pk]),
                           policy_post(team, teams=[team.pk]))
    assert response.status_code == 403
