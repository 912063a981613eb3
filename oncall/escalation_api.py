"""``POST /api/v1/incidents/<id>/escalate/``: run the incident's next escalation step now
(docs/api.md#escalate-an-incident). Whoever may page someone by hand may escalate
(oncall.add_page: Responders and Managers)."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response
from rest_framework.views import APIView

from incidents.models import Incident
from oncall import escalation
from oncall.models import Escalation, Page


class EscalationSerializer(serializers.ModelSerializer):
    """Where an incident's escalation stands. Steps are numbered from 1 here, as on the
    incident page; ``next_step`` is null once the last step has run."""

    policy = serializers.SerializerMethodField()
    next_step = serializers.SerializerMethodField()
    steps = serializers.SerializerMethodField()

    class Meta:
        model = Escalation
        fields = ["status", "policy", "steps", "next_step", "loop", "next_due_at",
                  "steps_run", "last_step_at", "note"]

    def get_policy(self, row: Escalation) -> dict | None:
        plan = row.plan or {}
        return {"id": plan.get("policy", row.policy_id), "name": plan.get("name")} \
            if row.plan or row.policy_id else None

    def get_steps(self, row: Escalation) -> int:
        return len(row.steps)

    def get_next_step(self, row: Escalation) -> int | None:
        return row.next_step + 1 if row.next_step < len(row.steps) or row.plan is None \
            else None


class EscalateRequestSerializer(serializers.Serializer):
    steps_run = serializers.IntegerField(
        min_value=0, required=False,
        help_text="The escalation's steps_run as you last saw it: when a step ran since "
                  "(someone escalated, or its time came), nothing runs and the answer is "
                  "409. Leave it out to run the next step whatever ran before.")


class EscalateView(APIView):
    """Run the next step now; the escalation goes on from there while the incident is
    triggered. 409 when there is nothing to run (resolved, no policy, no steps)."""

    # GroupModelPermissions, the API's default, needs a queryset to find the model whose
    # permission a method needs (without one every request was a 500): a POST here needs
    # oncall.add_page, as paging someone by hand does.
    queryset = Page.objects.none()

    @extend_schema(request=EscalateRequestSerializer, responses=EscalationSerializer)
    def post(self, request, incident_pk: int):
        if not (request.user.has_perm("incidents.view_incident")
                and request.user.has_perm("oncall.add_page")):
            raise PermissionDenied
        incident = get_object_or_404(Incident.objects.select_related(
            "service", "escalation_policy"), pk=incident_pk)
        wanted = EscalateRequestSerializer(data=request.data)
        wanted.is_valid(raise_exception=True)
        try:
            outcome = escalation.escalate_now(
                incident, actor=request.user,
                expected_steps_run=wanted.validated_data.get("steps_run"))
        except escalation.NoEscalation as problem:
            return Response({"detail": str(problem)}, status=status.HTTP_409_CONFLICT)
        state = EscalationSerializer(Escalation.objects.get(pk=incident.pk)).data
        return Response({"detail": outcome, **state})


incident_escalate = EscalateView.as_view()
