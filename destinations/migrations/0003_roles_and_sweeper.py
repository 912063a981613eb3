"""Give the roles their delivery permissions.

Responders see deliveries (the incident page lists them); Managers also re-send them. (This
migration also scheduled the delivery sweeper; tocsin.jobs declares it now, and migrate
keeps its schedule.)
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

RESPONDER = ["view_delivery"]
MANAGER = ["view_delivery", "resend_delivery"]


def grant(apps, schema_editor):
    app_config = apps.get_app_config("destinations")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in (("Responder", RESPONDER), ("Manager", MANAGER)):
        group = Group.objects.filter(name=name).first()
        if group is not None:
            group.permissions.add(*Permission.objects.filter(
                content_type__app_label="destinations", codename__in=codenames
            ))


class Migration(migrations.Migration):
    dependencies = [
        ("destinations", "0002_deliveries"),
        ("incidents", "0002_roles"),
        ("django_q", "0018_task_success_index"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
