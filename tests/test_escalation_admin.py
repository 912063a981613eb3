"""The admin side of escalations: the incident page's "Escalation" section in each state
of the run, its "Escalate now" button and the view behind it, the incident list's
Assignees column and who acknowledged under Times.

The steps run through the engine itself (oncall.escalation), as the worker would; nothing
is queued, since the tasks handed over after a commit are never run in these tests."""

import re
from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone
from django.utils.timezone import localtime

from incidents import lifecycle
from incidents.models import EscalationPolicy, Incident, Service, TimelineEntry
from oncall import escalation
from oncall.models import Escalation, EscalationStep, EscalationTarget, Page
from tests.conftest import make_user


@pytest.fixture
def pia(db):
    return make_user("pia", staff=False)


@pytest.fixture
def olga(db):
    return make_user("olga", staff=False)


@pytest.fixture
def policy(team, pia, olga):
    """Two steps: pia, then (5 minutes later) olga; the last waits 10 minutes."""
    policy = EscalationPolicy.objects.create(name="Primary", team=team)
    for position, (user, delay) in enumerate([(pia, 5), (olga, 10)]):
        step = EscalationStep.objects.create(policy=policy, position=position,
                                             delay_minutes=delay)
        EscalationTarget.objects.create(step=step, user=user)
    return policy


@pytest.fixture
def paged_incident(service, policy):
    """Opened on a service with the policy: its escalation is due at once."""
    service.escalation_policy = policy
    service.save()
    return lifecycle.open_incident(service=service, title="Disk full on db-1", entity_id="db-1")


def run_due_step(incident) -> str:
    """Run the incident's next step as the timer would once it falls due."""
    Escalation.objects.filter(pk=incident.pk).update(
        next_due_at=timezone.now() - timedelta(seconds=1))
    return escalation.run_step(incident.pk)


def section(client, incident) -> str:
    """The Escalation section of the incident page, as HTML."""
    html = client.get(reverse("admin:incidents_incident_change", args=[incident.pk])).text
    match = re.search(r"<h2[^>]*>Escalation</h2>(.*?)</fieldset>", html, re.S)
    assert match, "no Escalation section on the incident page"
    return match.group(1)


def entry(html: str, term: str) -> str:
    """The text of one <dt>term</dt><dd>…</dd> of the section, tags removed."""
    match = re.search(rf"<dt>{term}</dt><dd>(.*?)</dd>", html, re.S)
    return re.sub(r"<[^>]+>", "", match.group(1)) if match else ""


def escalate(client, incident):
    return client.post(reverse("admin:oncall_escalation_escalate", args=[incident.pk]),
                       follow=True)


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def viewer():
    """Someone who may see incidents and nothing more: no paging."""
    user = make_user("vera")
    user.user_permissions.add(Permission.objects.get(codename="view_incident"))
    return user


# The section, state by state


def test_incident_without_a_policy_says_nobody_is_paged_and_points_to_paging_by_hand(
        client, responder, incident):
    client.force_login(responder)
    html = section(client, incident)
    assert "No escalation policy: nobody is paged automatically." in html
    assert "Use <strong>Page someone</strong> under Pages" in html
    assert "Escalate now" not in html


@pytest.fixture
def incident_without_policy(team):
    other = Service.objects.create(name="Search", team=team)
    return lifecycle.open_incident(service=other, title="Other", entity_id="other")


def test_viewer_who_may_not_page_gets_neither_button_nor_hint(client, paged_incident,
                                                             incident_without_policy):
    client.force_login(viewer())
    assert "Escalate now" not in section(client, paged_incident)
    html = section(client, incident_without_policy)
    assert "No escalation policy" in html and "Page someone" not in html




def test_escalation_about_to_start_says_step_one_is_due(client, responder, paged_incident):
    client.force_login(responder)
    html = section(client, paged_incident)
    assert entry(html, "Policy") == "Primary"
    assert entry(html, "Status") == "Running step 1 is about to run"
    assert entry(html, "Next").startswith("step 1, due now (since ")
    assert "<dt>Step</dt>" not in html
    assert "Runs step 1 now." in html


def test_running_escalation_shows_step_1_of_2_who_it_paged_and_when_step_2_is_due(
        client, responder, paged_incident):
    assert escalation.run_step(paged_incident.pk) == "ran step 1 of 2 of Primary, paged 1"
    row = Escalation.objects.get(pk=paged_incident.pk)
    client.force_login(responder)
    html = section(client, paged_incident)
    assert 'tocsin-badge--escalation-active">Running' in html
    ran_at = localtime(row.last_step_at).strftime("%H:%M")
    assert entry(html, "Step") == f"1 of 2 · no repeats · ran at {ran_at} UTC"
    assert entry(html, "Paged") == "pia"
    due_at = localtime(row.next_due_at).strftime("%H:%M")
    assert entry(html, "Next") == f"step 2 of 2, due in 5 minutes (at {due_at} UTC)"
    assert "Escalate now" in html and "Runs step 2 of 2 now." in html


