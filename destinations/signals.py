from django.dispatch import Signal

# A Platform Action: a destination failed TOCSIN_DESTINATION_FAILING_AFTER deliveries in a
# row and is now marked failing. Sent once per transition. Arguments: destination, error.
destination_failing = Signal()
