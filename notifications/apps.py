from django.apps import AppConfig
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = "Notifications"

    def ready(self):
        # Models and the apps' signals load only once the app registry is ready.
        from django.contrib.auth import get_user_model

        from destinations.signals import destination_failing
        from incidents.signals import incident_escalated, incident_status_recorded
        from integrations.models import Integration
        from integrations.signals import (
            alert_opened_incident,
            integration_changed,
            integration_configuration_changed,
        )
        from notifications import receivers, stakeholders

        user = get_user_model()
        incident_status_recorded.connect(receivers.on_incident_status,
                                         dispatch_uid="notifications-incidents")
        incident_escalated.connect(receivers.on_escalation,
                                   dispatch_uid="notifications-escalations")
        destination_failing.connect(receivers.on_destination_failing,
                                    dispatch_uid="notifications-destination-failing")
        integration_changed.connect(receivers.on_integration_changed,
                                    dispatch_uid="notifications-integrations")
        integration_configuration_changed.connect(
            receivers.on_integration_configuration_changed,
            dispatch_uid="notifications-integration-configuration")
        post_delete.connect(receivers.on_integration_deleted, sender=Integration,
                            dispatch_uid="notifications-integration-deleted")
        alert_opened_incident.connect(stakeholders.on_alert_opened_incident,
                                      dispatch_uid="notifications-stakeholders")
        post_save.connect(receivers.on_user_saved, sender=user,
                          dispatch_uid="notifications-user-saved")
        pre_save.connect(receivers.remember_password_change, sender=user,
                         dispatch_uid="notifications-password")
        m2m_changed.connect(receivers.on_groups_changed, sender=user.groups.through,
                            dispatch_uid="notifications-roles")
