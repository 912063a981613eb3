"""Create the Responder, Manager and Administrator groups with incidents' permissions.

The permission lists are frozen here on purpose: a later feature that adds models extends
the groups in its own migration.

Edited after release: this migration used to grant the integrations and destinations
permissions too, and so depended on those apps' migrations. Each app now grants its own
(integrations/0006_alert_rule_roles, destinations/0003_roles_and_sweeper), so incidents
needs no other app (docs/architecture.md). On a database migrated with the original,
this migration is recorded as applied and does not run again, and the groups keep what
they hold; on a fresh database the three migrations together grant the same sets as the
original did. Administrators get every other permission from the post_migrate receiver in
incidents/roles.py, as before.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

RESPONDER = [
    "view_team",
    "view_service",
    "view_incident",
    "view_timelineentry",
    "view_priority",
    "view_sla",
    "view_tag",
    "view_escalationpolicy",
    "acknowledge_incident",
    "resolve_incident",
    "comment_incident",
]

MANAGED_MODELS = ["team", "service", "priority", "sla", "tag", "escalationpolicy"]

MANAGER = RESPONDER + [
    f"{action}_{model}" for model in MANAGED_MODELS
    for action in ("add", "change", "delete", "view")
] + ["change_incident"]


def create_roles(apps, schema_editor):
    # Permissions are normally created after migrate finishes; create them now so the
    # groups can hold them on a fresh database.
    app_config = apps.get_app_config("incidents")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    incidents = Permission.objects.filter(content_type__app_label="incidents")

    Group.objects.get_or_create(name="Responder")[0].permissions.set(
        incidents.filter(codename__in=RESPONDER)
    )
    Group.objects.get_or_create(name="Manager")[0].permissions.set(
        incidents.filter(codename__in=MANAGER)
    )
    Group.objects.get_or_create(name="Administrator")[0].permissions.set(incidents)


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(
        name__in=["Responder", "Manager", "Administrator"]
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("incidents", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
