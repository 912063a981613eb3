"""People on call: how each user is reached (contact methods, notification rules), who is on
call when (schedules, rotations, overrides), and every page and message sent to a person.

Who is on call at an instant is computed, never stored: oncall/shifts.py turns a schedule's
rotations and overrides into shifts (docs/on-call.md)."""

from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q

from tocsin.outbox import OutboxItem

User = settings.AUTH_USER_MODEL


class ContactMethod(models.Model):
    class Kind(models.TextChoices):
        EMAIL = "email", "Email"
        SMS = "sms", "SMS"
        VOICE = "voice", "Voice call"
        NTFY = "ntfy", "ntfy push"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="contact_methods")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    # An email address, an E.164 phone number (+4915112345678) or an ntfy topic URL.
    address = models.CharField(max_length=500)
    label = models.CharField(max_length=100, blank=True, help_text="For example “Work phone”.")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["user_id", "id"]
        constraints = [
            models.UniqueConstraint(fields=["user", "kind", "address"],
                                    name="contact_method_unique_per_user"),
        ]
        permissions = [
            ("manage_everyones_contact_methods",
             "Can edit anyone's contact methods and notification rules"),
        ]

    def __str__(self):
        name = self.label or self.get_kind_display()
        return f"{name}: {self.address}"


class NotificationRule(models.Model):
    """“``delay_minutes`` after I am paged, use this contact method.”"""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="notification_rules")
    contact_method = models.ForeignKey(ContactMethod, on_delete=models.CASCADE,
                                       related_name="rules")
    delay_minutes = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["user_id", "delay_minutes", "id"]
        constraints = [
            models.UniqueConstraint(fields=["contact_method", "delay_minutes"],
                                    name="notification_rule_unique_per_method_and_delay"),
        ]

    def __str__(self):
        return f"after {self.delay_minutes} min: {self.contact_method}"

    def clean(self):
        if self.contact_method_id and self.user_id and \
                self.contact_method.user_id != self.user_id:
            raise ValidationError({"contact_method": "Pick one of this user's contact methods."})


class Schedule(models.Model):
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    team = models.ForeignKey("incidents.Team", on_delete=models.PROTECT,
                             related_name="schedules")
    # An IANA zone name (Europe/Berlin): rotations' handoffs and restrictions are
    # wall-clock times in it.
    time_zone = models.CharField(max_length=64, default="UTC")
    fallback_user = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="On call whenever the rotations and overrides leave nobody.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Rotation(models.Model):
    class ShiftKind(models.TextChoices):
        HOURLY = "hourly", "Hourly"
        DAILY = "daily", "Daily"
        WEEKLY = "weekly", "Weekly"

    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="rotations")
    name = models.CharField(max_length=200)
    # At any instant the highest layer with someone on call wins.
    layer = models.IntegerField(default=1)
    shift_kind = models.CharField(max_length=10, choices=ShiftKind.choices,
                                  default=ShiftKind.WEEKLY)
    shift_length = models.PositiveIntegerField(default=1)
    # The first shift's start as a wall-clock date and time in the schedule's zone (no
    # instant: a daily 09:00 handoff stays 09:00 across daylight-saving changes).
    handoff_date = models.DateField()
    handoff_time = models.TimeField()
    # Ordered user ids: shift i belongs to participants[i mod n].
    participants = models.JSONField(default=list)
    # [{"weekdays": [0-6], "start": "HH:MM", "end": "HH:MM"}], local time; empty: always.
    restrictions = models.JSONField(default=list, blank=True)
    # Earlier definitions of this rotation, each with the instant it stopped applying
    # (the end of the shift in progress when it was edited), so that editing a rotation
    # never rewrites shifts that have already started (oncall/shifts.py).
    history = models.JSONField(default=list, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["schedule_id", "-layer", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(shift_length__gte=1),
                                   name="rotation_shift_length_positive"),
        ]

    def __str__(self):
        return self.name


class Override(models.Model):
    """``user`` is on call from ``start`` to ``end`` in place of ``replaces``, or of
    everyone the rotations give when ``replaces`` is empty."""

    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="overrides")
    start = models.DateTimeField()
    end = models.DateTimeField()
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    replaces = models.ForeignKey(User, null=True, blank=True, on_delete=models.CASCADE,
                                 related_name="+")
    created_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["start", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(end__gt=F("start")),
                                   name="override_ends_after_start"),
        ]
        indexes = [models.Index(fields=["schedule", "end"])]

    def __str__(self):
        # In the schedule's zone, like every time the admin shows for a schedule.
        zone = ZoneInfo(self.schedule.time_zone)
        start, end = self.start.astimezone(zone), self.end.astimezone(zone)
        return (f"{self.user} on call {start:%Y-%m-%d %H:%M} – {end:%Y-%m-%d %H:%M} "
                f"{end:%Z}")


class Page(models.Model):
    """One user paged about one incident: their notification rules then run, each at its
    delay, as PersonalNotification rows."""

    incident = models.ForeignKey("incidents.Incident", on_delete=models.CASCADE,
                                 related_name="pages")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="pages")
    # Which escalation step and loop paged them; empty for a page made by hand.
    step = models.PositiveIntegerField(null=True, blank=True)
    loop = models.PositiveIntegerField(default=0)
    reason = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # A step run pages each person once: the database refuses a second page, should
            # two workers ever both believe the step is theirs (oncall/escalation.py).
            models.UniqueConstraint(fields=["incident", "step", "loop", "user"],
                                    condition=Q(step__isnull=False),
                                    name="one_page_per_person_per_step_run"),
        ]

    def __str__(self):
        return f"{self.user} paged for incident {self.incident_id}"


