"""Small pieces shared by the apps' REST APIs."""

from rest_framework import serializers


class NoBody(serializers.Serializer):
    """For actions that take no request body (acknowledge, resend, test…). A named class,
    because DRF's bare Serializer gives the OpenAPI schema a component with an empty name."""
