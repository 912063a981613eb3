from django.apps import AppConfig, apps
from django.db.models.signals import post_migrate

from tocsin.jobs import sync_after_migrate


class TocsinConfig(AppConfig):
    """The project package as an app, for what belongs to no one app: the periodic jobs
    (tocsin.jobs). It has no models."""

    name = "tocsin"
    verbose_name = "Tocsin"

    def ready(self):
        # post_migrate is sent once per app that has models, so this one (without) would
        # never hear it as sender; django_q's is the app whose table the sync writes.
        post_migrate.connect(sync_after_migrate, sender=apps.get_app_config("django_q"),
                             dispatch_uid="tocsin-periodic-jobs")
