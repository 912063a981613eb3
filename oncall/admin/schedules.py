"""The admin for schedules: rotations inline, a two-week timeline on the schedule's page
(overrides are added from it), and overrides (docs/on-call.md#in-the-admin).

Managers edit schedules, rotations and anyone's overrides; a Responder views schedules,
adds overrides that put themselves on call (a swap) and deletes those they made."""

from datetime import date, datetime, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from oncall import rights, shifts
from oncall.admin.forms import (
    OverrideForm,
    RotationForm,
    ScheduleForm,
    local_parts,
    schedule_from,
)
from oncall.admin.people import safe_next
from oncall.admin.restriction_text import format_restrictions
from oncall.admin.timeline import build_days
from oncall.models import Override, Rotation, Schedule
from tocsin.adminkit import CSS, JS, AdminPages, admin_url

User = get_user_model()
TIMELINE_DAYS = 14
# The timeline's ?from= days: far enough from the calendar's ends that its two weeks, the
# links before and after them and their instants in any zone stay valid dates.
TIMELINE_FIRST_DAYS = (date(1900, 1, 1), date(8999, 12, 31))
BAR_TIME = "%a %d %b %H:%M %Z"


def usernames(user_ids) -> dict[int, str]:
    return dict(User.objects.filter(pk__in=set(user_ids)).values_list("pk", "username"))


def instant_param(instant: datetime) -> str:
    """An instant in a URL: UTC, to the second, with a Z."""
    return instant.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ")


class RotationInline(admin.StackedInline):
    model = Rotation
    form = RotationForm
    extra = 0
    classes = ["tocsin-rotation"]
    readonly_fields = ["participant_names", "restriction_text"]

    def get_fields(self, request, obj=None):
        fields = [name for name in self.form.Meta.fields]
        if not self.has_change_permission(request, obj):
            # Read-only pages show the JSON fields in the words the form takes.
            return [{"participants": "participant_names",
                     "restrictions": "restriction_text"}.get(name, name) for name in fields]
        return fields

    @admin.display(description="Participants")
    def participant_names(self, rotation):
        names = usernames(rotation.participants)
        return ", ".join(names.get(pk, f"#{pk}") for pk in rotation.participants)

    @admin.display(description="Restrictions")
    def restriction_text(self, rotation):
        return format_restrictions(rotation.restrictions) or "None: around the clock"


@admin.register(Schedule)
class ScheduleAdmin(AdminPages, admin.ModelAdmin):
    form = ScheduleForm
    inlines = [RotationInline]
    list_display = ["name", "team", "time_zone", "on_call_now", "fallback_user"]
    list_filter = ["team"]
    search_fields = ["name", "description"]
    change_form_template = "admin/oncall/schedule/change_form.html"

    class Media:
        css = {"all": CSS}
        js = JS

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("team", "fallback_user")

    def get_changelist_instance(self, request):
        changelist = super().get_changelist_instance(request)
        # The page's schedules are read here once (the list then shows this same result)
        # and who is on call in all of them is worked out together: four queries for the
        # page instead of four per schedule.
        page = list(changelist.result_list)
        on_call = shifts.on_call_in(page, timezone.now())
        names = usernames(user_id for ids in on_call.values() for user_id in ids)
        for schedule in page:
            schedule.on_call_now_names = sorted(
                names[user_id] for user_id in on_call[schedule.pk] if user_id in names)
        return changelist

    @admin.display(description="On call now")
    def on_call_now(self, schedule):
        found = getattr(schedule, "on_call_now_names", None)
        if found is None:  # a schedule not shown by the list
            found = sorted(usernames(shifts.on_call_at(schedule, timezone.now())).values())
        return ", ".join(found) or "Nobody"

    def timeline_context(self, request, schedule) -> dict:
        zone = ZoneInfo(schedule.time_zone)
        now = timezone.now()
        today = now.astimezone(zone).date()
        try:
            first_day = date.fromisoformat(request.GET.get("from", ""))
        except ValueError:
            first_day = today
        if not TIMELINE_FIRST_DAYS[0] <= first_day <= TIMELINE_FIRST_DAYS[1]:
            first_day = today
        start = datetime.combine(first_day, datetime.min.time(), tzinfo=zone)
        end = datetime.combine(first_day + timedelta(days=TIMELINE_DAYS), datetime.min.time(),
                               tzinfo=zone)
        found = shifts.schedule_shifts(schedule, start, end)
        names = usernames(shift.user_id for shift in found)
        # The schedule's people in a fixed order (its rotations', then the fallback user),
        # for colours that stay the same from one fortnight to the next.
        people = sorted({user_id for rotation in schedule.rotations.all()
                         for user_id in rotation.participants}) + \
            ([schedule.fallback_user_id] if schedule.fallback_user_id else [])
        days = build_days(found, first_day=first_day, days=TIMELINE_DAYS, zone=zone, now=now,
                          names=names, people=people)
        may_add = request.user.has_perm("oncall.add_override")
        placer = rights.places_anyone_on_call(request.user)
        # Back to the same fortnight after saving the override.
        here = request.get_full_path()
        add_url = reverse(f"{self.admin_site.name}:oncall_override_add")
        for day in days:
            # Percentages for style attributes: fixed-point, never localized.
            day.now_css = None if day.now_at is None else f"{day.now_at:.3f}"
            for bar in day.bars:
                bar.left_css, bar.width_css = f"{bar.left:.3f}", f"{bar.width:.3f}"
                bar.title = "{}: {} – {}{}".format(
                    bar.label, bar.start.astimezone(zone).strftime(BAR_TIME),
                    bar.end.astimezone(zone).strftime(BAR_TIME),
                    " (override)" if bar.override_id else "")
                bar.add_url = None
                # Someone who may only swap themselves in cannot cover their own shift:
                # a teammate (or a Manager) makes that override.
                own_shift = bar.user_id == request.user.pk and not placer
                if own_shift:
                    bar.title += " (your shift: a teammate swaps in from their view)"
                if may_add and not own_shift:
                    query = {"schedule": schedule.pk, "start": instant_param(bar.start),
                             "end": instant_param(bar.end), "next": here}
                    if bar.user_id is not None:
                        query["replaces"] = bar.user_id
                    bar.add_url = f"{add_url}?{urlencode(query)}"
        legend, seen = [], set()
        for day in days:
            for bar in day.bars:
                if bar.user_id is not None and bar.user_id not in seen:
                    seen.add(bar.user_id)
                    legend.append(bar)
        return {
            "timeline_days": days, "timeline_legend": legend, "timeline_zone": schedule.time_zone,
            "timeline_earlier": (first_day - timedelta(days=TIMELINE_DAYS)).isoformat(),
            "timeline_later": (first_day + timedelta(days=TIMELINE_DAYS)).isoformat(),
            "timeline_today": today.isoformat(), "timeline_shows_today": first_day == today,
            "timeline_may_add": may_add,
            "timeline_hours": [{"label": f"{hour:02d}:00", "left": f"{100 * hour / 24:.3f}"}
                               for hour in range(0, 24, 3)],
        }

    def render_change_form(self, request, context, *args, obj=None, **kwargs):
        if obj is not None:
            context.update(self.timeline_context(request, obj))
        # Offered by the participants inputs (a <datalist>); people type the rest.
        context["known_usernames"] = User.objects.filter(is_active=True).order_by(
            "username").values_list("username", flat=True)[:500]
        return super().render_change_form(request, context, *args, obj=obj, **kwargs)


