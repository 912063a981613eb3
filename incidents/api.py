from django.db.models import Count
from django_filters import rest_framework as filters
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from incidents import extensions, lifecycle
from incidents.models import Incident, Service, Team, TimelineEntry
from tocsin.apikit import ModelSerializer, NoBody


class TeamSerializer(ModelSerializer):
    class Meta:
        model = Team
        fields = ["id", "name", "description", "members", "created_at"]
        extra_kwargs = {"members": {"required": False}}


class ServiceSerializer(ModelSerializer):
    class Meta:
        model = Service
        fields = ["id", "name", "description", "team", "escalation_policy", "created_at"]

    def get_fields(self):
        """The service's own fields and those other apps contribute (incidents/extensions.py:
        the destinations app adds ``destinations``), which the API has always listed right
        after the team."""
        own = list(super().get_fields().items())
        after_team = [name for name, _ in own].index("team") + 1
        contributed = [(extra.name, extra.make()) for extra in extensions.service_api_fields]
        return dict(own[:after_team] + contributed + own[after_team:])


class TimelineEntrySerializer(ModelSerializer):
    actor = serializers.StringRelatedField()

    class Meta:
        model = TimelineEntry
        fields = ["id", "kind", "message", "actor", "data", "created_at"]


class PersonSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()


class IncidentSerializer(ModelSerializer):
    alert_count = serializers.IntegerField(read_only=True)
    # Who is paged about it now, and who acknowledged it (docs/escalation.md#assignees).
    assignees = PersonSerializer(many=True, read_only=True)
    acknowledged_by = PersonSerializer(read_only=True, allow_null=True)

    class Meta:
        model = Incident
        fields = [
            "id", "number", "unique_id", "title", "summary", "status", "urgency", "severity",
            "priority", "sla", "escalation_policy", "tags", "entity_id", "drill", "labels",
            "room_prefix", "alert_count", "service", "assignees", "created_at",
            "acknowledged_at", "acknowledged_by", "resolved_at",
        ]
        # State changes go through the acknowledge/resolve actions so that they are
        # recorded on the timeline and sent to destinations.
        read_only_fields = [
            "number", "unique_id", "status", "entity_id", "drill", "service", "created_at",
            "acknowledged_at", "resolved_at",
        ]


class NoteSerializer(serializers.Serializer):
    text = serializers.CharField(max_length=10_000)


class IncidentFilter(filters.FilterSet):
    status = filters.MultipleChoiceFilter(choices=Incident.Status.choices)
    created_after = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Incident
        fields = ["service", "status", "entity_id", "drill", "urgency"]


class TeamViewSet(viewsets.ModelViewSet):
    queryset = Team.objects.prefetch_related("members")
    serializer_class = TeamSerializer
    ordering = ["name", "id"]
    ordering_fields = ["name", "created_at", "id"]
    filterset_fields = ["name"]


class ServiceViewSet(viewsets.ModelViewSet):
    queryset = Service.objects.all()
    serializer_class = ServiceSerializer
    ordering = ["name", "id"]
    ordering_fields = ["name", "created_at", "id"]
    filterset_fields = ["team", "name"]

    def get_queryset(self):
        related = [extra.prefetch for extra in extensions.service_api_fields if extra.prefetch]
        return super().get_queryset().prefetch_related(*related)


class IncidentViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = IncidentSerializer
    filterset_class = IncidentFilter
    # Newest first. Explicit, because the alert_count annotation (a GROUP BY) makes Django
    # drop Meta.ordering, and a list without ORDER BY pages unpredictably on PostgreSQL.
    ordering = ["-number"]
    ordering_fields = ["number", "created_at", "status", "id"]
    action_permissions = {
        "acknowledge": ["incidents.acknowledge_incident"],
        "resolve": ["incidents.resolve_incident"],
        "notes": ["incidents.comment_incident"],
        "timeline": ["incidents.view_incident"],
    }

    def get_queryset(self):
        return (Incident.objects.annotate(alert_count=Count("alerts"))
                .select_related("acknowledged_by").prefetch_related("tags", "assignees"))

    def _state_change(self, request, change):
        incident = self.get_object()
        if not change(incident, actor=request.user):
            return Response(
                {"detail": f"Incident #{incident.number} is already {incident.status}."},
                status=status.HTTP_409_CONFLICT,
            )
        return Response(IncidentSerializer(self.get_queryset().get(pk=incident.pk)).data)

    @action(detail=True, methods=["post"], serializer_class=NoBody)
    def acknowledge(self, request, pk=None):
        return self._state_change(request, lifecycle.acknowledge)

    @action(detail=True, methods=["post"], serializer_class=NoBody)
    def resolve(self, request, pk=None):
        return self._state_change(request, lifecycle.resolve)

    @action(detail=True, methods=["post"], serializer_class=NoteSerializer)
    def notes(self, request, pk=None):
        incident = self.get_object()
        note = NoteSerializer(data=request.data)
        note.is_valid(raise_exception=True)
        entry = lifecycle.add_note(incident, note.validated_data["text"], actor=request.user)
        return Response(TimelineEntrySerializer(entry).data, status=status.HTTP_201_CREATED)

    @action(detail=True, methods=["get"], serializer_class=TimelineEntrySerializer)
    def timeline(self, request, pk=None):
        incident = self.get_object()
        entries = incident.timeline.select_related("actor")
        return Response(TimelineEntrySerializer(entries, many=True).data)
