"""This migration scheduled the ingest sweeper and pruning; tocsin.jobs declares them now,
and migrate keeps their schedules. It stays, empty, for the installs that applied it and
the migrations that depend on it."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("integrations", "0002_ingest"),
        ("django_q", "0018_task_success_index"),
    ]

    operations = []
