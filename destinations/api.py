from django.core.exceptions import ValidationError
from django_filters import rest_framework as filters
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from destinations import sending
from destinations.kinds import KINDS
from destinations.kinds.base import clean_config, public_config
from destinations.models import Delivery, Destination
from tocsin.apikit import ModelSerializer, NoBody, StrictJSONField


class DestinationSerializer(ModelSerializer):
    # Write-only where it matters: responses carry the config without its secrets, and
    # name the secrets that are set so a client knows it need not send them again.
    config = StrictJSONField(required=False)
    secrets_set = serializers.SerializerMethodField()

    class Meta:
        model = Destination
        fields = [
            "id", "name", "kind", "config", "secrets_set", "send_drills", "services",
            "failing", "consecutive_failures", "last_error", "created_at",
        ]
        read_only_fields = ["services", "failing", "consecutive_failures", "last_error"]

    def get_secrets_set(self, destination) -> list[str]:
        return [spec.name for spec in KINDS[destination.kind].FIELDS
                if spec.secret and destination.config.get(spec.name)]

    def to_representation(self, destination):
        data = super().to_representation(destination)
        data["config"] = public_config(KINDS[destination.kind].FIELDS, destination.config)
        return data

    def validate_kind(self, kind):
        if self.instance is not None and kind != self.instance.kind:
            raise serializers.ValidationError(
                "The kind of an existing destination cannot change; create a new one."
            )
        return kind

    def validate(self, attrs):
        kind = attrs.get("kind") or self.instance.kind
        current = self.instance.config if self.instance else {}
        config = attrs.get("config", None if self.partial else {})
        if config is None:
            return attrs  # a PATCH without config leaves it alone
        if self.partial and isinstance(config, dict):
            # PATCH merges: only the keys sent change.
            config = {**public_config(KINDS[kind].FIELDS, current), **config}
        try:
            attrs["config"] = clean_config(KINDS[kind].FIELDS, config, current=current)
        except ValidationError as exc:
            raise serializers.ValidationError({"config": exc.message_dict}) from exc
        return attrs


class DeliverySerializer(ModelSerializer):
    waiting = serializers.SerializerMethodField()

    class Meta:
        model = Delivery
        fields = [
            "id", "uuid", "destination", "incident", "event", "status", "waiting",
            "attempts", "response_status", "response_body", "remote_id", "error", "actor",
            "created_at", "last_attempt_at", "next_attempt_at", "sent_at",
        ]
        read_only_fields = fields

    def get_waiting(self, sent) -> bool:
        """Pending behind an earlier delivery of the same incident and destination."""
        if hasattr(sent, "waiting"):  # annotated by the list and detail queries
            return sent.waiting
        return Delivery.objects.filter(pk=sent.pk).filter(
            Delivery.behind_earlier_pending()).exists()


class DestinationViewSet(viewsets.ModelViewSet):
    queryset = Destination.objects.prefetch_related("services")
    serializer_class = DestinationSerializer
    ordering = ["name", "id"]
    ordering_fields = ["name", "created_at", "id"]
    filterset_fields = ["kind", "failing", "send_drills"]
    action_permissions = {"test": ["destinations.change_destination"]}

    @action(detail=True, methods=["post"], serializer_class=NoBody)
    def test(self, request, pk=None):
        """Send a test notification now and return its delivery record."""
        sent = sending.send_test(self.get_object(), actor=request.user)
        return Response(DeliverySerializer(sent).data, status=status.HTTP_201_CREATED)


class DeliveryFilter(filters.FilterSet):
    status = filters.MultipleChoiceFilter(choices=Delivery.Status.choices)
    created_after = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")

    class Meta:
        model = Delivery
        fields = ["destination", "incident", "event", "status"]


class DeliveryViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin,
                      viewsets.GenericViewSet):
    queryset = Delivery.objects.annotate(waiting=Delivery.behind_earlier_pending())
    serializer_class = DeliverySerializer
    ordering = ["-created_at", "-id"]
    ordering_fields = ["created_at", "id"]
    filterset_class = DeliveryFilter
    action_permissions = {"resend": ["destinations.resend_delivery"]}

    @action(detail=True, methods=["post"], serializer_class=NoBody)
    def resend(self, request, pk=None):
        sent = self.get_object()
        if not sending.resend(sent):
            return Response(
                {"detail": "The delivery, or a later one for the same incident and "
                           "destination, is still pending."},
                status=status.HTTP_409_CONFLICT)
        return Response(DeliverySerializer(self.get_queryset().get(pk=sent.pk)).data)