def test_repeats_are_counted_and_the_first_step_comes_round_again(
        client, responder, policy, paged_incident):
    policy.repeat = 2
    policy.save()
    run_due_step(paged_incident)
    client.force_login(responder)
    assert entry(section(client, paged_incident), "Step").startswith("1 of 2 · repeat 0 of 2")
    run_due_step(paged_incident)
    html = section(client, paged_incident)
    assert entry(html, "Step").startswith("2 of 2 · repeat 0 of 2")
    assert entry(html, "Paged") == "olga"
    assert entry(html, "Next").startswith("step 1 of 2 again (repeat 1 of 2), due in 10 minutes")
    run_due_step(paged_incident)
    html = section(client, paged_incident)
    assert entry(html, "Step").startswith("1 of 2 · repeat 1 of 2")
    assert entry(html, "Paged") == "pia"


def test_after_the_last_step_it_says_when_the_escalation_runs_out(
        client, responder, paged_incident):
    run_due_step(paged_incident)
    run_due_step(paged_incident)
    client.force_login(responder)
    html = section(client, paged_incident)
    assert entry(html, "Step").startswith("2 of 2")
    assert entry(html, "Next").startswith(
        "no more steps: exhausted in 10 minutes (at ")
    assert "Runs the steps again from step 1, now." in html


def test_exhausted_escalation_says_nobody_acknowledged(client, responder, paged_incident):
    for _ in range(3):
        run_due_step(paged_incident)
    assert Escalation.objects.get(pk=paged_incident.pk).status == "exhausted"
    client.force_login(responder)
    html = section(client, paged_incident)
    assert 'tocsin-badge--escalation-exhausted">Exhausted' in html
    assert entry(html, "Status") == "Exhausted every step ran and nobody acknowledged"
    assert entry(html, "Paged") == "olga"
    assert "<dt>Next</dt>" not in html
    # Still open: a person may run the steps again by hand.
    assert "Escalate now" in html


def test_acknowledged_escalation_is_stopped_and_names_who_acknowledged(
        client, responder, manager, paged_incident):
    run_due_step(paged_incident)
    assert lifecycle.acknowledge(paged_incident, actor=manager)
    client.force_login(responder)
    html = section(client, paged_incident)
    assert 'tocsin-badge--escalation-stopped">Stopped' in html
    assert entry(html, "Status") == "Stopped acknowledged by max"
    assert entry(html, "Paged") == "pia"
    assert "<dt>Next</dt>" not in html
    assert "Escalate now" in html


def test_resolved_incident_shows_the_stopped_escalation_without_a_button(
        client, responder, paged_incident):
    run_due_step(paged_incident)
    assert lifecycle.resolve(paged_incident)
    client.force_login(responder)
    html = section(client, paged_incident)
    assert entry(html, "Status") == "Stopped resolved"
    assert "Escalate now" not in html and "Page someone" not in html


def test_drill_the_policy_does_not_page_for_says_why(client, responder, service, policy):
    service.escalation_policy = policy
    service.save()
    drill = lifecycle.open_incident(service=service, title="Game day", entity_id="gd",
                                    drill=True)
    assert run_due_step(drill) == "skipped"
    client.force_login(responder)
    html = section(client, drill)
    assert 'tocsin-badge--escalation-skipped">Not paging' in html
    assert entry(html, "Status") == (
        "Not paging Drill: policy Primary does not page people for drills.")
    assert not Page.objects.exists()
    # A person may still page for it, and is told so.
    assert "Runs step 1 of 2 now: pages its people for this drill, that step only." in html


@pytest.fixture
def stepless_incident(service, team):
    """Opened under a policy without steps; the timer found nothing to run."""
    service.escalation_policy = EscalationPolicy.objects.create(name="Empty", team=team)
    service.save()
    incident = lifecycle.open_incident(service=service, title="Empty", entity_id="e")
    assert run_due_step(incident) == "skipped"
    return incident


def test_policy_without_steps_says_so_and_offers_to_read_it_again(
        client, responder, stepless_incident):
    client.force_login(responder)
    html = section(client, stepless_incident)
    assert entry(html, "Status") == "Not paging Policy Empty has no steps: nobody is paged."
    assert "Reads the policy again and runs its step 1, if it has steps now." in html


