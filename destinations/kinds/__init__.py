"""Destination kinds: one module each, all with the same shape (FIELDS and send)."""

from destinations.kinds import (
    chatwork,
    email,
    hipchat,
    ilert,
    mattermost,
    opsgenie,
    pagerduty,
    servicenow,
    slack,
    webhook,
    zendesk,
    zenduty,
)

KINDS = {
    "email": email,
    "slack": slack,
    "mattermost": mattermost,
    "webhook": webhook,
    "pagerduty": pagerduty,
    "opsgenie": opsgenie,
    "chatwork": chatwork,
    "hipchat": hipchat,
    "ilert": ilert,
    "servicenow": servicenow,
    "zendesk": zendesk,
    "zenduty": zenduty,
}


def kind_module(kind: str):
    return KINDS[kind]
