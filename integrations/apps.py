from anymail.signals import inbound
from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "Integrations"

    def ready(self):
        # Imported here, as Django requires for modules that use models.
        from integrations import inbound_mail

        # Mail posted to /anymail/<esp>/inbound/ arrives through this signal.
        inbound.connect(inbound_mail.receive_anymail, dispatch_uid="tocsin-inbound-mail")
