"""Sample requests shown on integration pages, so a new user can send a first alert."""

import json
import shlex

from integrations.models import Integration

GENERIC_SAMPLE = {
    "message": "CPU above 90% on web-1",
    "summary": "web-1 has been above 90% CPU for 5 minutes",
    "alert_type": "critical",
    "entity_id": "web-1-cpu",
    "payload": {"host": "web-1", "cpu_percent": 93.5},
    "urls": [{"link_url": "https://grafana.example.com/d/web", "link_text": "Dashboard"}],
}

EMAIL_SAMPLE_BODY = """severity: 1
description: Disk almost full on db-2
source: nagios
source_id: db-2-disk
event_time: 1767225600
resource_name: db-2
type: disk
metric_name: disk_used_percent
other_info: /var at 97%"""


def sample_payload(integration: Integration) -> str:
    if integration.kind == Integration.Kind.EMAIL:
        return EMAIL_SAMPLE_BODY
    return json.dumps(GENERIC_SAMPLE, indent=2)


def curl_example(integration: Integration) -> str:
    if integration.kind != Integration.Kind.GENERIC:
        return ""
    body = json.dumps(GENERIC_SAMPLE)
    return (
        f"curl -X POST {shlex.quote(integration.webhook_url)} \\\n"
        f"  -H 'Content-Type: application/json' \\\n"
        f"  -d {shlex.quote(body)}"
    )
