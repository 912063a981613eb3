from django.db import migrations

SCHEDULES = [
    # (name, function, minutes between runs)
    ("Requeue stale inbound events", "integrations.tasks.requeue_stale_events", 1),
    ("Prune old inbound events", "integrations.tasks.prune_inbound_events", 60),
]


def create_schedules(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    for name, func, minutes in SCHEDULES:
        Schedule.objects.update_or_create(
            name=name,
            defaults={"func": func, "schedule_type": "I", "minutes": minutes, "repeats": -1},
        )


def remove_schedules(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(
        name__in=[name for name, _, _ in SCHEDULES]
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("integrations", "0002_ingest"),
        ("django_q", "0018_task_success_index"),
    ]

    operations = [migrations.RunPython(create_schedules, remove_schedules)]
