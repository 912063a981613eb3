"""The admin index's "On call now" panel (templates/admin/index.html)."""

from django import template

from oncall.admin.schedules import on_call_now_rows

register = template.Library()


@register.inclusion_tag("admin/oncall/on_call_now.html", takes_context=True)
def on_call_now_panel(context):
    request = context["request"]
    if not request.user.has_perm("oncall.view_schedule"):
        return {"visible": False}
    return {"visible": True, "rows": on_call_now_rows()}
