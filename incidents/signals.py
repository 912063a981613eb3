from django.dispatch import Signal

# Sent inside the transaction that changes an incident's status, so receivers can record
# follow-up work (deliveries) atomically with the change: both commit or neither does.
# Arguments: incident, old_status, new_status, actor (a user or None).
incident_status_recorded = Signal()

# Sent after the transaction that changed an incident's status commits.
# Arguments: incident, old_status, new_status, actor (a user or None).
incident_status_changed = Signal()

# An incident escalated: an SLA breach, or (with escalation policies) a step that moved to
# the next level. Sent inside the transaction that records it on the timeline, once per
# escalation. Arguments: incident, reason (a sentence), key (stable id of the escalation),
# actor (the user who asked for it, or None when it happened by itself).
incident_escalated = Signal()
