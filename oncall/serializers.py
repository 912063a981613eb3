"""The on-call resources of the REST API: how they read and which input they refuse
(docs/api.md#on-call). The views are in oncall/api.py."""

from datetime import datetime

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied

from oncall import rights, shifts, validation
from oncall.models import (
    ContactMethod,
    NotificationRule,
    Override,
    Page,
    PersonalNotification,
    Rotation,
    Schedule,
)
from tocsin.apikit import ModelSerializer, StrictJSONField

User = get_user_model()

INSTANT_HELP = ("Give an ISO 8601 instant with its offset, for example 2027-03-28T01:30:00Z "
                "or 2027-03-28T03:30:00+02:00 (in a URL, write + as %2B).")


def parse_instant(value: str) -> datetime:
    """An aware datetime from ISO 8601 text; ValueError with the reason otherwise. A time
    without an offset is refused rather than guessed: the portal's zone, the schedule's and
    the client's may all differ."""
    try:
        parsed = parse_datetime(value.strip())
    except ValueError:
        parsed = None
    if parsed is None:
        raise ValueError(f"Not a date and time. {INSTANT_HELP}")
    if parsed.tzinfo is None:
        raise ValueError(f"The time has no offset. {INSTANT_HELP}")
    return parsed


def messages_of(exc: DjangoValidationError) -> list[str]:
    return list(exc.messages)




@extend_schema_field(OpenApiTypes.DATETIME)
class InstantField(serializers.DateTimeField):
    """A date-time that must carry its offset (DRF would read a naive one in TIME_ZONE)."""

    def to_internal_value(self, value):
        if isinstance(value, str):
            try:
                parse_instant(value)
            except ValueError as exc:
                raise serializers.ValidationError(str(exc)) from None
        return super().to_internal_value(value)


@extend_schema_field({"type": "string", "example": "2027-03-01T09:00:00",
                      "description": "Local wall-clock date and time, no offset."})
class HandoffField(serializers.Field):
    """A rotation's handoff: a date and time on the schedule's wall clock, without an offset
    (an instant would drift by an hour across every daylight-saving change). Stored as the
    rotation's handoff_date and handoff_time."""

    def __init__(self, **kwargs):
        super().__init__(source="*", **kwargs)

    def to_representation(self, rotation) -> str:
        return datetime.combine(rotation.handoff_date, rotation.handoff_time).isoformat(
            timespec="seconds")

    def to_internal_value(self, data):
        try:
            parsed = validation.parse_handoff(data)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(messages_of(exc)) from None
        return {"handoff_date": parsed.date(), "handoff_time": parsed.time().replace(microsecond=0)}


class UserSerializer(ModelSerializer):
    """An active user of the portal."""

    class Meta:
        model = User
        fields = ["id", "username", "email"]
        read_only_fields = fields


class OwnedSerializer(ModelSerializer):
    """Rows that belong to one user (contact methods, notification rules): the requester
    may name only themselves unless they may manage everyone's (403 otherwise), and a row
    never moves to another user."""

    def check_owner(self, owner):
        requester = self.context["request"].user
        if owner != requester and not rights.keeps_everyones_contact_methods(requester):
            raise PermissionDenied(
                f"You may only manage your own {self.Meta.model._meta.verbose_name_plural}.")

    def validate_user(self, user):
        if self.instance is not None and user != self.instance.user:
            raise serializers.ValidationError(
                "The user of an existing entry cannot change; create a new one.")
        return user


