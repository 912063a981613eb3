from django.contrib import admin, messages
from django.contrib.admin.templatetags.admin_urls import admin_urlname
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Prefetch, Q
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.utils.html import format_html, format_html_join
from django.utils.timezone import localtime
from django.views.decorators.http import require_POST

from incidents import extensions, lifecycle
from incidents.models import SLA, EscalationPolicy, Incident, Priority, Service, Tag, Team
from tocsin.adminkit import CSS, JS, AdminPages, badge

User = get_user_model()

admin.site.site_header = "Tocsin"
admin.site.site_title = "Tocsin"
admin.site.index_title = "Incident response"


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "service_count", "member_count"]
    search_fields = ["name", "description"]
    filter_horizontal = ["members"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            services_total=Count("services", distinct=True),
            members_total=Count("members", distinct=True),
        )

    @admin.display(description="Services", ordering="services_total")
    def service_count(self, team):
        return team.services_total

    @admin.display(description="Members", ordering="members_total")
    def member_count(self, team):
        return team.members_total


@admin.register(Service)
class ServiceAdmin(admin.ModelAdmin):
    list_display = ["name", "team", "open_incidents", "integration_count"]
    list_filter = ["team"]
    search_fields = ["name", "description"]
    autocomplete_fields = ["team"]

    def get_inlines(self, request, obj):
        # The destinations app adds the service's destinations (incidents/extensions.py).
        return [*self.inlines, *extensions.service_inlines]

    def get_queryset(self, request):
        return (
            super().get_queryset(request)
            .select_related("team")
            .annotate(
                open_total=Count(
                    "incidents", filter=~Q(incidents__status=Incident.Status.RESOLVED),
                    distinct=True,
                ),
                integrations_total=Count("integrations", distinct=True),
            )
        )

    @admin.display(description="Open incidents", ordering="open_total")
    def open_incidents(self, service):
        if not service.open_total:
            return 0
        url = reverse(admin_urlname(Incident._meta, "changelist"),
                      current_app=self.admin_site.name)
        return format_html(
            '<a href="{}?service__id__exact={}&status__in=triggered,acknowledged">{}</a>',
            url, service.pk, service.open_total,
        )

    @admin.display(description="Integrations", ordering="integrations_total")
    def integration_count(self, service):
        return service.integrations_total


