"""Create the Responder, Manager and Administrator groups with their permissions.

The permission lists are frozen here on purpose: a later feature that adds models extends
the groups in its own migration.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

RESPONDER = [
    "incidents.view_team",
    "incidents.view_service",
    "incidents.view_incident",
    "incidents.view_timelineentry",
    "incidents.view_priority",
    "incidents.view_sla",
    "incidents.view_tag",
    "incidents.view_escalationpolicy",
    "incidents.acknowledge_incident",
    "incidents.resolve_incident",
    "incidents.comment_incident",
    "integrations.view_integration",
    "integrations.view_alert",
    "integrations.view_inboundevent",
    "destinations.view_destination",
]

MANAGED_MODELS = [
    "incidents.team",
    "incidents.service",
    "incidents.priority",
    "incidents.sla",
    "incidents.tag",
    "incidents.escalationpolicy",
    "integrations.integration",
    "integrations.integrationtoken",
    "destinations.destination",
]

MANAGER = RESPONDER + [
    f"{model.split('.')[0]}.{action}_{model.split('.')[1]}"
    for model in MANAGED_MODELS
    for action in ("add", "change", "delete", "view")
] + [
    "incidents.change_incident",
    # Reprocessing a failed inbound event is a change of that event.
    "integrations.change_inboundevent",
]


def create_roles(apps, schema_editor):
    # Permissions are normally created after migrate finishes; create them now so the
    # groups can hold them on a fresh database.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")

    def permissions(names):
        found = []
        for name in names:
            app_label, codename = name.split(".")
            found.append(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
        return found

    Group.objects.get_or_create(name="Responder")[0].permissions.set(permissions(RESPONDER))
    Group.objects.get_or_create(name="Manager")[0].permissions.set(permissions(MANAGER))
    Group.objects.get_or_create(name="Administrator")[0].permissions.set(
        Permission.objects.all()
    )


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(
        name__in=["Responder", "Manager", "Administrator"]
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("incidents", "0001_initial"),
        ("integrations", "0001_initial"),
        ("destinations", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("authtoken", "0004_alter_tokenproxy_options"),
        ("django_q", "0018_task_success_index"),
        ("admin", "0003_logentry_add_action_flag_choices"),
        ("sessions", "0001_initial"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