class PersonalNotification(OutboxItem):
    """One message to one person through one contact method: a page's rule, a test, or a
    handoff notice. Recorded before it is sent and sent through the outbox
    (oncall/sending.py), like deliveries."""

    class Purpose(models.TextChoices):
        PAGE = "page", "Page"
        TEST = "test", "Test"
        HANDOFF = "handoff", "Handoff notice"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    # Empty when the message goes to the account's email address (a user with no rules).
    contact_method = models.ForeignKey(ContactMethod, null=True, blank=True,
                                       on_delete=models.SET_NULL, related_name="+")
    kind = models.CharField(max_length=10, choices=ContactMethod.Kind.choices)
    # Where it goes, kept as it was when recorded.
    address = models.CharField(max_length=500)
    purpose = models.CharField(max_length=10, choices=Purpose.choices)
    page = models.ForeignKey(Page, null=True, blank=True, on_delete=models.CASCADE,
                             related_name="notifications")
    incident = models.ForeignKey("incidents.Incident", null=True, blank=True,
                                 on_delete=models.CASCADE, related_name="+")
    delay_minutes = models.PositiveIntegerField(default=0)
    subject = models.CharField(max_length=255, blank=True)
    text = models.TextField(blank=True)
    # One message per happening (a page's rule, a shift's notice): recording it twice hits
    # this constraint instead of sending twice.
    dedup_key = models.CharField(max_length=255, unique=True)
    response_status = models.PositiveIntegerField(null=True, blank=True)
    remote_id = models.CharField(max_length=255, blank=True)

    class Meta(OutboxItem.Meta):
        permissions = [("resend_personalnotification", "Can re-send notifications to people")]

    def __str__(self):
        return f"{self.get_purpose_display()} to {self.user} by {self.get_kind_display()}"


class EscalationStep(models.Model):
    """One step of an escalation policy: whom it pages, and how long to wait after it ran
    before the next step runs (docs/on-call.md#escalation-policies)."""

    policy = models.ForeignKey("incidents.EscalationPolicy", on_delete=models.CASCADE,
                               related_name="steps")
    # Steps run in this order (ties by id); the API and the admin number them 0, 1, 2…
    position = models.PositiveIntegerField(default=0)
    delay_minutes = models.PositiveIntegerField(
        default=5, help_text="Minutes to wait after this step before the next one runs.")

    class Meta:
        ordering = ["policy_id", "position", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(delay_minutes__gte=1),
                                   name="escalation_step_delay_at_least_1"),
        ]

    def __str__(self):
        return f"step {self.position + 1}"


class EscalationTarget(models.Model):
    """Whom a step pages: one user, whoever a schedule has on call when the step runs, or
    every member of a team. Exactly one of the three is set."""

    step = models.ForeignKey(EscalationStep, on_delete=models.CASCADE, related_name="targets")
    user = models.ForeignKey(User, null=True, blank=True, on_delete=models.CASCADE,
                             related_name="+")
    # A schedule a policy pages cannot be deleted from under it: remove it from the step.
    schedule = models.ForeignKey(Schedule, null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="escalation_targets")
    team = models.ForeignKey("incidents.Team", null=True, blank=True,
                             on_delete=models.CASCADE, related_name="+")

    class Meta:
        ordering = ["step_id", "id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(user__isnull=False, schedule__isnull=True, team__isnull=True)
                           | Q(user__isnull=True, schedule__isnull=False, team__isnull=True)
                           | Q(user__isnull=True, schedule__isnull=True, team__isnull=False)),
                name="escalation_target_exactly_one"),
        ]

    # What a target may name; exactly one is set (the constraint above).
    KINDS = ("user", "schedule", "team")

    def __str__(self):
        return str(self.user or self.schedule or self.team)

    @property
    def kind(self) -> str:
        """Which of KINDS this target names."""
        return next(kind for kind in self.KINDS if getattr(self, f"{kind}_id") is not None)



class Escalation(models.Model):
    """An incident's run through its escalation policy: which step runs next, in which
    loop, and when. A row, not process memory, so any worker can run the next step and a
    restarted one loses nothing (oncall/escalation.py, docs/escalation.md)."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Running"
        # Acknowledged or resolved: nothing more runs by itself.
        STOPPED = "stopped", "Stopped"
        # Every step ran, repeats included, and nobody acknowledged.
        EXHAUSTED = "exhausted", "Exhausted"
        # Nobody is paged automatically (a drill the policy does not page, a policy with
        # no steps); ``note`` says why.
        SKIPPED = "skipped", "Not paging"

    incident = models.OneToOneField("incidents.Incident", primary_key=True,
                                    on_delete=models.CASCADE, related_name="escalation")
    policy = models.ForeignKey("incidents.EscalationPolicy", null=True, blank=True,
                               on_delete=models.SET_NULL, related_name="+")
    # The policy as it was when the escalation started (name, repeat, page_drills, steps
    # with their targets): editing the policy changes incidents triggered afterwards only.
    plan = models.JSONField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    # Index of the step that runs next; one past the last step means "the last step's wait
    # is running": when it ends, the escalation is exhausted.
    next_step = models.PositiveIntegerField(default=0)
    loop = models.PositiveIntegerField(default=0)
    next_due_at = models.DateTimeField(null=True, blank=True)
    steps_run = models.PositiveIntegerField(default=0)
    last_step_at = models.DateTimeField(null=True, blank=True)
    note = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        # The timer's query: running escalations by due time.
        indexes = [models.Index(fields=["status", "next_due_at"])]

    def __str__(self):
        return f"escalation of incident {self.incident_id}"

    @property
    def steps(self) -> list[dict]:
        return (self.plan or {}).get("steps", [])