class OpenFilter(admin.SimpleListFilter):
    title = "open or closed"
    parameter_name = "open"

    def lookups(self, request, model_admin):
        return [("yes", "Open"), ("no", "Resolved")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.exclude(status=Incident.Status.RESOLVED)
        if self.value() == "no":
            return queryset.filter(status=Incident.Status.RESOLVED)
        return queryset


@admin.register(Incident)
class IncidentAdmin(AdminPages, admin.ModelAdmin):
    list_display = [
        # No Drill column: the Status column's badge says so, and the filter finds them.
        # Fewer, narrower columns keep the list within a laptop's width beside the
        # sidebar and the filters.
        "number_label", "title", "status_label", "assignee_list", "urgency", "service",
        "entity_id", "alert_count", "created",
    ]
    list_display_links = ["number_label", "title"]
    list_filter = [OpenFilter, "status", "urgency", "service", "drill", "created_at"]
    search_fields = ["title", "summary", "entity_id", "unique_id", "=number"]
    date_hierarchy = "created_at"
    actions = ["acknowledge_selected", "resolve_selected"]
    list_per_page = 50
    change_form_template = "admin/incidents/incident/change_form.html"
    fieldsets = [
        (None, {"fields": ["title", "summary", "status_label", "assignee_list", "service",
                           "entity_id"]}),
        ("Classification", {"fields": [
            "urgency", "severity", "priority", "sla", "escalation_policy", "tags", "labels",
            "room_prefix", "drill",
        ]}),
        ("Times", {"fields": ["created_at", "acknowledged_at", "acknowledged_by_label",
                              "resolved_at", "unique_id"]}),
        ("Timeline", {"fields": ["timeline_html"]}),
    ]
    readonly_fields = [
        "status_label", "assignee_list", "service", "entity_id", "drill", "created_at",
        "acknowledged_at", "acknowledged_by_label", "resolved_at", "unique_id", "timeline_html",
    ]
    filter_horizontal = ["tags"]

    class Media:
        css = {"all": CSS}
        js = JS

    def get_queryset(self, request):
        return (
            super().get_queryset(request)
            .select_related("service", "acknowledged_by")
            .annotate(alerts_total=Count("alerts"))
            # One query for the whole page of incidents, whatever its length.
            .prefetch_related(Prefetch("assignees",
                                       queryset=User.objects.order_by("username")
                                       .only("pk", "username")))
        )

    def has_add_permission(self, request):
        # Incidents are opened by alerts (or the API); a form here would skip grouping.
        return False

    def has_acknowledge_permission(self, request):
        return request.user.has_perm("incidents.acknowledge_incident")

    def has_resolve_permission(self, request):
        return request.user.has_perm("incidents.resolve_incident")

    def has_comment_permission(self, request):
        return request.user.has_perm("incidents.comment_incident")

    @admin.display(description="#", ordering="number")
    def number_label(self, incident):
        return f"#{incident.number}"

    @admin.display(description="Status", ordering="status")
    def status_label(self, incident):
        label = badge(incident.status, incident.get_status_display())
        if incident.drill:
            return format_html("{} {}", label, badge("drill", "Drill"))
        return label

    @admin.display(description="Assignees")
    def assignee_list(self, incident):
        # Who is paged about it now: the latest escalation step's people and anyone paged
        # by hand since (set by the on-call app).
        return ", ".join(user.get_username() for user in incident.assignees.all()) \
            or self.get_empty_value_display()

    @admin.display(description="Acknowledged by")
    def acknowledged_by_label(self, incident):
        if incident.acknowledged_by_id:
            return incident.acknowledged_by.get_username()
        if incident.acknowledged_at:
            return "no user (an alert, an automation or a deleted account)"
        return self.get_empty_value_display()

    @admin.display(description="Created", ordering="created_at")
    def created(self, incident):
        return localtime(incident.created_at).strftime("%Y-%m-%d %H:%M")

    @admin.display(description="Alerts", ordering="alerts_total")
    def alert_count(self, incident):
        return incident.alerts_total

    @admin.display(description="Entries")
    def timeline_html(self, incident):
        entries = incident.timeline.select_related("actor")
        if not entries:
            return "No entries yet."
        rows = format_html_join(
            "", '<li class="tocsin-timeline__item tocsin-timeline__item--{}">'
            '<time>{}</time> <strong>{}</strong> {}</li>',
            (
                (e.kind, localtime(e.created_at).strftime("%Y-%m-%d %H:%M:%S %Z"),
                 e.get_kind_display(),
                 e.message)
                for e in entries
            ),
        )
        return format_html('<ol class="tocsin-timeline">{}</ol>', rows)

    def panel_fields(self, request) -> list:
        """The sections other apps add below the timeline (what the destinations app sent,
        the on-call app's escalation and pages: incidents/extensions.py), as read-only
        fields. Made once per request and kept on it: a panel that depends on who looks is
        a new callable bound to the request, and the fieldsets and the read-only fields,
        each asked for more than once, must name the same callables."""
        fields = getattr(request, "_tocsin_incident_panels", None)
        if fields is None:
            fields = [panel.field(request) for panel in extensions.incident_panels]
            request._tocsin_incident_panels = fields
        return fields

    def get_fieldsets(self, request, obj=None):
        panels = [(panel.title, {"fields": [field]}) for panel, field
                  in zip(extensions.incident_panels, self.panel_fields(request), strict=True)]
        return [*super().get_fieldsets(request, obj), *panels]

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), *self.panel_fields(request)]

    def _change_selected(self, request, queryset, change, verb):
        changed = [incident for incident in queryset if change(incident, actor=request.user)]
        self.log_changes(request, changed, f"{verb.capitalize()}.")
        skipped = queryset.count() - len(changed)
        self.message_user(request, f"{len(changed)} incident(s) {verb}.", messages.SUCCESS)
        if skipped:
            self.message_user(
                request, f"{skipped} incident(s) were already {verb} or resolved.",
                messages.WARNING,
            )

    @admin.action(description="Acknowledge selected incidents", permissions=["acknowledge"])
    def acknowledge_selected(self, request, queryset):
        self._change_selected(request, queryset, lifecycle.acknowledge, "acknowledged")

    @admin.action(description="Resolve selected incidents", permissions=["resolve"])
    def resolve_selected(self, request, queryset):
        self._change_selected(request, queryset, lifecycle.resolve, "resolved")

    def get_urls(self):
        return [
            self.object_path("acknowledge", self.acknowledge_view, "acknowledge"),
            self.object_path("resolve", self.resolve_view, "resolve"),
            self.object_path("note", self.note_view, "note"),
        ] + super().get_urls()

    def _change_one(self, request, object_id, allowed, change, verb):
        # Like the change page: no permission is a 403 whether or not the incident exists.
        if not allowed:
            raise PermissionDenied
        incident = self.get_object(request, unquote(object_id))
        if incident is None:
            return self.missing_object(request, object_id)
        if change(incident, actor=request.user):
            self.log_change(request, incident, f"{verb.capitalize()}.")
            self.message_user(request, f"Incident #{incident.number} {verb}.", messages.SUCCESS)
        else:
            self.message_user(
                request, f"Incident #{incident.number} is already {incident.status}.",
                messages.WARNING,
            )
        return redirect(self.object_url(incident))

    @method_decorator(require_POST)
    def acknowledge_view(self, request, object_id):
        return self._change_one(
            request, object_id, self.has_acknowledge_permission(request), lifecycle.acknowledge,
            "acknowledged",
        )

    @method_decorator(require_POST)
    def resolve_view(self, request, object_id):
        return self._change_one(
            request, object_id, self.has_resolve_permission(request), lifecycle.resolve,
            "resolved",
        )

    @method_decorator(require_POST)
    def note_view(self, request, object_id):
        if not self.has_comment_permission(request):
            raise PermissionDenied
        incident = self.get_object(request, unquote(object_id))
        if incident is None:
            return self.missing_object(request, object_id)
        text = request.POST.get("text", "").strip()
        if text:
            lifecycle.add_note(incident, text, actor=request.user)
            # The note itself is on the timeline; history says only that one was added.
            self.log_change(request, incident, "Added a note.")
            self.message_user(request, "Note added.", messages.SUCCESS)
        else:
            self.message_user(request, "A note needs some text.", messages.ERROR)
        return redirect(self.object_url(incident))

    def render_change_form(self, request, context, *args, obj=None, **kwargs):
        context.update(
            can_acknowledge=bool(obj) and obj.status == Incident.Status.TRIGGERED
            and self.has_acknowledge_permission(request),
            can_resolve=bool(obj) and obj.is_open and self.has_resolve_permission(request),
            can_comment=bool(obj) and self.has_comment_permission(request),
        )
        return super().render_change_form(request, context, *args, obj=obj, **kwargs)


@admin.register(Priority)
class PriorityAdmin(admin.ModelAdmin):
    list_display = ["name", "color", "description"]
    search_fields = ["name"]


@admin.register(SLA)
class SLAAdmin(admin.ModelAdmin):
    list_display = ["name", "acknowledge_within_minutes", "resolve_within_minutes"]
    search_fields = ["name"]


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ["name", "color"]
    search_fields = ["name"]


@admin.register(EscalationPolicy)
class EscalationPolicyAdmin(admin.ModelAdmin):
    list_display = ["name", "team", "repeat"]
    list_filter = ["team"]
    search_fields = ["name"]

    def get_inlines(self, request, obj):
        # The on-call app adds the policy's steps (incidents/extensions.py).
        return [*self.inlines, *extensions.escalation_policy_inlines]
