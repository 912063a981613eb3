import pytest
from django.contrib.auth.models import Group, User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from incidents import lifecycle
from incidents.models import Service, Team
from integrations.models import Integration
from tests.delivery_helpers import deliver_inline, inline  # noqa: F401 (fixtures)
from tests.ingest_helpers import run_tasks  # noqa: F401 (fixture)
from tests.sinks import http_sink, silent_port, smtp_sink, twilio  # noqa: F401 (fixtures)

ROLES = ["Responder", "Manager", "Administrator"]


def make_user(username: str, role: str | None = None, *, staff: bool = True) -> User:
    user = User.objects.create_user(username=username, password="pw-" + username, is_staff=staff)
    if role:
        user.groups.add(Group.objects.get(name=role))
    return user


def api_client_for(user: User | None) -> APIClient:
    client = APIClient()
    if user is not None:
        token, _ = Token.objects.get_or_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def responder(db):
    return make_user("rita", "Responder")


@pytest.fixture
def manager(db):
    return make_user("max", "Manager")


@pytest.fixture
def as_responder(responder):
    """The REST API as the Responder."""
    return api_client_for(responder)


@pytest.fixture
def as_manager(manager):
    """The REST API as the Manager."""
    return api_client_for(manager)


@pytest.fixture
def administrator(db):
    return make_user("ada", "Administrator")


@pytest.fixture
def team(db):
    return Team.objects.create(name="Platform")


@pytest.fixture
def service(team):
    return Service.objects.create(name="Checkout", team=team)


@pytest.fixture
def integration(service):
    return Integration.objects.create(name="Prometheus", kind="generic", service=service)


@pytest.fixture
def incident(service):
    return lifecycle.open_incident(service=service, title="Disk full on db-1", entity_id="db-1")
