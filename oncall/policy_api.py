"""Escalation policies through the REST API: ``escalation-policies`` with their steps and
targets written and read inline (docs/api.md#escalation-policies). Who may change them is
incidents' escalationpolicy permission: Managers edit, Responders read."""

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Prefetch
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers, viewsets

from incidents.models import EscalationPolicy, Team
from oncall.models import EscalationStep, EscalationTarget, Schedule
from oncall.validation import MAX_STEP_DELAY_MINUTES

User = get_user_model()

# What a target names, and where that lives. Users must be active to be paged.
TARGET_MODELS = {
    "user": lambda: User.objects.filter(is_active=True),
    "schedule": Schedule.objects.all,
    "team": Team.objects.all,
}
TARGET_HELP = 'A target is {"user": id}, {"schedule": id} or {"team": id}.'
MAX_STEPS = 20
MAX_TARGETS = 50


@extend_schema_field({"type": "object", "example": {"schedule": 3},
                      "description": TARGET_HELP})
class TargetField(serializers.Field):
    def to_representation(self, target: EscalationTarget) -> dict:
        return {target.kind: getattr(target, f"{target.kind}_id")}

    def to_internal_value(self, data) -> dict:
        if not isinstance(data, dict) or len(data) != 1 or next(iter(data)) not in TARGET_MODELS:
            raise serializers.ValidationError(TARGET_HELP)
        key, value = next(iter(data.items()))
        if type(value) is not int:
            raise serializers.ValidationError(f"{key}: {value!r} is not an id.")
        found = TARGET_MODELS[key]().filter(pk=value).first()
        if found is None:
            raise serializers.ValidationError(f"No {key} with id {value}"
                                              + (" (or not active)." if key == "user" else "."))
        return {key: found}


class StepSerializer(serializers.ModelSerializer):
    delay_minutes = serializers.IntegerField(
        min_value=1, max_value=MAX_STEP_DELAY_MINUTES,
        help_text="Minutes to wait after this step before the next one runs (1 to 1440).")
    targets = serializers.ListField(child=TargetField(), min_length=1, max_length=MAX_TARGETS)

    class Meta:
        model = EscalationStep
        fields = ["delay_minutes", "targets"]

    def to_representation(self, step):
        return {"delay_minutes": step.delay_minutes,
                "targets": [TargetField().to_representation(t) for t in step.targets.all()]}


class EscalationPolicySerializer(serializers.ModelSerializer):
    repeat = serializers.IntegerField(
        min_value=0, max_value=9, required=False, default=0,
        help_text="How many times the steps run again after the last one.")
    steps = StepSerializer(
        many=True, required=False, max_length=MAX_STEPS,
        help_text="In order. On PUT/PATCH the list replaces the steps; leave the key out to "
                  "keep them.")

    class Meta:
        model = EscalationPolicy
        fields = ["id", "name", "description", "team", "repeat", "page_drills", "steps"]

    @transaction.atomic
    def create(self, validated_data):
        steps = validated_data.pop("steps", [])
        policy = EscalationPolicy.objects.create(**validated_data)
        replace_steps(policy, steps)
        return policy

    @transaction.atomic
    def update(self, policy, validated_data):
        steps = validated_data.pop("steps", None)
        policy = super().update(policy, validated_data)
        if steps is not None:
            replace_steps(policy, steps)
        return policy


def replace_steps(policy: EscalationPolicy, steps: list[dict]) -> None:
    """The policy's steps become ``steps``, numbered in order. Steps have no identity of
    their own: an escalation in progress works from the steps it started with."""
    policy.steps.all().delete()
    for position, step in enumerate(steps):
        row = EscalationStep.objects.create(policy=policy, position=position,
                                            delay_minutes=step["delay_minutes"])
        EscalationTarget.objects.bulk_create(
            EscalationTarget(step=row, **target) for target in step["targets"])


class EscalationPolicyViewSet(viewsets.ModelViewSet):
    """Escalation policies with their steps (GroupModelPermissions: escalationpolicy)."""

    serializer_class = EscalationPolicySerializer
    queryset = EscalationPolicy.objects.select_related("team").prefetch_related(
        Prefetch("steps", queryset=EscalationStep.objects.order_by("position", "id")
                 .prefetch_related("targets")))
    ordering = ["name", "id"]
    ordering_fields = ["name", "id"]
    filterset_fields = ["team"]
