"""Create the one notification settings record and the sweeper that sends what is due."""

from django.db import migrations

SWEEPER = "Queue due notifications"


def create(apps, schema_editor):
    apps.get_model("notifications", "NotificationSettings").objects.get_or_create(pk=1)
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        name=SWEEPER,
        defaults={"func": "notifications.sending.queue_due_notifications",
                  "schedule_type": "I", "minutes": 1, "repeats": -1},
    )


def remove(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=SWEEPER).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("notifications", "0001_notification_settings"),
        ("django_q", "0018_task_success_index"),
    ]

    operations = [migrations.RunPython(create, remove)]