class ContactMethodSerializer(OwnedSerializer):
    """How a user is reached: an email address, a phone number for SMS or voice calls, or an
    ntfy topic URL (docs/on-call.md#contact-methods)."""

    user = serializers.PrimaryKeyRelatedField(
        queryset=User.objects.filter(is_active=True), required=False,
        help_text="Default: you.")

    class Meta:
        model = ContactMethod
        fields = ["id", "user", "kind", "address", "label", "enabled", "created_at"]
        read_only_fields = ["created_at"]
        # Uniqueness is checked on the normalized address, in validate().
        validators = []

    def validate(self, attrs):
        instance = self.instance
        user = attrs.get("user") or (instance.user if instance else self.context["request"].user)
        self.check_owner(user)
        kind = attrs.get("kind") or instance.kind
        if "address" in attrs or "kind" in attrs:
            address = attrs.get("address", instance.address if instance else "")
            try:
                attrs["address"] = validation.normalize_contact_address(kind, address)
            except DjangoValidationError as exc:
                raise serializers.ValidationError({"address": messages_of(exc)}) from None
            taken = ContactMethod.objects.filter(user=user, kind=kind, address=attrs["address"])
            if instance is not None:
                taken = taken.exclude(pk=instance.pk)
            if taken.exists():
                raise serializers.ValidationError(
                    {"address": [f"This user already has this {kind} address."]})
        attrs["user"] = user
        return attrs


class NotificationRuleSerializer(OwnedSerializer):
    """“delay_minutes after I am paged, use this contact method.”"""

    user = serializers.PrimaryKeyRelatedField(
        queryset=User.objects.filter(is_active=True), required=False,
        help_text="Default: the contact method's user.")
    delay_minutes = serializers.IntegerField(
        min_value=0, max_value=validation.MAX_RULE_DELAY_MINUTES, required=False, default=0,
        help_text="Minutes after the page; 0 to 1440 (acknowledge links last 24 hours).")

    class Meta:
        model = NotificationRule
        fields = ["id", "user", "contact_method", "delay_minutes", "created_at"]
        read_only_fields = ["created_at"]
        validators = []  # checked in validate(), with a message naming the field

    def get_fields(self):
        fields = super().get_fields()
        request = self.context.get("request")
        user = getattr(request, "user", None)
        # (The schema generator asks with no signed-in user: it needs no narrowing.)
        if user is not None and user.is_authenticated and \
                not rights.keeps_everyones_contact_methods(user):
            # Someone else's contact method is "not found", like an id that does not
            # exist: a different answer would tell which ids are other people's.
            fields["contact_method"].queryset = ContactMethod.objects.filter(user=user)
        return fields

    def validate(self, attrs):
        instance = self.instance
        method = attrs.get("contact_method") or instance.contact_method
        user = attrs.get("user") or (instance.user if instance else method.user)
        self.check_owner(user)
        if method.user_id != user.pk:
            raise serializers.ValidationError(
                {"contact_method": ["Pick one of this user's contact methods."]})
        delay = attrs.get("delay_minutes", instance.delay_minutes if instance else 0)
        taken = NotificationRule.objects.filter(contact_method=method, delay_minutes=delay)
        if instance is not None:
            taken = taken.exclude(pk=instance.pk)
        if taken.exists():
            raise serializers.ValidationError({"delay_minutes": [
                f"This contact method already has a rule at {delay} minutes."]})
        attrs["user"] = user
        return attrs


class PersonalNotificationSerializer(ModelSerializer):
    """One message to one person (a page, a test, a handoff notice) and how it went."""

    class Meta:
        model = PersonalNotification
        fields = [
            "id", "user", "contact_method", "kind", "address", "purpose", "incident",
            "status", "attempts", "response_status", "remote_id", "error", "created_at",
            "last_attempt_at", "next_attempt_at", "sent_at",
        ]
        read_only_fields = fields


