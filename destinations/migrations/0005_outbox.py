"""destinations.delivery is now destinations.sending. django-q2 stores a task's function
by dotted path, so the schedules that name the old module (the minute sweeper and the
one-off retries waiting for their time) are pointed at the new one.

Tasks already handed to the broker under the old name are not rewritten (they are signed
payloads in the broker, not rows to update): such a task fails to import without touching
its delivery, which stays pending and unclaimed, and the sweeper queues it again about a
minute later (see tocsin/outbox.py). So no module is kept under the old name.
"""

from django.db import migrations
from django.db.models import Value
from django.db.models.functions import Concat, Substr

OLD, NEW = "destinations.delivery.", "destinations.sending."


def rename(old: str, new: str):
    def rewrite(apps, schema_editor):
        Schedule = apps.get_model("django_q", "Schedule")
        Schedule.objects.filter(func__startswith=old).update(
            func=Concat(Value(new), Substr("func", len(old) + 1)))
    return rewrite


class Migration(migrations.Migration):
    dependencies = [
        ("destinations", "0004_remote_ids"),
        ("django_q", "0018_task_success_index"),
    ]

    operations = [migrations.RunPython(rename(OLD, NEW), rename(NEW, OLD))]