def test_steps_added_to_the_policy_since_run_when_someone_escalates(
        client, responder, pia, stepless_incident):
    step = EscalationStep.objects.create(policy=stepless_incident.service.escalation_policy,
                                         delay_minutes=5)
    EscalationTarget.objects.create(step=step, user=pia)
    client.force_login(responder)
    response = escalate(client, stepless_incident)
    assert messages_of(response) == ["Ran step 1 of 1 of Empty, paged 1."]
    assert Page.objects.get().user == pia


def test_deleted_policy_without_steps_offers_paging_by_hand_instead_of_a_button(
        client, responder, stepless_incident):
    stepless_incident.service.escalation_policy.delete()
    client.force_login(responder)
    html = section(client, stepless_incident)
    assert entry(html, "Policy") == "Empty"
    assert "Escalate now" not in html
    assert "Use <strong>Page someone</strong>" in html


def test_policy_given_after_the_incident_opened_has_not_started(
        client, responder, service, policy, incident):
    service.escalation_policy = policy
    service.save()
    client.force_login(responder)
    html = section(client, incident)
    assert "Policy <strong>Primary</strong> has not started for this incident" in html
    assert "Runs step 1 now." in html


def test_the_section_shows_the_policy_as_snapshot_not_as_edited_since(
        client, responder, policy, paged_incident):
    run_due_step(paged_incident)
    policy.name = "Renamed"
    policy.save()
    EscalationStep.objects.create(policy=policy, position=2, delay_minutes=1)
    client.force_login(responder)
    html = section(client, paged_incident)
    assert entry(html, "Policy") == "Primary"
    assert entry(html, "Step").startswith("1 of 2")


# Escalate now


def test_responder_escalates_now_and_step_two_pages_the_next_person(
        client, responder, olga, paged_incident):
    run_due_step(paged_incident)
    client.force_login(responder)
    response = escalate(client, paged_incident)
    assert response.redirect_chain == [
        (reverse("admin:incidents_incident_change", args=[paged_incident.pk]), 302)]
    assert messages_of(response) == ["Ran step 2 of 2 of Primary, paged 1."]
    step_two = Page.objects.get(step=1)
    assert (step_two.incident, step_two.user, step_two.loop) == (paged_incident, olga, 0)
    paged_incident.refresh_from_db()
    assert list(paged_incident.assignees.all()) == [olga]
    assert TimelineEntry.objects.filter(
        incident=paged_incident, kind="escalation",
        message="Escalated to step 2 of 2 of Primary by rita: paging olga").exists()
    log = LogEntry.objects.get(object_id=str(paged_incident.pk))
    assert (log.user, log.change_message) == (
        responder, "Escalated by hand: ran step 2 of 2 of Primary, paged 1.")
    # The page it lands on says where the escalation stands now.
    html = response.text
    assert "<dt>Step</dt><dd>2 of 2" in html and "<dt>Paged</dt><dd>olga</dd>" in html


def test_manager_escalates_before_the_first_step_ran(client, manager, pia, paged_incident):
    client.force_login(manager)
    response = escalate(client, paged_incident)
    assert messages_of(response) == ["Ran step 1 of 2 of Primary, paged 1."]
    assert Page.objects.get().user == pia
    # The timer finds nothing left to run for step 1.
    assert escalation.run_step(paged_incident.pk) == "not due"


def test_escalating_needs_the_add_page_permission(client, paged_incident):
    client.force_login(viewer())
    response = client.post(reverse("admin:oncall_escalation_escalate",
                                   args=[paged_incident.pk]))
    assert response.status_code == 403
    row = Escalation.objects.get(pk=paged_incident.pk)
    assert (row.steps_run, row.plan) == (0, None)
    assert not Page.objects.exists()


def test_escalating_is_a_post(client, responder, paged_incident):
    client.force_login(responder)
    assert client.get(reverse("admin:oncall_escalation_escalate",
                              args=[paged_incident.pk])).status_code == 405
    assert not Page.objects.exists()


def test_escalating_a_resolved_incident_is_refused_with_a_message(
        client, responder, paged_incident):
    lifecycle.resolve(paged_incident)
    client.force_login(responder)
    response = escalate(client, paged_incident)
    assert messages_of(response) == [
        f"Incident #{paged_incident.number} is resolved: nobody is paged about it."]
    assert not Page.objects.exists()


def test_escalating_without_a_policy_is_refused_with_a_message(client, responder, incident):
    client.force_login(responder)
    response = escalate(client, incident)
    assert messages_of(response) == [
        f"Incident #{incident.number} has no escalation policy (nor has its service): "
        "page someone by hand instead."]
    assert response.text.count('class="error"') == 1
    assert not Escalation.objects.exists()


