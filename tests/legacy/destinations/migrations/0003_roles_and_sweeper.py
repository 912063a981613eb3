"""Give the roles their delivery permissions and schedule the delivery sweeper.

Responders see deliveries (the incident page lists them); Managers also re-send them.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

RESPONDER = ["view_delivery"]
MANAGER = ["view_delivery", "resend_delivery"]
SWEEPER = "Queue due deliveries"


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
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        name=SWEEPER,
        defaults={"func": "destinations.delivery.queue_due_deliveries", "schedule_type": "I",
                  "minutes": 1, "repeats": -1},
    )


def revoke(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=SWEEPER).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("destinations", "0002_deliveries"),
        ("incidents", "0002_roles"),
        ("django_q", "0018_task_success_index"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
