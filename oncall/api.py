"""The on-call part of the REST API: users, contact methods, notification rules, schedules
with their rotations and overrides, and who is on call (docs/api.md#on-call). What each
resource accepts is in oncall/serializers.py."""

from datetime import UTC, datetime, timedelta

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Prefetch
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.functional import cached_property
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from incidents.models import Incident
from oncall import ical, rights, sending, shifts
from oncall.models import (
    ContactMethod,
    NotificationRule,
    Override,
    Page,
    PersonalNotification,
    Schedule,
)
from oncall.serializers import (
    ContactMethodSerializer,
    NotificationRuleSerializer,
    OnCallEverywhereSerializer,
    OnCallSerializer,
    OverrideSerializer,
    PageSerializer,
    PersonalNotificationSerializer,
    ScheduleSerializer,
    ShiftSerializer,
    UserSerializer,
    parse_instant,
)
from oncall.shift_engine import EARLIEST, LATEST
from tocsin.apikit import NoBody

User = get_user_model()

DEFAULT_SHIFTS_SPAN = timedelta(days=14)
# The longest span GET shifts/ computes in one request: bounded work per request.
MAX_SHIFTS_SPAN = timedelta(days=366)


def instant_param(request, name: str, default: datetime | None = None) -> datetime | None:
    """An aware instant from the query string, or a 400 naming the parameter."""
    value = request.query_params.get(name)
    if value is None or value == "":
        return default
    try:
        instant = parse_instant(value)
        # The engine computes between 1900 and 9000; at the calendar's edges, even adding a
        # fortnight or converting to UTC would overflow.
        if not EARLIEST <= instant.astimezone(UTC) < LATEST:
            raise ValueError("Give an instant between the years 1900 and 9000.")
    except (ValueError, OverflowError) as exc:
        message = str(exc) if isinstance(exc, ValueError) else \
            "Give an instant between the years 1900 and 9000."
        raise serializers.ValidationError({name: [message]}) from None
    return instant


def as_people(user_ids, users: dict) -> list[dict]:
    """[{"id", "username"}] in the engine's order; ids of users deleted since are left
    out."""
    return [{"id": user_id, "username": users[user_id].username}
            for user_id in user_ids if user_id in users]


class RoleMembers(BasePermission):
    """Anyone with a role (or staff status) may list the portal's users: picking a
    participant, a fallback user or an override means knowing who exists."""

    def has_permission(self, request, view):
        user = request.user
        return bool(user and user.is_authenticated and (
            user.is_staff or user.is_superuser or user.groups.exists()
        ))


class UserViewSet(viewsets.ReadOnlyModelViewSet):
    """Active users: who can be put on call or given contact methods."""

    queryset = User.objects.filter(is_active=True)
    serializer_class = UserSerializer
    permission_classes = [RoleMembers]
    ordering = ["username", "id"]
    ordering_fields = ["username", "id"]
    filterset_fields = ["username"]


class OwnRowsMixin:
    """Responders see and change only their own rows (their add/change/delete permissions
    are narrowed here); whoever may manage everyone's sees all.

    The serializers check uniqueness to name the field at fault; two requests racing past
    that check meet the table's unique constraint, which answers the same 400."""

    duplicate = {}

    def get_queryset(self):
        queryset = super().get_queryset()
        user = self.request.user
        if getattr(self, "swagger_fake_view", False) or \
                rights.keeps_everyones_contact_methods(user):
            return queryset
        return queryset.filter(user=user)

    def perform_create(self, serializer):
        self.save_once(serializer)

    def perform_update(self, serializer):
        self.save_once(serializer)

    def save_once(self, serializer):
        try:
            with transaction.atomic():
                serializer.save()
        except IntegrityError:
            raise serializers.ValidationError(self.duplicate) from None


class ContactMethodViewSet(OwnRowsMixin, viewsets.ModelViewSet):
    queryset = ContactMethod.objects.all()
    serializer_class = ContactMethodSerializer
    ordering = ["user", "id"]
    ordering_fields = ["user", "created_at", "id"]
    filterset_fields = ["user", "kind", "enabled"]
    duplicate = {"address": ["This user already has this address."]}
    action_permissions = {"test": ["oncall.change_contactmethod"]}

    @extend_schema(responses={201: PersonalNotificationSerializer})
    @action(detail=True, methods=["post"], serializer_class=NoBody)
    def test(self, request, pk=None):
        """Send a test message now and return its record: status sent or failed (with the
        error); a test is tried once."""
        sent = sending.send_test(self.get_object(), actor=request.user)
        return Response(PersonalNotificationSerializer(sent).data,
                        status=status.HTTP_201_CREATED)


