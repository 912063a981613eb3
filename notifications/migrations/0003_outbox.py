"""Notifications become an outbox like deliveries (tocsin/outbox.py): the time of the last
attempt is kept, and the sweeper's query (pending rows by due time) has its index."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("notifications", "0002_singleton_and_sweeper"),
    ]

    operations = [
        migrations.AddField(
            model_name="notification",
            name="last_attempt_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddIndex(
            model_name="notification",
            index=models.Index(fields=["status", "next_attempt_at"],
                               name="notificatio_status_444bb6_idx"),
        ),
    ]
