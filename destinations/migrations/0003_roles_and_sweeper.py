"""Give the roles their delivery permissions.

Responders see destinations and deliveries (the incident page lists them); Managers also
manage destinations and re-send deliveries.

Edited after release: the destination permissions were granted by incidents/0002_roles,
which now grants only incidents' own. On a database migrated before the edit both
migrations have run and neither runs again, so its groups keep what they hold; on a fresh
database this migration grants what the old roles migration granted, so the groups end with
the same permissions (tests/test_migration_upgrade.py). Administrators hold every
permission through incidents/roles.py.

(This migration also scheduled the delivery sweeper; tocsin/jobs.py declares it now, and
migrate keeps its schedule.)
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

RESPONDER = ["view_destination", "view_delivery"]
MANAGER = RESPONDER + [
    "add_destination", "change_destination", "delete_destination", "resend_delivery",
]


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
