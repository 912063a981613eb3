"""Destination kinds: one module each, holding one class derived from kinds.base.Kind.

The registry holds one instance per kind; kinds keep no state, so one serves every send.
"""

from destinations.kinds.base import Kind
from destinations.kinds.chatwork import ChatWork
from destinations.kinds.email import Email
from destinations.kinds.hipchat import HipChat
from destinations.kinds.ilert import Ilert
from destinations.kinds.mattermost import Mattermost
from destinations.kinds.opsgenie import Opsgenie
from destinations.kinds.pagerduty import PagerDuty
from destinations.kinds.servicenow import ServiceNow
from destinations.kinds.slack import Slack
from destinations.kinds.webhook import Webhook
from destinations.kinds.zendesk import Zendesk
from destinations.kinds.zenduty import Zenduty

KINDS: dict[str, Kind] = {
    "email": Email(),
    "slack": Slack(),
    "mattermost": Mattermost(),
    "webhook": Webhook(),
    "pagerduty": PagerDuty(),
    "opsgenie": Opsgenie(),
    "chatwork": ChatWork(),
    "hipchat": HipChat(),
    "ilert": Ilert(),
    "servicenow": ServiceNow(),
    "zendesk": Zendesk(),
    "zenduty": Zenduty(),
}


def kind_for(kind: str) -> Kind:
    """The kind a destination's ``kind`` value names."""
    return KINDS[kind]
