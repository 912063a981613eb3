"""What every app's task queueing shares."""

import functools

from django_q.brokers import get_broker


@functools.cache
def broker():
    # One broker (and so one Redis connection) per process; without it django-q2 builds a
    # new one for every task it queues.
    return get_broker()
