from django.db import transaction
from django.dispatch import Signal

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