@admin.register(Override)
class OverrideAdmin(AdminPages, admin.ModelAdmin):
    form = OverrideForm
    list_display = ["schedule", "user", "replaces_label", "local_start", "local_end",
                    "created_by"]
    list_filter = ["schedule"]
    search_fields = ["schedule__name", "user__username", "replaces__username"]
    readonly_fields = ["created_by", "created_at", "local_start", "local_end"]

    class Media:
        css = {"all": CSS}
        js = JS

    def get_queryset(self, request):
        return super().get_queryset(request).select_related(
            "schedule", "user", "replaces", "created_by")

    def get_fields(self, request, obj=None):
        if obj is not None and not self.has_change_permission(request, obj):
            # Read-only, the stored instants would show in the portal's zone, unnamed:
            # show them in the schedule's, with the zone, as the list and the form do.
            return ["schedule", "user", "replaces", "local_start", "local_end", "created_by",
                    "created_at"]
        fields = ["schedule", "user", "replaces", "start", "end"]
        return fields if obj is None else [*fields, "created_by", "created_at"]

    def may_place_anyone(self, request) -> bool:
        return rights.places_anyone_on_call(request.user)

    def has_delete_permission(self, request, obj=None):
        allowed = super().has_delete_permission(request, obj)
        return allowed and (obj is None or rights.may_remove_override(request.user, obj))

    def get_form(self, request, obj=None, change=False, **kwargs):
        base = super().get_form(request, obj, change, **kwargs)
        anyone = self.may_place_anyone(request)

        class RequestOverrideForm(base):
            def __init__(self, *args, **kw):
                super().__init__(*args, request_user=request.user, may_place_anyone=anyone,
                                 **kw)

        return RequestOverrideForm

    def get_changeform_initial_data(self, request):
        """The timeline links here with the shift's schedule, instants and user."""
        initial = super().get_changeform_initial_data(request)
        initial.pop("next", None)
        schedule = schedule_from(initial.get("schedule"))
        zone = ZoneInfo(schedule.time_zone) if schedule else timezone.get_current_timezone()
        for name in ("start", "end"):
            try:
                instant = datetime.fromisoformat(initial.get(name, ""))
            except (TypeError, ValueError):
                initial.pop(name, None)
                continue
            if instant.tzinfo is None:
                instant = instant.replace(tzinfo=zone)
            initial[name] = local_parts(instant, zone)
        if not self.may_place_anyone(request):
            initial["user"] = request.user.pk
        return initial

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    def response_add(self, request, obj, post_url_continue=None):
        response = super().response_add(request, obj, post_url_continue)
        target = safe_next(request)
        if target and "_continue" not in request.POST and "_addanother" not in request.POST:
            response["Location"] = target
        return response

    @admin.display(description="Instead of", ordering="replaces__username")
    def replaces_label(self, override):
        return override.replaces or "everyone"

    def local(self, override, instant):
        return instant.astimezone(ZoneInfo(override.schedule.time_zone)).strftime(
            "%Y-%m-%d %H:%M %Z")

    @admin.display(description="Start", ordering="start")
    def local_start(self, override):
        return self.local(override, override.start)

    @admin.display(description="End", ordering="end")
    def local_end(self, override):
        return self.local(override, override.end)


def on_call_now_rows(site_name: str = "admin") -> list[dict]:
    """The index panel's rows: each schedule and who is on call there now."""
    found = shifts.on_call_now_everywhere()
    names = usernames(user_id for _, ids in found for user_id in ids)
    return [
        {"schedule": schedule, "url": admin_url(schedule, current_app=site_name),
         "users": [names.get(user_id, f"#{user_id}") for user_id in ids]}
        for schedule, ids in found
    ]

