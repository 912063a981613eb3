"""Escalations in the admin: the incident page's "Escalation" section (where the policy
stands, what runs next and when, an "Escalate now" button) and the read-only list of
escalations, whose admin hosts the button's view (docs/escalation.md).

The section reads the Escalation row and its snapshot of the policy, never the policy as
edited since: it says what the engine (oncall/escalation.py) will do."""

import json
import math

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.timezone import localtime
from django.views.decorators.http import require_POST

from incidents.models import Incident
from oncall import escalation
from oncall.models import Escalation
from tocsin.adminkit import CSS, JS, ReadOnlyLogAdmin, admin_url, badge

Status = Escalation.Status
PAGE_SOMEONE_HINT = mark_safe(
    '<p class="tocsin-escalation__hint">Use <strong>Page someone</strong> under Pages to '
    "bring someone in.</p>")


def may_escalate(user) -> bool:
    """Whoever may page someone by hand may run a step by hand (as the API's escalate/)."""
    return user.has_perm("oncall.add_page") and user.has_perm("incidents.view_incident")


# Words -----------------------------------------------------------------------------------

def clock(when, now) -> str:
    """A time of day, with the date when it is not today's."""
    local = localtime(when)
    shape = "%H:%M %Z" if local.date() == localtime(now).date() else "%Y-%m-%d %H:%M %Z"
    return local.strftime(shape)


def when_words(due, now) -> str:
    """"in 5 minutes (at 14:07 UTC)". Rounded up: a step due in 4 min 10 s is "in 5
    minutes", never announced before it runs."""
    seconds = (due - now).total_seconds()
    if seconds <= 0:
        # The timer runs what is due within a minute; this is a page opened meanwhile.
        return f"now (since {clock(due, now)})"
    minutes = math.ceil(seconds / 60)
    if minutes < 120:
        wait = f"{minutes} minute{'s' if minutes != 1 else ''}"
    else:
        wait = f"{minutes // 60} h {minutes % 60} min"
    return f"in {wait} (at {clock(due, now)})"


def due_words(due, now) -> str:
    return f"due {when_words(due, now)}"


def repeat_words(loop: int, repeat: int) -> str:
    return f"repeat {loop} of {repeat}" if repeat else "no repeats"


def last_run(row: Escalation) -> tuple[int, int] | None:
    """(step index, loop) of the step that ran last, from where the row stands now: the
    engine moves ``next_step`` on by one, or back to 0 with the next loop."""
    if not row.steps_run or not row.steps:
        return None
    if row.next_step:
        return row.next_step - 1, row.loop
    return len(row.steps) - 1, max(row.loop - 1, 0)


def status_words(row: Escalation, incident: Incident) -> str:
    if row.status == Status.STOPPED:
        if incident.status == Incident.Status.ACKNOWLEDGED:
            by = incident.acknowledged_by
            return f"acknowledged by {by.get_username()}" if by else "acknowledged"
        if incident.status == Incident.Status.RESOLVED:
            return "resolved"
    if row.status == Status.ACTIVE and row.plan is None:
        return "step 1 is about to run"
    return row.note


def next_words(row: Escalation, now) -> str:
    """What runs next and when, while the escalation runs."""
    if row.status != Status.ACTIVE or row.next_due_at is None:
        return ""
    due = due_words(row.next_due_at, now)
    if row.plan is None:
        return f"step 1, {due}"
    count, repeat = len(row.steps), row.plan.get("repeat", 0)
    if row.next_step >= count:
        return (f"no more steps: exhausted {when_words(row.next_due_at, now)} unless "
                "someone acknowledges")
    again = f" again ({repeat_words(row.loop, repeat)})" if row.loop else ""
    return f"step {row.next_step + 1} of {count}{again}, {due}"


def button_words(incident, row: Escalation | None) -> str:
    """What pressing "Escalate now" does (oncall.escalation.escalate_now)."""
    if row is None or row.plan is None:
        words = "Runs step 1 now."
    elif not row.steps:
        # The engine reads a policy that had no steps again when someone escalates.
        words = "Reads the policy again and runs its step 1, if it has steps now."
    elif row.next_step < len(row.steps):
        words = f"Runs step {row.next_step + 1} of {len(row.steps)} now."
    else:
        words = "Runs the steps again from step 1, now."
    if incident.drill and row is not None and row.status == Status.SKIPPED:
        # By hand, a step pages its people even for a drill the policy leaves alone, and
        # the escalation does not go on from there by itself.
        words = f"{words[:-1]}: pages its people for this drill, that step only."
    return words


# The incident page's section ---------------------------------------------------------------

# The button sends how many steps had run when the page was drawn: pressed twice, or by
# two people at once, it runs one step (oncall.escalation.escalate_now).
SEEN_FIELD = "escalation_steps_seen"


def escalate_button(incident, row: Escalation | None):
    """A button of the incident page's own form, like "Page someone" (forms do not nest):
    ``formaction`` posts it to the escalate view, which reads no field."""
    return format_html(
        '<div class="tocsin-escalate-now"><button type="submit" class="button" '
        'formaction="{}" formmethod="post" formnovalidate name="{}" value="{}">Escalate now'
        '</button> <span class="tocsin-escalation__hint">{}</span></div>',
        reverse("admin:oncall_escalation_escalate", args=[incident.pk]), SEEN_FIELD,
        row.steps_run if row is not None else 0,
        button_words(incident, row))


def panel(content):
    return format_html('<div class="tocsin-escalation-panel">{}</div>', content)


