"""The admin's forms for on call: humane inputs for what is stored as JSON or as instants
(participants as usernames, restrictions as text, overrides in the schedule's local time),
checked by oncall/validation.py like the REST API's input."""

from datetime import datetime
from zoneinfo import ZoneInfo

from django import forms
from django.contrib.admin.widgets import AdminSplitDateTime
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError

from oncall import shifts, validation
from oncall.admin.restriction_text import format_restrictions, parse_restrictions
from oncall.models import ContactMethod, NotificationRule, Override, Rotation, Schedule
from oncall.shift_engine import local_to_instant

User = get_user_model()
ZONES = sorted(validation.available_zones())


class ParticipantsField(forms.CharField):
    """An ordered list of user ids, typed as usernames separated by commas (shift order)."""

    def prepare_value(self, value):
        if isinstance(value, list):
            names = dict(User.objects.filter(pk__in=value).values_list("pk", "username"))
            return ", ".join(names.get(pk, f"#{pk}") for pk in value)
        return value

    def to_python(self, value):
        if isinstance(value, list):
            return value
        names = [name.strip() for name in (value or "").replace("\n", ",").split(",")]
        names = [name for name in names if name]
        found = dict(User.objects.filter(username__in=names).values_list("username", "pk"))
        unknown = [name for name in names if name not in found]
        if unknown:
            raise ValidationError("No user named " + ", ".join(f"“{n}”" for n in unknown) + ".")
        return [found[name] for name in names]


class RestrictionsField(forms.CharField):
    """Restrictions as ``Mon-Fri 09:00-17:00; Sat 22:00-06:00`` (restriction_text.py)."""

    def prepare_value(self, value):
        if isinstance(value, list):
            return format_restrictions(value)
        return value

    def to_python(self, value):
        if isinstance(value, list):
            return value
        return validation.normalize_restrictions(parse_restrictions(value))


class ScheduleForm(forms.ModelForm):
    time_zone = forms.ChoiceField(
        choices=[(zone, zone) for zone in ZONES], initial="UTC",
        help_text="Handoffs, restrictions and the timeline are in this zone's local time.")

    class Meta:
        model = Schedule
        fields = ["name", "description", "team", "time_zone", "fallback_user"]

    def clean_time_zone(self):
        return validation.validate_time_zone(self.cleaned_data["time_zone"])


class RotationForm(forms.ModelForm):
    participants = ParticipantsField(
        widget=forms.TextInput(attrs={"size": 50, "list": "tocsin-usernames"}),
        help_text="Usernames in shift order, separated by commas: shift 1 is the first "
                  "person's, shift 2 the second's, and so on round.")
    restrictions = RestrictionsField(
        required=False, widget=forms.TextInput(attrs={"size": 50}),
        help_text="Optional: when this rotation counts, in local time, for example "
                  "“Mon-Fri 09:00-17:00; Sat 22:00-06:00” (a window may pass midnight). "
                  "Empty: around the clock.")

    class Meta:
        model = Rotation
        fields = ["name", "layer", "shift_kind", "shift_length", "handoff_date", "handoff_time",
                  "participants", "restrictions"]
        labels = {"handoff_date": "First handoff date", "handoff_time": "Handoff time"}
        help_texts = {
            "layer": "At any moment the highest layer with someone on call wins.",
            "shift_length": "In units of the shift kind (2 × daily = two-day shifts).",
            "handoff_time": "Local wall-clock time in the schedule's zone.",
        }

    def clean(self):
        cleaned = super().clean()
        kind, length = cleaned.get("shift_kind"), cleaned.get("shift_length")
        if kind and length is not None:
            # The longest shift depends on its kind, as in the REST API (oncall.validation).
            try:
                validation.validate_shift_length(kind, length)
            except ValidationError as exc:
                self.add_error("shift_length", exc)
        return cleaned


class LocalSplitDateTimeField(forms.SplitDateTimeField):
    """A date and a time kept naive: the form makes them an instant in the schedule's zone,
    which the user may pick on the same form."""

    widget = AdminSplitDateTime

    def compress(self, data_list):
        if data_list and data_list[0] is not None and data_list[1] is not None:
            return datetime.combine(*data_list)
        return None


def schedule_from(value) -> Schedule | None:
    """The schedule a query parameter names, if it names one."""
    return Schedule.objects.filter(pk=value).first() if str(value or "").isdigit() else None


def local_parts(instant: datetime, zone: ZoneInfo) -> list:
    local = instant.astimezone(zone)
    return [local.date(), local.time().replace(microsecond=0)]


