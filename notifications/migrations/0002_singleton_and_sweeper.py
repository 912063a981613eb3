"""Create the one notification settings record. (This migration also scheduled the sweeper
that sends what is due; tocsin.jobs declares it now, and migrate keeps its schedule.)"""

from django.db import migrations


def create(apps, schema_editor):
    apps.get_model("notifications", "NotificationSettings").objects.get_or_create(pk=1)


class Migration(migrations.Migration):
    dependencies = [
        ("notifications", "0001_notification_settings"),
        ("django_q", "0018_task_success_index"),
    ]

    operations = [migrations.RunPython(create, migrations.RunPython.noop)]
