from django.shortcuts import get_object_or_404
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from integrations import queue
from integrations.models import (
    INCIDENT_OPENING_TYPES,
    Alert,
    InboundEvent,
    Integration,
    IntegrationToken,
)


class IntegrationSerializer(serializers.ModelSerializer):
    webhook_url = serializers.CharField(read_only=True)
    email_address = serializers.CharField(read_only=True)
    create_incidents_for = serializers.ListField(
        child=serializers.ChoiceField(choices=INCIDENT_OPENING_TYPES), required=False
    )
    tags = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False
    )

    class Meta:
        model = Integration
        fields = [
            "id", "name", "kind", "service", "status", "description", "integration_url",
            "tags", "create_incidents_for", "rate_limit_per_minute", "default_severity",
            "webhook_url",
            "email_address", "created_at",
        ]

    def validate_kind(self, kind):
        if self.instance is not None and kind != self.instance.kind:
            raise serializers.ValidationError("The kind of an existing integration cannot change.")
        return kind

    def validate_status(self, new_status):
        instance = self.instance
        if instance is not None and new_status != instance.status and not instance.has_endpoint:
            raise serializers.ValidationError(
                "Status can be changed only once the integration has a token."
            )
        return new_status

    def validate_create_incidents_for(self, types):
        return list(dict.fromkeys(types))


class TokenSerializer(serializers.ModelSerializer):
    active = serializers.BooleanField(source="is_active", read_only=True)

    class Meta:
        model = IntegrationToken
        fields = ["id", "name", "prefix", "active", "created_at", "last_used_at", "revoked_at"]
        read_only_fields = ["prefix", "created_at", "last_used_at", "revoked_at"]


class AlertSerializer(serializers.ModelSerializer):
    warnings = serializers.SerializerMethodField()

    class Meta:
        model = Alert
        fields = [
            "id", "integration", "incident", "inbound_event", "alert_type", "message",
            "summary", "entity_id", "suppressed", "opened_incident", "payload", "urls",
            "extra", "warnings", "created_at",
        ]

    def get_warnings(self, alert) -> list[str]:
        return alert.warnings


class InboundEventSerializer(serializers.ModelSerializer):
    body = serializers.CharField(source="body_text", read_only=True)

    class Meta:
        model = InboundEvent
        fields = [
            "id", "trace_id", "integration", "source", "status", "error", "attempts",
            "received_at", "processed_at", "headers", "query", "body",
        ]


class IntegrationViewSet(viewsets.ModelViewSet):
    queryset = Integration.objects.select_related("service")
    serializer_class = IntegrationSerializer
    filterset_fields = ["service", "kind", "status"]
    action_permissions = {"regenerate_address": ["integrations.change_integration"]}

    @action(detail=True, methods=["post"], url_path="regenerate-address",
            serializer_class=serializers.Serializer)
    def regenerate_address(self, request, pk=None):
        """Give an email integration a new address; mail to the old one is rejected."""
        integration = self.get_object()
        if integration.kind != Integration.Kind.EMAIL:
            return Response(
                {"detail": "Only email integrations have an address."},
                status=status.HTTP_400_BAD_REQUEST,
            )
        integration.regenerate_email_address()
        return Response(IntegrationSerializer(integration).data)


class IntegrationTokenViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
    mixins.DestroyModelMixin, viewsets.GenericViewSet,
):
    """Bearer tokens of one incoming-webhook integration. The plaintext is in the response
    to POST only; DELETE revokes (the record stays, for the audit trail)."""

    serializer_class = TokenSerializer

    def get_queryset(self):
        return IntegrationToken.objects.filter(integration_id=self.kwargs["integration_pk"])

    def integration(self) -> Integration:
        return get_object_or_404(Integration, pk=self.kwargs["integration_pk"])

    def create(self, request, *args, **kwargs):
        integration = self.integration()
        if integration.kind != Integration.Kind.INCOMING_WEBHOOK:
            return Response(
                {"detail": "Only incoming_webhook integrations have tokens."},
                status=status.HTTP_400_BAD_REQUEST,
            )
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        token, plaintext = IntegrationToken.issue(integration, serializer.validated_data["name"])
        return Response(
            {**TokenSerializer(token).data, "token": plaintext}, status=status.HTTP_201_CREATED
        )

    def perform_destroy(self, token):
        token.revoke()


class AlertViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Alert.objects.all()
    serializer_class = AlertSerializer
    filterset_fields = ["integration", "incident", "alert_type", "entity_id", "suppressed"]


class InboundEventViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    queryset = InboundEvent.objects.all()
    serializer_class = InboundEventSerializer
    filterset_fields = ["integration", "status", "source"]
    action_permissions = {"reprocess": ["integrations.change_inboundevent"]}

    @action(detail=True, methods=["post"], serializer_class=serializers.Serializer)
    def reprocess(self, request, pk=None):
        event = self.get_object()
        if not queue.requeue(event):
            return Response(
                {"detail": f"Only failed events can be reprocessed; this one is {event.status}."},
                status=status.HTTP_409_CONFLICT,
            )
        event.refresh_from_db()
        return Response(InboundEventSerializer(event).data, status=status.HTTP_202_ACCEPTED)
