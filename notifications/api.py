from rest_framework import generics, serializers
from rest_framework.response import Response

from notifications.models import SETTINGS_TYPES, NotificationSettings

TYPE_NAMES = [kind.value for kind in SETTINGS_TYPES]


class NotificationSettingsSerializer(serializers.Serializer):
    default_recipients = serializers.ListField(child=serializers.EmailField())
    overrides = serializers.DictField(
        child=serializers.ListField(child=serializers.EmailField(), allow_empty=True),
        required=False,
        help_text="Per type (incidents, escalations, platform_actions, account_notices), a "
                  "list that replaces the default recipients; empty or missing = default.",
    )
    send_resolved = serializers.BooleanField(required=False)
    updated_at = serializers.DateTimeField(read_only=True)

    def validate_overrides(self, overrides):
        unknown = sorted(set(overrides) - set(TYPE_NAMES))
        if unknown:
            raise serializers.ValidationError(
                f"Unknown notification types: {', '.join(unknown)}. "
                f"Known: {', '.join(TYPE_NAMES)}."
            )
        return overrides

    def to_representation(self, settings_record):
        return {
            "default_recipients": settings_record.default_recipients,
            "overrides": settings_record.overrides(),
            "send_resolved": settings_record.send_resolved,
            "updated_at": serializers.DateTimeField().to_representation(
                settings_record.updated_at),
        }

    def update(self, settings_record, data):
        settings_record.default_recipients = list(dict.fromkeys(data["default_recipients"]))
        overrides = data.get("overrides", {})
        for name in TYPE_NAMES:
            chosen = list(dict.fromkeys(overrides.get(name) or []))
            setattr(settings_record, f"{name}_override", bool(chosen))
            setattr(settings_record, f"{name}_recipients", chosen)
        if "send_resolved" in data:
            settings_record.send_resolved = data["send_resolved"]
        settings_record.save()
        return settings_record


class NotificationSettingsView(generics.GenericAPIView):
    """The portal's one notification settings record: GET and PUT only (it can be neither
    created nor deleted). Administrators only."""

    queryset = NotificationSettings.objects.all()
    serializer_class = NotificationSettingsSerializer

    def get(self, request):
        return Response(self.get_serializer(NotificationSettings.load()).data)

    def put(self, request):
        serializer = self.get_serializer(NotificationSettings.load(), data=request.data)
        serializer.is_valid(raise_exception=True)
        serializer.save()
        return Response(serializer.data)
