from django.dispatch import Signal

# Sent after the transaction that changed an incident's status commits.
# Arguments: incident, old_status, new_status, actor (a user or None).
incident_status_changed = Signal()