class NotificationRuleViewSet(OwnRowsMixin, viewsets.ModelViewSet):
    queryset = NotificationRule.objects.select_related("contact_method")
    serializer_class = NotificationRuleSerializer
    ordering = ["user", "delay_minutes", "id"]
    ordering_fields = ["user", "delay_minutes", "created_at", "id"]
    filterset_fields = ["user", "contact_method"]
    duplicate = {"delay_minutes": ["This contact method already has a rule at this delay."]}


AT_PARAMETER = OpenApiParameter(
    "at", OpenApiTypes.DATETIME, description="ISO 8601 instant with offset; default now.")


class ScheduleViewSet(viewsets.ModelViewSet):
    queryset = Schedule.objects.prefetch_related("rotations")
    serializer_class = ScheduleSerializer
    ordering = ["name", "id"]
    ordering_fields = ["name", "created_at", "id"]
    filterset_fields = ["team", "name"]

    @extend_schema(parameters=[AT_PARAMETER], responses=OnCallSerializer)
    @action(detail=True, methods=["get"], serializer_class=OnCallSerializer)
    def oncall(self, request, pk=None):
        """Who is on call at ``at``."""
        schedule = self.get_object()
        at = instant_param(request, "at", default=timezone.now())
        user_ids = shifts.on_call_at(schedule, at)
        users = User.objects.in_bulk(user_ids)
        return Response(OnCallSerializer({"at": at, "users": as_people(user_ids, users)}).data)

    @extend_schema(
        parameters=[
            OpenApiParameter("start", OpenApiTypes.DATETIME,
                             description="ISO 8601 instant with offset; default now."),
            OpenApiParameter("end", OpenApiTypes.DATETIME,
                             description="Default start + 14 days; at most 366 days after "
                                         "start."),
        ],
        responses=ShiftSerializer(many=True))
    @action(detail=True, methods=["get"], serializer_class=ShiftSerializer,
            pagination_class=None, filter_backends=[])
    def shifts(self, request, pk=None):
        """The final on-call intervals between start and end, after layers, restrictions,
        overrides and the fallback user, clipped to the span."""
        schedule = self.get_object()
        start = instant_param(request, "start", default=timezone.now())
        end = instant_param(request, "end", default=start + DEFAULT_SHIFTS_SPAN)
        if end <= start:
            raise serializers.ValidationError({"end": ["The end must be after the start."]})
        if end - start > MAX_SHIFTS_SPAN:
            raise serializers.ValidationError({"end": [
                f"At most {MAX_SHIFTS_SPAN.days} days after the start; ask for a longer "
                "span in several requests."]})
        found = shifts.schedule_shifts(schedule, start, end)
        users = User.objects.in_bulk({shift.user_id for shift in found})
        rows = [{"user": shift.user_id,
                 "username": users[shift.user_id].username if shift.user_id in users else "",
                 "start": shift.start, "end": shift.end, "override": shift.override_id}
                for shift in found]
        return Response(ShiftSerializer(rows, many=True).data)

    @extend_schema(responses={(200, "text/calendar"): OpenApiTypes.STR})
    @action(detail=True, methods=["get"], serializer_class=NoBody, filter_backends=[])
    def ical(self, request, pk=None):
        """The final shifts from seven days ago to ninety days ahead, as iCalendar."""
        schedule = self.get_object()
        response = HttpResponse(ical.schedule_calendar(schedule, timezone.now()),
                                content_type="text/calendar; charset=utf-8")
        response["Content-Disposition"] = f'inline; filename="schedule-{schedule.pk}.ics"'
        return response


class OverrideFilter(filters.FilterSet):
    """?start= and ?end= keep the overrides that overlap that span."""

    start = filters.CharFilter(method="ending_after", help_text=(
        "ISO 8601 instant with offset: overrides that end after it."))
    end = filters.CharFilter(method="starting_before", help_text=(
        "ISO 8601 instant with offset: overrides that start before it."))

    class Meta:
        model = Override
        fields = ["user", "replaces"]

    @staticmethod
    def instant(name, value):
        try:
            return parse_instant(value)
        except ValueError as exc:
            raise serializers.ValidationError({name: [str(exc)]}) from None

    def ending_after(self, queryset, name, value):
        return queryset.filter(end__gt=self.instant(name, value))

    def starting_before(self, queryset, name, value):
        return queryset.filter(start__lt=self.instant(name, value))


