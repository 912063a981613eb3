"""What the apps' admin pages share: contrib.admin's habits for their own pages and
actions, a read-only base for the logs the system writes, state badges and copyable text.

The conventions (docs/roles.md, "Admin history"):

- An admin's own pages are added in ``get_urls()`` behind ``self.admin_site.admin_view``
  and named like contrib.admin's (``<app>_<model>_<view>``), built from ``self.opts``.
- They load their object with ``self.get_object()`` and, like the change page, check the
  permission before telling whether the object exists; an id that matches nothing goes
  back to the admin index with a message.
- Whatever changes something writes admin history (``LogEntry``), as Django's own add,
  change and delete do, so an object's History page tells who did what.
"""

from django.contrib import admin
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.admin.templatetags.admin_urls import admin_urlname
from django.contrib.admin.utils import quote
from django.urls import path, reverse
from django.utils.html import format_html

CSS = ["tocsin/admin.css"]
JS = ["tocsin/admin.js"]


def admin_url(obj, view: str = "change", *, current_app: str = "admin") -> str:
    """The admin page of any object (its change page by default), named from its model."""
    return reverse(admin_urlname(obj._meta, view), args=[quote(obj.pk)],
                   current_app=current_app)


class AdminPages:
    """contrib.admin's habits for a ModelAdmin's own pages and actions (see above)."""

    def url_name(self, view: str) -> str:
        return f"{self.opts.app_label}_{self.opts.model_name}_{view}"

    def object_path(self, route: str, view, name: str):
        """A page of one object at ``<id>/<route>/``, behind the admin's login check."""
        return path(f"<path:object_id>/{route}/", self.admin_site.admin_view(view),
                    name=self.url_name(name))

    def object_url(self, obj, view: str = "change") -> str:
        return admin_url(obj, view, current_app=self.admin_site.name)

    def missing_object(self, request, object_id):
        """What the change page answers for an id that matches nothing."""
        return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)

    def log_changes(self, request, objects, message: str) -> None:
        """``log_change`` for the objects an action changed, written in one INSERT."""
        objects = list(objects)
        if objects:
            LogEntry.objects.log_actions(
                user_id=request.user.pk, queryset=objects, action_flag=CHANGE,
                change_message=message,
            )


class ReadOnlyLogAdmin(AdminPages, admin.ModelAdmin):
    """Records the system writes (inbound events, alerts, deliveries, notifications):
    browsed and filtered, never added or edited by hand, since an edited record would no
    longer say what happened. Their own actions (re-send, reprocess) name their own
    permissions, so they stay with whoever holds those. Deleting follows the delete
    permission, as for any model (only Administrators hold it)."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_readonly_fields(self, request, obj=None):
        # Every stored field is shown, editable or not (received_at, trace ids…); the
        # excluded ones are shown by a display method of their own instead.
        excluded = set(self.exclude or ())
        stored = [f.name for f in self.opts.fields if f.name not in excluded]
        return stored + [f for f in self.readonly_fields if f not in stored]


def badge(value: str, label: str):
    """A coloured pill; static/tocsin/admin.css has a colour per state value."""
    return format_html('<span class="tocsin-badge tocsin-badge--{}">{}</span>', value, label)


def copyable(element_id: str, text: str, *, block: bool = False):
    """Text with a Copy button next to it (static/tocsin/admin.js does the copying)."""
    if block:
        shown = format_html('<pre id="{}">{}</pre>', element_id, text)
    else:
        shown = format_html('<code id="{}">{}</code>', element_id, text)
    return format_html(
        '<div class="tocsin-copy">{}<button type="button" class="button" '
        'data-copy-target="{}">Copy</button></div>',
        shown, element_id,
    )
