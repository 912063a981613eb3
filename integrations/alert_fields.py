"""What every parser makes of a body (generic JSON, a mapping, the incoming webhook, a
mail): the fields of an alert before rules, and what rules and grouping then read."""

import uuid
from dataclasses import dataclass, field

from incidents.models import Incident
from integrations.models import AlertType

# An incident opened by an alert gets this urgency unless a mapping or a rule sets one.
URGENCY_FOR_TYPE = {AlertType.WARNING: Incident.Urgency.LOW}


@dataclass
class AlertFields:
    message: str
    summary: str = ""
    alert_type: str = AlertType.INFO
    suppressed: bool = False
    entity_id: str = ""
    payload: dict = field(default_factory=dict)
    urls: list = field(default_factory=list)
    # Set by a mapping or a rule; otherwise it follows alert_type (effective_urgency).
    urgency: str = ""
    # Ids as sent; resolved (or ignored) when the alert is processed.
    sla: object = None
    escalation_policy: object = None
    priority: object = None
    tags: list = field(default_factory=list)
    stakeholders: dict = field(default_factory=dict)
    stakeholders_comms: dict = field(default_factory=dict)
    # Set by the incoming webhook: the alert declares a new incident with these fields.
    declare: dict | None = None
    # Kept in Alert.extra as they are: `severity` (the severity text of an incident the
    # alert opens), `warnings` (what the parser had to guess), and the like.
    extra: dict = field(default_factory=dict)

    def effective_urgency(self) -> str:
        return self.urgency or URGENCY_FOR_TYPE.get(self.alert_type, Incident.Urgency.HIGH)

    def ensure_entity_id(self) -> None:
        if not self.entity_id:
            self.entity_id = uuid.uuid4().hex