class OverrideViewSet(viewsets.ModelViewSet):
    """The overrides of one schedule. Managers (change_override) add and delete any; a
    Responder adds only overrides that put themselves on call (a swap) and deletes only
    those."""

    serializer_class = OverrideSerializer
    filterset_class = OverrideFilter
    ordering = ["start", "id"]
    ordering_fields = ["start", "end", "created_at", "id"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the OpenAPI generator has no URL kwargs
            return Override.objects.none()
        return Override.objects.filter(schedule=self.schedule)

    @cached_property
    def schedule(self) -> Schedule:
        """The schedule in the URL, read once per request."""
        return get_object_or_404(Schedule, pk=self.kwargs["schedule_pk"])

    def get_serializer_context(self):
        # A new override is checked against its schedule's shifts (OverrideSerializer).
        context = super().get_serializer_context()
        if "schedule_pk" in self.kwargs:
            context["schedule"] = self.schedule
        return context

    def perform_create(self, serializer):
        requester = self.request.user
        if serializer.validated_data["user"] != requester and \
                not rights.places_anyone_on_call(requester):
            raise PermissionDenied(
                "You may only add overrides that put yourself on call.")
        serializer.save(schedule=self.schedule, created_by=requester)

    def perform_destroy(self, override):
        if not rights.may_remove_override(self.request.user, override):
            raise PermissionDenied("You may only delete overrides you made that put "
                                   "yourself on call.")
        override.delete()


class OnCallNowView(APIView):
    """Every schedule's on-call users at ``at`` (default now), by schedule name."""

    queryset = Schedule.objects.all()  # GroupModelPermissions: view_schedule

    @extend_schema(parameters=[AT_PARAMETER],
                   responses=OnCallEverywhereSerializer(many=True))
    def get(self, request):
        at = instant_param(request, "at", default=timezone.now())
        everywhere = shifts.on_call_now_everywhere(at)
        users = User.objects.in_bulk({user_id for _, ids in everywhere for user_id in ids})
        rows = [{"schedule": {"id": schedule.pk, "name": schedule.name},
                 "users": as_people(user_ids, users)} for schedule, user_ids in everywhere]
        return Response(OnCallEverywhereSerializer(rows, many=True).data)


class IncidentPageViewSet(mixins.ListModelMixin, mixins.CreateModelMixin,
                          viewsets.GenericViewSet):
    """Who was paged about an incident, with each message's outcome; POST pages a person
    by hand (adds a responder: docs/on-call.md#paging-someone-by-hand)."""

    queryset = Page.objects.all()  # GroupModelPermissions: view_page, add_page
    serializer_class = PageSerializer
    ordering = ["created_at", "id"]
    ordering_fields = ["created_at", "id"]

    def incident(self) -> Incident:
        # The pages are part of the incident: whoever cannot see it learns nothing of them.
        if not self.request.user.has_perm("incidents.view_incident"):
            raise PermissionDenied
        return get_object_or_404(Incident, pk=self.kwargs["incident_pk"])

    def get_queryset(self):
        messages = PersonalNotification.objects.order_by("next_attempt_at", "id")
        return (Page.objects.filter(incident=self.incident())
                .prefetch_related(Prefetch("notifications", queryset=messages)))

    def create(self, request, *args, **kwargs):
        incident = self.incident()
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if not incident.is_open:
            return Response({"detail": f"Incident #{incident.number} is resolved: nobody is "
                                       "paged about it."}, status=status.HTTP_409_CONFLICT)
        reason = serializer.validated_data.get("reason") or \
            f"paged by {request.user.get_username()}"
        page = sending.page_user(incident, serializer.validated_data["user"], reason=reason)
        return Response(self.get_serializer(self.get_queryset().get(pk=page.pk)).data,
                        status=status.HTTP_201_CREATED)


# Explicit routes for the overrides, nested under their schedule (tocsin/urls.py).
override_list = OverrideViewSet.as_view({"get": "list", "post": "create"})
override_detail = OverrideViewSet.as_view({
    "get": "retrieve", "put": "update", "patch": "partial_update", "delete": "destroy"})
on_call_now = OnCallNowView.as_view()
incident_pages = IncidentPageViewSet.as_view({"get": "list", "post": "create"})