class RotationSerializer(ModelSerializer):
    """A rotation, written and read inside its schedule (docs/on-call.md#schedules)."""

    # Writable, so that a schedule's PUT/PATCH can say which rotation an entry updates.
    id = serializers.IntegerField(required=False)
    handoff = HandoffField(
        help_text="Start of the first shift, local to the schedule's time_zone: "
                  "YYYY-MM-DDTHH:MM[:SS], no offset.")
    shift_length = serializers.IntegerField(min_value=1, required=False, default=1)
    participants = serializers.ListField(
        child=serializers.IntegerField(), min_length=1,
        help_text="Ordered user ids: shift i belongs to participants[i mod n]. "
                  "A user may appear more than once.")
    restrictions = StrictJSONField(
        required=False, default=list,
        help_text='[{"weekdays": [0-6, Monday = 0], "start": "HH:MM", "end": "HH:MM"}], '
                  "local time; empty: always.")

    class Meta:
        model = Rotation
        fields = ["id", "name", "layer", "shift_kind", "shift_length", "handoff",
                  "participants", "restrictions"]

    def validate_participants(self, ids):
        try:
            return validation.validate_participants(ids)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(messages_of(exc)) from None

    def validate_restrictions(self, value):
        try:
            return validation.normalize_restrictions(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(messages_of(exc)) from None


NEW_ROTATION_NEEDS = ("name", "handoff_date", "participants")


def rotation_fields(entry: dict) -> dict:
    """A validated rotation entry as model field values."""
    return {key: value for key, value in entry.items() if key != "id"}


class ScheduleSerializer(ModelSerializer):
    """A schedule with its rotations inline."""

    rotations = RotationSerializer(
        many=True, required=False,
        help_text="Every rotation of the schedule. On PUT/PATCH the list replaces them: an "
                  "entry with an id updates that rotation, one without creates a rotation, "
                  "and rotations left out are deleted. Leave the key out to keep them.")

    class Meta:
        model = Schedule
        fields = ["id", "name", "description", "team", "time_zone", "fallback_user",
                  "rotations", "created_at"]
        read_only_fields = ["created_at"]
        extra_kwargs = {"fallback_user": {"queryset": User.objects.filter(is_active=True)}}

    def validate_time_zone(self, name):
        try:
            return validation.validate_time_zone(name)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(messages_of(exc)) from None

    def validate_rotations(self, entries):
        # Each existing rotation's shift kind and length, for entries that change only one.
        mine = {pk: (kind, length) for pk, kind, length in self.instance.rotations.values_list(
            "pk", "shift_kind", "shift_length")} if self.instance else {}
        # Problems keyed by the entry's index, as DRF reports the entries' own fields.
        errors, seen = {}, set()
        for index, entry in enumerate(entries):
            rotation_id = entry.get("id")
            if rotation_id is None:
                # A PATCH skips missing keys; a new rotation still needs these.
                missing = [name.removesuffix("_date") for name in NEW_ROTATION_NEEDS
                           if name not in entry]
                if missing:
                    errors[str(index)] = {name: ["This field is required."] for name in missing}
            elif rotation_id not in mine:
                errors[str(index)] = {"id": [
                    f"This schedule has no rotation {rotation_id}; leave the id out to create "
                    "one."]}
            elif rotation_id in seen:
                errors[str(index)] = {"id": [f"Rotation {rotation_id} is listed twice."]}
            seen.add(rotation_id)
            # The longest shift depends on its kind (a year of hours, days or weeks): the
            # same rule as the admin's (oncall.validation).
            kind, length = mine.get(rotation_id, (Rotation.ShiftKind.WEEKLY, 1))
            try:
                validation.validate_shift_length(entry.get("shift_kind", kind),
                                                 entry.get("shift_length", length))
            except DjangoValidationError as exc:
                errors.setdefault(str(index), {})["shift_length"] = messages_of(exc)
        if errors:
            raise serializers.ValidationError(errors)
        return entries

    @transaction.atomic
    def create(self, validated_data):
        entries = validated_data.pop("rotations", [])
        schedule = Schedule.objects.create(**validated_data)
        for entry in entries:
            Rotation.objects.create(schedule=schedule, **rotation_fields(entry))
        return schedule

    @transaction.atomic
    def update(self, schedule, validated_data):
        entries = validated_data.pop("rotations", None)
        schedule = super().update(schedule, validated_data)
        if entries is not None:
            self.replace_rotations(schedule, entries)
        return schedule

    def replace_rotations(self, schedule, entries):
        """Rotations are updated in place (Rotation.save keeps the definition that made the
        past shifts, so editing a rotation never rewrites them), not deleted and made
        anew."""
        existing = {rotation.pk: rotation for rotation in schedule.rotations.all()}
        kept = {entry["id"] for entry in entries if entry.get("id")}
        for rotation_id, rotation in existing.items():
            if rotation_id not in kept:
                rotation.delete()
        for entry in entries:
            fields = rotation_fields(entry)
            if entry.get("id") is None:
                Rotation.objects.create(schedule=schedule, **fields)
                continue
            rotation = existing[entry["id"]]
            changed = {name: value for name, value in fields.items()
                       if getattr(rotation, name) != value}
            if changed:
                for name, value in changed.items():
                    setattr(rotation, name, value)
                rotation.save()
        # The prefetched rotations are stale now; the response reads them again.
        if hasattr(schedule, "_prefetched_objects_cache"):
            schedule._prefetched_objects_cache.pop("rotations", None)


class OverrideSerializer(ModelSerializer):
    """``user`` on call from ``start`` to ``end`` in place of ``replaces`` (or of everyone)."""

    start = InstantField()
    end = InstantField()
    user = serializers.PrimaryKeyRelatedField(queryset=User.objects.filter(is_active=True))
    replaces = serializers.PrimaryKeyRelatedField(
        queryset=User.objects.all(), required=False, allow_null=True,
        help_text="The user taken off call; null: everyone the rotations put on call.")

    class Meta:
        model = Override
        fields = ["id", "schedule", "start", "end", "user", "replaces", "created_by",
                  "created_at"]
        read_only_fields = ["schedule", "created_by", "created_at"]

    def validate(self, attrs):
        instance = self.instance
        start = attrs.get("start", instance.start if instance else None)
        end = attrs.get("end", instance.end if instance else None)
        if start is not None and end is not None and end <= start:
            raise serializers.ValidationError({"end": ["The end must be after the start."]})
        user = attrs.get("user", instance.user if instance else None)
        replaces = attrs.get("replaces", instance.replaces if instance else None)
        if replaces is not None and replaces == user:
            raise serializers.ValidationError(
                {"replaces": ["A user cannot replace themselves."]})
        schedule = instance.schedule if instance else self.context.get("schedule")
        if replaces is not None and schedule is not None and start and end and \
                not shifts.replaced_person_is_on_call(
                    schedule, replaces.pk, start, end,
                    leaving_out=instance.pk if instance else None):
            raise serializers.ValidationError({"replaces": [
                f"{replaces.get_username()} is not on call at any time between the start "
                "and the end, so this override would change nothing."]})
        return attrs


class OnCallUserSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()


class OnCallSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    users = OnCallUserSerializer(many=True)


class ShiftSerializer(serializers.Serializer):
    user = serializers.IntegerField()
    username = serializers.CharField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    override = serializers.IntegerField(
        allow_null=True, help_text="The override that put the user on call, if one did.")


class ScheduleRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class OnCallEverywhereSerializer(serializers.Serializer):
    schedule = ScheduleRefSerializer()
    users = OnCallUserSerializer(many=True)


class PageNotificationSerializer(ModelSerializer):
    """One message of a page and how it went."""

    class Meta:
        model = PersonalNotification
        fields = ["id", "kind", "delay_minutes", "status", "attempts", "next_attempt_at",
                  "sent_at", "error"]
        read_only_fields = fields


class PageSerializer(ModelSerializer):
    """A person paged about an incident, with the messages their rules sent."""

    user = serializers.PrimaryKeyRelatedField(queryset=User.objects.filter(is_active=True))
    reason = serializers.CharField(max_length=255, required=False, allow_blank=True)
    notifications = PageNotificationSerializer(many=True, read_only=True)

    class Meta:
        model = Page
        fields = ["id", "incident", "user", "step", "loop", "reason", "created_at",
                  "notifications"]
        read_only_fields = ["incident", "step", "loop", "created_at"]
