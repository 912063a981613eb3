"""Give the roles their integrations permissions: Managers edit rules, Responders see them
(to understand why an alert was suppressed or changed).

Edited after release: the integration, token, alert and inbound event permissions were
granted by incidents/0002_roles, which now grants only incidents' own. On a database
migrated before the edit both migrations have run and neither runs again, so its groups
keep what they hold; on a fresh database this migration grants what the old roles migration
granted, so the groups end with the same permissions (tests/test_migration_upgrade.py).
Reversing it still removes only the alert rule permissions, as it always did.
Administrators hold every permission through incidents/roles.py.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

RULES_RESPONDER = ["view_alertrule"]
RULES_MANAGER = ["add_alertrule", "change_alertrule", "delete_alertrule", "view_alertrule"]

RESPONDER = ["view_integration", "view_alert", "view_inboundevent"] + RULES_RESPONDER
MANAGER = RESPONDER + [
    f"{action}_{model}" for model in ("integration", "integrationtoken")
    for action in ("add", "change", "delete", "view")
] + [
    # Reprocessing a failed inbound event is a change of that event.
    "change_inboundevent",
] + RULES_MANAGER


def grant(apps, schema_editor):
    app_config = apps.get_app_config("integrations")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in (("Responder", RESPONDER), ("Manager", MANAGER)):
        group = Group.objects.filter(name=name).first()
        if group is not None:
            group.permissions.add(*Permission.objects.filter(
                content_type__app_label="integrations", codename__in=codenames
            ))


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for group in Group.objects.filter(name__in=["Responder", "Manager"]):
        group.permissions.remove(*Permission.objects.filter(
            content_type__app_label="integrations", codename__in=RULES_MANAGER
        ))


class Migration(migrations.Migration):
    dependencies = [
        ("integrations", "0005_mapping_and_alert_rules"),
        ("incidents", "0002_roles"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