def test_escalating_a_policy_without_steps_is_refused_with_a_message(
        client, responder, service, team):
    service.escalation_policy = EscalationPolicy.objects.create(name="Empty", team=team)
    service.save()
    incident = lifecycle.open_incident(service=service, title="Empty", entity_id="e")
    client.force_login(responder)
    assert messages_of(escalate(client, incident)) == [
        f"The escalation policy of incident #{incident.number} has no steps: page someone "
        "by hand instead."]


def test_escalating_an_unknown_incident_goes_back_to_the_index(client, responder):
    client.force_login(responder)
    response = escalate(client, Incident(pk=999999))
    assert response.redirect_chain == [(reverse("admin:index"), 302)]
    assert "doesn’t exist" in messages_of(response)[0]


# Assignees and who acknowledged


def test_incident_list_shows_the_assignees(client, responder, pia, olga, paged_incident,
                                           incident_without_policy):
    paged_incident.assignees.set([pia, olga])
    client.force_login(responder)
    html = client.get(reverse("admin:incidents_incident_changelist")).text
    cells = re.findall(r'<td class="field-assignee_list">(.*?)</td>', html)
    assert cells == ["-", "olga, pia"]  # newest incident first


def test_incident_page_says_who_acknowledged_it(client, responder, manager, paged_incident):
    client.force_login(responder)
    url = reverse("admin:incidents_incident_change", args=[paged_incident.pk])
    times = re.compile(r"<h2[^>]*>Times</h2>(.*?)</fieldset>", re.S)
    assert "Acknowledged by" in times.search(client.get(url).text).group(1)
    lifecycle.acknowledge(paged_incident, actor=manager)
    html = times.search(client.get(url).text).group(1)
    assert re.search(r"Acknowledged by:</label>\s*<div class=\"readonly\">max</div>", html)
    # Read-only, even for a Manager who may edit the incident's fields.
    client.force_login(manager)
    assert 'name="acknowledged_by"' not in client.get(url).text


# The list of escalations


def test_administrator_lists_the_escalations(client, administrator, paged_incident):
    run_due_step(paged_incident)
    client.force_login(administrator)
    html = client.get(reverse("admin:oncall_escalation_changelist")).text
    assert f"#{paged_incident.number} Disk full on db-1" in html
    assert "Primary" in html and "due in 5 minutes" in html
    assert client.get(reverse("admin:oncall_escalation_change",
                              args=[paged_incident.pk])).status_code == 200
    assert client.post(reverse("admin:oncall_escalation_change",
                               args=[paged_incident.pk]), {"status": "stopped"}).status_code == 403
    assert Escalation.objects.get(pk=paged_incident.pk).status == "active"


@pytest.mark.parametrize("role", ["responder", "manager"])
def test_responders_and_managers_read_the_escalations_list_but_change_nothing(
        client, request, role, paged_incident):
    run_due_step(paged_incident)
    client.force_login(request.getfixturevalue(role))
    assert f"#{paged_incident.number} Disk full on db-1" in \
        client.get(reverse("admin:oncall_escalation_changelist")).text
    assert client.post(reverse("admin:oncall_escalation_change",
                               args=[paged_incident.pk]), {"status": "stopped"}).status_code == 403
    assert Escalation.objects.get(pk=paged_incident.pk).status == "active"


def test_administrator_deletes_an_incident_with_its_escalation(client, administrator,
                                                                paged_incident):
    client.force_login(administrator)
    url = reverse("admin:incidents_incident_delete", args=[paged_incident.pk])
    # The confirmation lists the escalation among what goes, with no permission missing.
    assert "<li>Escalations: 1</li>" in client.get(url).text
    client.post(url, {"post": "yes"})
    assert not Incident.objects.exists() and not Escalation.objects.exists()


def test_escalate_now_pressed_twice_from_the_same_page_runs_one_step(
        client, responder, olga, paged_incident):
    run_due_step(paged_incident)
    client.force_login(responder)
    html = section(client, paged_incident)
    seen = re.search(r'name="escalation_steps_seen" value="(\d+)"', html).group(1)
    url = reverse("admin:oncall_escalation_escalate", args=[paged_incident.pk])

    first = client.post(url, {"escalation_steps_seen": seen}, follow=True)
    second = client.post(url, {"escalation_steps_seen": seen}, follow=True)

    assert messages_of(first) == ["Ran step 2 of 2 of Primary, paged 1."]
    assert messages_of(second) == [
        "A step ran since this page was shown (someone escalated, or its time came): "
        "nothing more was run. Look at the page again."]
    assert Page.objects.filter(incident=paged_incident, step=1).count() == 1
    assert Escalation.objects.get(pk=paged_incident.pk).steps_run == 2
