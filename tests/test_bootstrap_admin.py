"""The first administrator that scripts/start and the container create (docs/deployment.md)."""

from io import StringIO

from django.contrib.auth.models import Group, User
from django.core.management import call_command


def run() -> str:
    out = StringIO()
    call_command("bootstrap_admin", stdout=out)
    return out.getvalue()


def test_first_start_creates_an_administrator_in_the_administrator_group(db):
    assert "password:" in run()
    admin = User.objects.get(username="admin")
    assert admin.is_superuser
    assert list(admin.groups.values_list("name", flat=True)) == ["Administrator"]


def test_a_missing_administrator_group_does_not_stop_the_first_start(db):
    Group.objects.filter(name="Administrator").delete()
    assert "password:" in run()
    assert User.objects.get(username="admin").is_superuser


def test_a_later_start_creates_nobody(db):
    run()
    assert "already exists" in run()
    assert User.objects.count() == 1
