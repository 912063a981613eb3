"""Sample requests shown on integration pages, so a new user can send a first alert."""

import json
import shlex

from django.urls import reverse

from integrations.models import Integration
from tocsin.links import portal_url

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


INCOMING_SAMPLE = {
    "report": {"title": "Checkout error rate above 5%", "severity": "major"},
    "alerts": [{"labels": {"alertname": "HighErrorRate", "team": "payments"}}],
}
INCOMING_PARAMS = (
    "title=json(report.title)&severity=json(report.severity)&labels=grafana,checkout"
    "&roomprefix=inc&drill=false"
)


def incoming_webhook_url(with_params: bool = True) -> str:
    url = portal_url(reverse("incoming-webhook-create"))
    return f"{url}?{INCOMING_PARAMS}" if with_params else url


def sample_payload(integration: Integration) -> str:
    if integration.kind == Integration.Kind.EMAIL:
        return EMAIL_SAMPLE_BODY
    if integration.kind == Integration.Kind.INCOMING_WEBHOOK:
        return json.dumps(INCOMING_SAMPLE, indent=2)
    return json.dumps(GENERIC_SAMPLE, indent=2)


def curl_example(integration: Integration) -> str:
    if integration.kind == Integration.Kind.INCOMING_WEBHOOK:
        return (
            f"curl -X POST {shlex.quote(incoming_webhook_url())} \\\n"
            f"  -H 'Authorization: Bearer <your token>' \\\n"
            f"  -H 'Content-Type: application/json' \\\n"
            f"  -d {shlex.quote(json.dumps(INCOMING_SAMPLE))}"
        )
    if integration.kind != Integration.Kind.GENERIC:
        return ""
    body = json.dumps(GENERIC_SAMPLE)
    return (
        f"curl -X POST {shlex.quote(integration.webhook_url)} \\\n"
        f"  -H 'Content-Type: application/json' \\\n"
        f"  -d {shlex.quote(body)}"
    )
