from django.apps import AppConfig
from django.db.models.signals import post_migrate

from incidents.roles import grant_administrators_every_permission


class IncidentsConfig(AppConfig):
    name = "incidents"
    verbose_name = "Incidents"

    def ready(self):
        post_migrate.connect(grant_administrators_every_permission, dispatch_uid="tocsin-admins")
