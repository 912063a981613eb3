from django.apps import AppConfig


class DestinationsConfig(AppConfig):
    name = "destinations"
    verbose_name = "Alert destinations"

    def ready(self):
        from destinations import contributions  # models load only once apps are ready
        from destinations.sending import record_deliveries
        from incidents.signals import incident_status_recorded

        incident_status_recorded.connect(record_deliveries, dispatch_uid="destinations")
        contributions.register()
