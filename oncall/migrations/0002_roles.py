"""Give the roles their on-call permissions.

Responders see schedules and pages, keep their own contact methods and notification rules
(the add/change/delete permissions below are narrowed to a user's own rows in code), and
may add an override that puts themselves on call (a swap). Managers edit schedules,
rotations and overrides, anyone's contact methods and rules, and re-send messages.
Administrators hold every permission through incidents/roles.py.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

OWN = [f"{action}_{model}" for model in ("contactmethod", "notificationrule")
       for action in ("add", "change", "delete", "view")]
RESPONDER = OWN + [
    "view_schedule", "view_rotation", "view_override", "add_override", "delete_override",
    "view_page", "view_personalnotification",
]
MANAGER = RESPONDER + [
    f"{action}_{model}" for model in ("schedule", "rotation", "override")
    for action in ("add", "change", "delete")
] + ["manage_everyones_contact_methods", "resend_personalnotification"]


def grant(apps, schema_editor):
    app_config = apps.get_app_config("oncall")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in (("Responder", RESPONDER), ("Manager", MANAGER)):
        group = Group.objects.filter(name=name).first()
        if group is not None:
            group.permissions.add(*Permission.objects.filter(
                content_type__app_label="oncall", codename__in=codenames
            ))


class Migration(migrations.Migration):
    dependencies = [
        ("oncall", "0001_initial"),
        ("incidents", "0002_roles"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
