from django.db import transaction
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


# A Platform Action: an integration's mapping or alert rules were changed through the admin
# or the API. Sent after the change commits. Arguments: integration, what ("mapping" or
# "rules"), actor (the user, or None).
integration_configuration_changed = Signal()


def announce_configuration_change(integration, what: str, actor) -> None:
    """Send integration_configuration_changed once the current transaction commits (at
    once outside one), so receivers never hear of a change that was rolled back."""
    transaction.on_commit(
        lambda: integration_configuration_changed.send(
            sender=type(integration), integration=integration, what=what, actor=actor,
        )
    )