def escalation_html(incident, request, pages):
    """The section: ``pages`` are the incident's pages, read once for this and the Pages
    section (oncall/contributions.py)."""
    row = Escalation.objects.select_related("policy").filter(pk=incident.pk).first()
    may_press = incident.is_open and may_escalate(request.user)
    if row is None:
        policy = escalation.policy_for(incident)
        if policy is None:
            return panel(format_html(
                "<p>No escalation policy: nobody is paged automatically.</p>{}",
                PAGE_SOMEONE_HINT if may_press else ""))
        return panel(format_html(
            "<p>Policy <strong>{}</strong> has not started for this incident (it opened "
            "before it had the policy).</p>{}",
            policy.name, escalate_button(incident, None) if may_press else ""))
    now = timezone.now()
    name = row.plan["name"] if row.plan else (row.policy.name if row.policy else "(deleted)")
    count = len(row.steps)
    rows = [
        ("Policy", format_html("<strong>{}</strong>", name)),
        ("Status", format_html("{} {}", badge(f"escalation-{row.status}",
                                                 row.get_status_display()),
                               status_words(row, incident))),
    ]
    ran = last_run(row)
    if ran is not None:
        step, loop = ran
        rows.append(("Step", format_html(
            "{} of {} · {} · ran at {}", step + 1, count,
            repeat_words(loop, row.plan.get("repeat", 0)), clock(row.last_step_at, now))))
        paged = [page.user.get_username() for page in pages
                 if page.step == step and page.loop == loop]
        rows.append(("Paged", ", ".join(paged) or "nobody: see the timeline"))
    upcoming = next_words(row, now)
    if upcoming:
        rows.append(("Next", upcoming))
    if may_press and row.plan is not None and not count and row.policy_id is None:
        # Nothing to run and no policy left to read again: escalate_now would refuse.
        footer = PAGE_SOMEONE_HINT
    else:
        footer = escalate_button(incident, row) if may_press else ""
    return panel(format_html(
        '<dl class="tocsin-escalation">{}</dl>{}',
        format_html_join("", "<dt>{}</dt><dd>{}</dd>", rows), footer))


# The list, and the button's view ------------------------------------------------------------

@admin.register(Escalation)
class EscalationAdmin(ReadOnlyLogAdmin):
    """Every incident's escalation, for whoever may view them. The row is the engine's
    state: never edited by hand. Deleting follows the delete permission, as for the other
    records the system writes: an incident's deletion cascades to it, and the admin
    refuses to delete an incident whose related rows its user may not delete."""

    list_display = ["incident_link", "policy_name", "status_label", "step_label",
                    "next_due", "last_step"]
    # The incident column links to the incident; the policy's to this row's page.
    list_display_links = ["policy_name"]
    list_filter = ["status"]
    search_fields = ["=incident__number", "incident__title"]
    list_select_related = ["incident", "policy"]
    list_per_page = 100
    # Steps numbered from 1 as on the incident page, the snapshot as indented JSON.
    fields = ["incident_link", "policy", "status_label", "note", "step_label", "loop",
              "next_due_at", "steps_run", "last_step_at", "created_at", "plan_text"]
    readonly_fields = fields

    class Media:
        css = {"all": CSS}
        js = JS

    @admin.display(description="Incident", ordering="incident__number")
    def incident_link(self, row):
        url = admin_url(row.incident, current_app=self.admin_site.name)
        return format_html('<a href="{}">#{} {}</a>', url, row.incident.number,
                           row.incident.title[:60])

    @admin.display(description="Policy")
    def policy_name(self, row):
        if row.plan:
            return row.plan["name"]
        return row.policy.name if row.policy else None

    @admin.display(description="Status", ordering="status")
    def status_label(self, row):
        return badge(f"escalation-{row.status}", row.get_status_display())

    @admin.display(description="Next step")
    def step_label(self, row):
        if row.plan is None:
            return 1
        return row.next_step + 1 if row.next_step < len(row.steps) else None

    @admin.display(description="Due", ordering="next_due_at")
    def next_due(self, row):
        return due_words(row.next_due_at, timezone.now()) if row.next_due_at else None

    @admin.display(description="Last step ran", ordering="last_step_at")
    def last_step(self, row):
        return clock(row.last_step_at, timezone.now()) if row.last_step_at else None

    @admin.display(description="Policy as run")
    def plan_text(self, row):
        return format_html('<pre class="tocsin-escalation__plan">{}</pre>',
                           json.dumps(row.plan, indent=2)) if row.plan else None

    def get_urls(self):
        return [
            # The incident page's "Escalate now" button posts here.
            path("escalate/<int:incident_id>/", self.admin_site.admin_view(self.escalate_view),
                 name=self.url_name("escalate")),
            *super().get_urls(),
        ]

    @method_decorator(require_POST)
    def escalate_view(self, request, incident_id):
        """Run the incident's next step now, and go back to its page saying what ran."""
        # Like the change page: no permission is a 403 whether or not the incident exists.
        if not may_escalate(request.user):
            raise PermissionDenied
        incident = Incident.objects.select_related("service", "escalation_policy") \
            .filter(pk=incident_id).first()
        if incident is None:
            return self._get_obj_does_not_exist_redirect(request, Incident._meta,
                                                         str(incident_id))
        try:
            seen = request.POST.get(SEEN_FIELD, "")
            outcome = escalation.escalate_now(
                incident, actor=request.user,
                # isdecimal, not isdigit ("²" is a digit int() refuses); short, since a
                # count is.
                expected_steps_run=int(seen) if seen.isdecimal() and len(seen) < 10 else None)
        except escalation.NoEscalation as problem:
            self.message_user(request, str(problem), messages.ERROR)
        else:
            self.log_change(request, incident, f"Escalated by hand: {outcome}.")
            self.message_user(request, f"{outcome[:1].upper()}{outcome[1:]}.",
                              messages.SUCCESS)
        return redirect(admin_url(incident, current_app=self.admin_site.name))

