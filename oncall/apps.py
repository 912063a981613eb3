from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save, pre_delete, pre_save

from incidents.signals import incident_status_recorded


class OncallConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "oncall"
    verbose_name = "On call"

    def ready(self):
        # Models load only once apps are ready. Importing rotation_history connects its
        # receiver: editing a rotation records its previous definition.
        from oncall import contributions, escalation, handoffs, rotation_history, sending  # noqa: F401
        from oncall.models import ContactMethod, Override

        contributions.register()
        # Opening an incident starts its escalation; acknowledging or resolving it stops it,
        # in the same transaction (docs/escalation.md).
        incident_status_recorded.connect(escalation.on_incident_status,
                                         dispatch_uid="oncall.escalation.on_incident_status")
        pre_delete.connect(sending.cancel_messages_of_deleted_method, sender=ContactMethod,
                           dispatch_uid="oncall.sending.cancel_messages_of_deleted_method")
        # An override added, changed or removed anywhere (API, admin, shell) tells the
        # people whose shifts it touches (docs/on-call.md#handoff-notices).
        pre_save.connect(handoffs.remember_previous, sender=Override,
                         dispatch_uid="oncall.handoffs.remember_previous")
        post_save.connect(handoffs.override_saved, sender=Override,
                          dispatch_uid="oncall.handoffs.override_saved")
        post_delete.connect(handoffs.override_deleted, sender=Override,
                            dispatch_uid="oncall.handoffs.override_deleted")
