"""Give the roles their alert rule permissions: Managers edit rules, Responders see them
(to understand why an alert was suppressed or changed)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

RESPONDER = ["view_alertrule"]
MANAGER = ["add_alertrule", "change_alertrule", "delete_alertrule", "view_alertrule"]


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
            content_type__app_label="integrations", codename__in=MANAGER
        ))


class Migration(migrations.Migration):
    dependencies = [
        ("integrations", "0005_mapping_and_alert_rules"),
        ("incidents", "0002_roles"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
