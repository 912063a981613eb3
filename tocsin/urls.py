from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.routers import DefaultRouter

from destinations.api import DeliveryViewSet, DestinationViewSet
from incidents.api import IncidentViewSet, ServiceViewSet, TeamViewSet
from integrations import views as ingest
from integrations.api import (
    AlertRuleViewSet,
    AlertViewSet,
    InboundEventViewSet,
    IntegrationTokenViewSet,
    IntegrationViewSet,
)
from notifications.api import NotificationSettingsView
from oncall import api as oncall_api
from oncall import escalation_api, policy_api
from oncall import views as oncall_views
from tocsin import views
from tocsin.permissions import SchemaReaders

router = DefaultRouter()
router.register("teams", TeamViewSet, basename="team")
router.register("services", ServiceViewSet, basename="service")
router.register("integrations", IntegrationViewSet, basename="integration")
router.register("incidents", IncidentViewSet, basename="incident")
router.register("alerts", AlertViewSet, basename="alert")
router.register("inbound-events", InboundEventViewSet, basename="inboundevent")
router.register("destinations", DestinationViewSet, basename="destination")
router.register("deliveries", DeliveryViewSet, basename="delivery")
router.register("users", oncall_api.UserViewSet, basename="user")
router.register("contact-methods", oncall_api.ContactMethodViewSet, basename="contactmethod")
router.register("notification-rules", oncall_api.NotificationRuleViewSet,
                basename="notificationrule")
router.register("schedules", oncall_api.ScheduleViewSet, basename="schedule")
router.register("escalation-policies", policy_api.EscalationPolicyViewSet,
                basename="escalationpolicy")

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("ack/<str:token>/", oncall_views.acknowledge_link, name="acknowledge-link"),
    path("ack/<str:token>/call/", oncall_views.acknowledge_call, name="acknowledge-call"),
    path("api/events/<str:key>/", ingest.generic_event, name="generic-event"),
    path("api/incoming-webhooks/incident.create", ingest.incoming_webhook_create,
         name="incoming-webhook-create"),
    path("api/alert/status/<uuid:trace_id>/", ingest.alert_status, name="alert-status"),
    path("api/v1/schema/", SpectacularAPIView.as_view(permission_classes=[SchemaReaders]),
         name="schema"),
    path(
        "api/v1/integrations/<int:integration_pk>/tokens/",
        IntegrationTokenViewSet.as_view({"get": "list", "post": "create"}),
        name="integration-tokens",
    ),
    path(
        "api/v1/integrations/<int:integration_pk>/tokens/<int:pk>/",
        IntegrationTokenViewSet.as_view({"get": "retrieve", "delete": "destroy"}),
        name="integration-token",
    ),
    path(
        "api/v1/integrations/<int:integration_pk>/rules/",
        AlertRuleViewSet.as_view({"get": "list", "post": "create"}),
        name="integration-rules",
    ),
    path(
        "api/v1/integrations/<int:integration_pk>/rules/<int:pk>/",
        AlertRuleViewSet.as_view({"get": "retrieve", "put": "update", "patch": "partial_update",
                                  "delete": "destroy"}),
        name="integration-rule",
    ),
    path("api/v1/notification-settings/", NotificationSettingsView.as_view(),
         name="notification-settings"),
    path("api/v1/schedules/<int:schedule_pk>/overrides/", oncall_api.override_list,
         name="schedule-overrides"),
    path("api/v1/schedules/<int:schedule_pk>/overrides/<int:pk>/", oncall_api.override_detail,
         name="schedule-override"),
    path("api/v1/oncall/", oncall_api.on_call_now, name="oncall-now"),
    path("api/v1/incidents/<int:incident_pk>/pages/", oncall_api.incident_pages,
         name="incident-pages"),
    path("api/v1/incidents/<int:incident_pk>/escalate/", escalation_api.incident_escalate,
         name="incident-escalate"),
    path("api/v1/", include(router.urls)),
    path("admin/", admin.site.urls),
    path("anymail/", include("integrations.anymail_urls")),
]

handler400 = "tocsin.views.bad_request"
handler404 = "tocsin.views.not_found"
handler500 = "tocsin.views.server_error"
