"""Extension points: how the apps built on incidents add to its API and admin pages.

integrations, destinations and notifications depend on incidents, never the reverse
(docs/architecture.md). Where a service or incident page must show or accept something
another app owns (which destinations a service sends to, what was sent for an incident),
that app registers it here from its AppConfig.ready(), and incidents renders whatever is
registered without importing the app. Registration happens once per process, before the
first request; nothing is registered twice, since ready() runs once.

Four points:

- ``add_service_api_field``: a field of the REST ``services`` resource, built per
  serializer; a relation's value is read and written through Service's accessor of the
  same name (DRF's ModelSerializer sets a to-many relation after saving the service).
- ``add_service_inline``: an inline of the Service admin page.
- ``add_incident_panel``: a read-only section of the incident admin page, one callable
  that takes the incident and returns HTML (its ``admin.display`` description labels it).
  With ``with_request=True`` it takes the request too, for what depends on who looks (a
  button only some may press). Panels show in the order they were added.
- ``add_escalation_policy_inline``: an inline of the EscalationPolicy admin page (its steps,
  which the on-call app owns).
"""

import functools
from collections.abc import Callable
from dataclasses import dataclass

from django.contrib.admin.options import InlineModelAdmin
from rest_framework.fields import Field


@dataclass(frozen=True)
class ServiceApiField:
    name: str
    make: Callable[[], Field]
    # A relation the service list prefetches, so listing services costs one query per
    # relation, not one per service.
    prefetch: str | None = None


@dataclass(frozen=True)
class IncidentPanel:
    title: str
    render: Callable
    with_request: bool = False

    def field(self, request) -> Callable:
        """The panel as a read-only field of the admin: a callable of the incident alone.
        The wrapper keeps the render's name and ``admin.display`` attributes, which label
        the field."""
        if not self.with_request:
            return self.render

        @functools.wraps(self.render)
        def render(incident):
            return self.render(incident, request)
        return render


service_api_fields: list[ServiceApiField] = []
service_inlines: list[type[InlineModelAdmin]] = []
incident_panels: list[IncidentPanel] = []
escalation_policy_inlines: list[type[InlineModelAdmin]] = []


def add_service_api_field(name: str, make: Callable[[], Field], *, prefetch: str | None = None):
    service_api_fields.append(ServiceApiField(name, make, prefetch))


def add_service_inline(inline: type[InlineModelAdmin]):
    service_inlines.append(inline)


def add_incident_panel(title: str, render: Callable, *, with_request: bool = False):
    incident_panels.append(IncidentPanel(title, render, with_request))


def add_escalation_policy_inline(inline: type[InlineModelAdmin]):
    escalation_policy_inlines.append(inline)
