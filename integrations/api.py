from django.shortcuts import get_object_or_404
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from integrations import preview, processing, queue, rules
from integrations.mapping import validate_mapping
from integrations.models import (
    INCIDENT_OPENING_TYPES,
    Alert,
    AlertRule,
    InboundEvent,
    Integration,
    IntegrationToken,
)
from integrations.signals import announce_configuration_change
from tocsin.apikit import ModelSerializer, NoBody, StrictJSONField
from tocsin.permissions import sees_integration_endpoints

# Whoever has these can send alerts as the integration: null for Responders.
ENDPOINT_FIELDS = ("webhook_url", "email_address")


def asker_sees_endpoints(context: dict) -> bool:
    """Whether the request a serializer answers comes from someone who may see integration
    endpoints; without a request, nobody is assumed to."""
    request = context.get("request")
    return request is not None and sees_integration_endpoints(request.user)


class IntegrationSerializer(ModelSerializer):
    webhook_url = serializers.CharField(
        read_only=True, allow_null=True,
        help_text="Generic integrations; null for other kinds and for Responders.",
    )
    email_address = serializers.CharField(
        read_only=True, allow_null=True,
        help_text="Email integrations; null for other kinds and for Responders.",
    )
    create_incidents_for = serializers.ListField(
        child=serializers.ChoiceField(choices=INCIDENT_OPENING_TYPES), required=False
    )
    tags = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False
    )
    mapping = StrictJSONField(
        required=False, allow_null=True,
        help_text='null (off) or {"direct": {FIELD: SOURCE}, "conditional": [{"if", "then"}]}',
    )

    class Meta:
        model = Integration
        fields = [
            "id", "name", "kind", "service", "status", "description", "integration_url",
            "tags", "create_incidents_for", "rate_limit_per_minute", "default_severity",
            "mapping", "webhook_url",
            "email_address", "created_at",
        ]

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if not asker_sees_endpoints(self.context):
            for name in ENDPOINT_FIELDS:
                if name in data:
                    data[name] = None
        return data

    def validate_mapping(self, value):
        errors = validate_mapping(value)
        if errors:
            raise serializers.ValidationError(errors)
        return value

    def validate(self, attrs):
        kind = attrs.get("kind") or (self.instance.kind if self.instance else None)
        if attrs.get("mapping") is not None and kind != Integration.Kind.GENERIC:
            raise serializers.ValidationError(
                {"mapping": ["mapping applies to generic integrations only; use null"]}
            )
        return attrs

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


class TokenSerializer(ModelSerializer):
    active = serializers.BooleanField(source="is_active", read_only=True)

    class Meta:
        model = IntegrationToken
        fields = ["id", "name", "prefix", "active", "created_at", "last_used_at", "revoked_at"]
        read_only_fields = ["prefix", "created_at", "last_used_at", "revoked_at"]


class AlertRuleSerializer(ModelSerializer):
    class Meta:
        model = AlertRule
        fields = ["id", "integration", "name", "position", "enabled", "conditions", "actions",
                  "created_at"]
        read_only_fields = ["integration", "created_at"]

    def validate_conditions(self, value):
        errors = rules.validate_conditions(value)
        if errors:
            raise serializers.ValidationError(errors)
        return value

    def validate_actions(self, value):
        errors = rules.validate_actions(value)
        if errors:
            raise serializers.ValidationError(errors)
        return value


class PreviewSerializer(serializers.Serializer):
    payload = StrictJSONField(
        required=False, help_text="A body to try: a JSON object, or text (a raw mail)."
    )
    event = serializers.IntegerField(
        required=False, help_text="Or the id of one of the integration's inbound events."
    )
    mapping = StrictJSONField(
        required=False, allow_null=True, help_text="An unsaved mapping to try (null: off)."
    )
    rules = StrictJSONField(
        required=False, help_text="Unsaved rules to try instead of the saved ones."
    )

    def validate(self, attrs):
        if ("payload" in attrs) == ("event" in attrs):
            raise serializers.ValidationError("Give either payload or event.")
        return attrs


class AlertSerializer(ModelSerializer):
    warnings = serializers.SerializerMethodField()
    rules = serializers.SerializerMethodField()

    class Meta:
        model = Alert
        fields = [
            "id", "integration", "incident", "inbound_event", "alert_type", "message",
            "summary", "entity_id", "suppressed", "opened_incident", "payload", "urls",
            "extra", "warnings", "rules", "created_at",
        ]

    def get_warnings(self, alert) -> list[str]:
        return alert.warnings

    def get_rules(self, alert) -> list[dict]:
        """The alert rules that matched and what each did (Alert.extra["rules"])."""
        return list(alert.extra.get("rules") or [])


class InboundEventSerializer(ModelSerializer):
    body = serializers.CharField(source="body_text", read_only=True)

    class Meta:
        model = InboundEvent
        fields = [
            "id", "trace_id", "integration", "source", "status", "error", "attempts",
            "received_at", "processed_at", "headers", "query", "body",
        ]

    def to_representation(self, event):
        data = super().to_representation(event)
        if not asker_sees_endpoints(self.context):
            # A received mail names its integration's address (in its headers and the
            # Recipient header kept here): blanked for those who may not see it.
            data["body"] = event.hidden_body()
            data["error"] = event.hide_endpoint(data["error"])
            for name in ("headers", "query"):
                data[name] = {
                    key: event.hide_endpoint(value) if isinstance(value, str) else value
                    for key, value in (data[name] or {}).items()
                }
        return data


