from django.dispatch import Signal

# An integration was created, enabled or disabled, or one of its tokens was revoked: a
# Platform Action the portal's notifications report. Sent in the transaction of the change.
# Arguments: integration, change ("created", "enabled", "disabled", "token_revoked"),
# detail (a sentence, may be empty). Deletion is Django's own post_delete.
integration_changed = Signal()

# An alert opened an incident (not joined one). Sent inside the processing transaction, so
# receivers (stakeholder messages) record their work atomically with the incident.
# Arguments: alert, incident.
alert_opened_incident = Signal()