class OverrideForm(forms.ModelForm):
    start = LocalSplitDateTimeField(help_text="Local time in the schedule's time zone.")
    end = LocalSplitDateTimeField(help_text="Local time in the schedule's time zone.")

    class Meta:
        model = Override
        fields = ["schedule", "user", "replaces", "start", "end"]
        help_texts = {
            "user": "Who is on call instead.",
            "replaces": "Whom they stand in for; empty: everyone the rotations put on call.",
        }

    def __init__(self, *args, request_user=None, may_place_anyone=True, **kwargs):
        super().__init__(*args, **kwargs)
        self.may_place_anyone = may_place_anyone
        self.request_user = request_user
        if not may_place_anyone and "user" in self.fields:
            # A Responder's override puts themselves on call (a swap), nobody else.
            field = self.fields["user"]
            field.queryset = User.objects.filter(pk=request_user.pk)
            field.initial = request_user.pk
            field.disabled = True
            field.help_text = "Overrides you add put you on call."
        schedule = self.instance.schedule if self.instance.schedule_id else None
        if schedule is not None:
            zone = ZoneInfo(schedule.time_zone)
            for name in ("start", "end"):
                self.initial[name] = local_parts(getattr(self.instance, name), zone)
        else:
            schedule = schedule_from(self.initial.get("schedule"))
        if schedule is not None:
            for name in ("start", "end"):
                self.fields[name].help_text = f"Local time in {schedule.time_zone}."

    def clean(self):
        """Start and end are local times in the schedule's zone: an ambiguous one (clocks
        going back) is its first occurrence, one skipped (clocks going forward) moves to
        the first valid instant, as for handoffs (docs/on-call.md#schedules)."""
        cleaned = super().clean()
        schedule = cleaned.get("schedule")
        if not self.may_place_anyone and cleaned.get("user") != self.request_user:
            self.add_error("user", "You may only put yourself on call.")
        if schedule is None:
            return cleaned
        zone = ZoneInfo(schedule.time_zone)
        for name in ("start", "end"):
            if isinstance(cleaned.get(name), datetime) and cleaned[name].tzinfo is None:
                cleaned[name] = local_to_instant(cleaned[name], zone)
                setattr(self.instance, name, cleaned[name])
        start, end = cleaned.get("start"), cleaned.get("end")
        if start and end and end <= start:
            self.add_error("end", "The end must be after the start.")
        replaces = cleaned.get("replaces")
        if cleaned.get("user") and cleaned.get("user") == replaces:
            self.add_error("replaces", "Someone cannot stand in for themselves.")
        elif replaces and start and end and end > start and \
                not shifts.replaced_person_is_on_call(
                    schedule, replaces.pk, start, end, leaving_out=self.instance.pk):
            self.add_error("replaces", f"{replaces.get_username()} is not on call at any "
                                       "time between the start and the end, so this override "
                                       "would change nothing.")
        return cleaned


def fix_user_field(form, request_user, may_edit_anyone: bool):
    """A user who may only keep their own rows sees their own name, fixed."""
    if not may_edit_anyone and "user" in form.base_fields:
        field = form.base_fields["user"]
        field.queryset = User.objects.filter(pk=request_user.pk)
        field.initial = request_user.pk
        field.disabled = True


class ContactMethodForm(forms.ModelForm):
    class Meta:
        model = ContactMethod
        fields = ["user", "kind", "label", "address", "enabled"]
        help_texts = {
            "address": "Email: an address. SMS and voice: a phone number with its country "
                       "code (+4915112345678). ntfy: the topic URL (https://ntfy.sh/my-topic).",
        }

    def clean(self):
        cleaned = super().clean()
        kind, address = cleaned.get("kind"), cleaned.get("address")
        if kind and address:
            try:
                cleaned["address"] = validation.normalize_contact_address(kind, address)
            except ValidationError as error:
                self.add_error("address", error)
            else:
                self.instance.address = cleaned["address"]
        return cleaned


class NotificationRuleForm(forms.ModelForm):
    class Meta:
        model = NotificationRule
        fields = ["user", "contact_method", "delay_minutes"]
        labels = {"delay_minutes": "Minutes after being paged"}
        help_texts = {"delay_minutes": f"0: at once; at most {validation.MAX_RULE_DELAY_MINUTES}"
                                       " (acknowledge links last 24 hours)."}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "delay_minutes" in self.fields:
            self.fields["delay_minutes"].widget.attrs["max"] = validation.MAX_RULE_DELAY_MINUTES

    def clean_delay_minutes(self):
        # The same limit as the REST API's (oncall.validation).
        return validation.validate_rule_delay(self.cleaned_data["delay_minutes"])

    def clean(self):
        cleaned = super().clean()
        user, method = cleaned.get("user"), cleaned.get("contact_method")
        if user and method and method.user_id != user.pk:
            self.add_error("contact_method", "Pick one of this user's contact methods.")
        return cleaned