class IntegrationViewSet(viewsets.ModelViewSet):
    queryset = Integration.objects.select_related("service")
    serializer_class = IntegrationSerializer
    ordering = ["name", "id"]
    ordering_fields = ["name", "created_at", "id"]
    filterset_fields = ["service", "kind", "status"]
    action_permissions = {
        "regenerate_address": ["integrations.change_integration"],
        # A preview changes nothing, so whoever may see the integration may try it.
        "preview": ["integrations.view_integration"],
    }

    def perform_create(self, serializer):
        integration = serializer.save()
        if integration.mapping is not None:
            announce_configuration_change(integration, "mapping", self.request.user)

    def perform_update(self, serializer):
        before = serializer.instance.mapping
        integration = serializer.save()
        if integration.mapping != before:
            announce_configuration_change(integration, "mapping", self.request.user)

    @action(detail=True, methods=["post"], serializer_class=PreviewSerializer)
    def preview(self, request, pk=None):
        """The alert a payload (or a received event) would make, after the saved or the
        given mapping and rules, and which rules match. Stores nothing."""
        integration = self.get_object()
        serializer = PreviewSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if ("mapping" in data or "rules" in data) and not request.user.has_perm(
                "integrations.change_integration"):
            # Unsaved configurations run user-written regexes in the web process: only for
            # those who could save them anyway.
            return Response(
                {"detail": "Trying an unsaved mapping or rules needs permission to change "
                           "the integration; without them the saved ones are used."},
                status=status.HTTP_403_FORBIDDEN,
            )
        overrides = {
            "mapping_config": data.get("mapping", processing.SAVED),
            "rule_items": data.get("rules"),
        }
        try:
            if "event" in data:
                event = get_object_or_404(InboundEvent, pk=data["event"], integration=integration)
                result = preview.preview_event(integration, event, **overrides)
            else:
                result = preview.preview(
                    integration, preview.body_bytes(data["payload"]), **overrides
                )
        except preview.InvalidConfiguration as exc:
            return Response(exc.errors, status=status.HTTP_400_BAD_REQUEST)
        return Response(result)

    @action(detail=True, methods=["post"], url_path="regenerate-address",
            serializer_class=NoBody)
    def regenerate_address(self, request, pk=None):
        """Give an email integration a new address; mail to the old one is rejected."""
        integration = self.get_object()
        if integration.kind != Integration.Kind.EMAIL:
            return Response(
                {"detail": "Only email integrations have an address."},
                status=status.HTTP_400_BAD_REQUEST,
            )
        integration.regenerate_email_address()
        return Response(IntegrationSerializer(integration, context={"request": request}).data)


class IntegrationTokenViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
    mixins.DestroyModelMixin, viewsets.GenericViewSet,
):
    """Bearer tokens of one incoming-webhook integration. The plaintext is in the response
    to POST only; DELETE revokes (the record stays, for the audit trail)."""

    serializer_class = TokenSerializer
    ordering = ["-created_at", "-id"]
    ordering_fields = ["created_at", "name", "id"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the OpenAPI generator has no URL kwargs
            return IntegrationToken.objects.none()
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


class AlertRuleViewSet(viewsets.ModelViewSet):
    """The alert rules of one integration (docs/mapping-and-rules.md), in position order."""

    serializer_class = AlertRuleSerializer
    # The order the rules run in; it is not a view choice, so ?ordering= is refused.
    ordering = ["position", "id"]
    ordering_fields = []
    filterset_fields = ["enabled"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the OpenAPI generator has no URL kwargs
            return AlertRule.objects.none()
        return AlertRule.objects.filter(integration=self.integration())

    def integration(self) -> Integration:
        return get_object_or_404(Integration, pk=self.kwargs["integration_pk"])

    def perform_create(self, serializer):
        rule = serializer.save(integration=self.integration())
        announce_configuration_change(rule.integration, "rules", self.request.user)

    def perform_update(self, serializer):
        rule = serializer.save()
        announce_configuration_change(rule.integration, "rules", self.request.user)

    def perform_destroy(self, rule):
        integration = rule.integration
        rule.delete()
        announce_configuration_change(integration, "rules", self.request.user)


class AlertViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Alert.objects.all()
    serializer_class = AlertSerializer
    ordering = ["-created_at", "-id"]
    ordering_fields = ["created_at", "id"]
    filterset_fields = ["integration", "incident", "alert_type", "entity_id", "suppressed"]


class InboundEventViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    queryset = InboundEvent.objects.select_related("integration")
    serializer_class = InboundEventSerializer
    ordering = ["-received_at", "-id"]
    ordering_fields = ["received_at", "id"]
    filterset_fields = ["integration", "status", "source"]
    action_permissions = {"reprocess": ["integrations.change_inboundevent"]}

    @action(detail=True, methods=["post"], serializer_class=NoBody)
    def reprocess(self, request, pk=None):
        event = self.get_object()
        if not queue.requeue(event):
            return Response(
                {"detail": f"Only failed events can be reprocessed; this one is {event.status}."},
                status=status.HTTP_409_CONFLICT,
            )
        event.refresh_from_db()
        # The request tells the serializer who asks: as in GET, those who may see the
        # integration's address see it in the body.
        return Response(
            InboundEventSerializer(event, context=self.get_serializer_context()).data,
            status=status.HTTP_202_ACCEPTED,
        )
