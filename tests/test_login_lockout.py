"""Repeated failed admin sign-ins lock out that username from that address (django-axes),
without touching other users, other addresses or API tokens (docs/security.md)."""

import pytest
from axes.models import AccessAttempt
from django.core.management import call_command
from django.test import RequestFactory

from tests.conftest import api_client_for
from tocsin.lockout import client_ip


def sign_in(client, username, password, **extra):
    return client.post("/admin/login/?next=/admin/",
                       {"username": username, "password": password}, **extra)


def fail_five_times(client, username, **extra):
    for _ in range(4):
        response = sign_in(client, username, "wrong password", **extra)
        assert response.status_code == 200  # the login form again, with its error
    # The fifth failure reaches the limit: from now on the lockout page answers.
    assert sign_in(client, username, "wrong password", **extra).status_code == 429


def test_five_wrong_passwords_lock_the_account_even_against_the_right_one(client, responder):
    fail_five_times(client, "rita")
    response = sign_in(client, "rita", "pw-rita")
    assert response.status_code == 429
    page = response.content.decode()
    assert "Too many failed sign-ins" in page
    assert "axes_reset" in page
    assert "for 15 minutes after the last one" in " ".join(page.split())
    assert 'href="/admin/login/"' in page
    assert "_auth_user_id" not in client.session


def test_four_wrong_passwords_then_the_right_one_signs_in_and_clears_the_count(
    client, responder
):
    for _ in range(4):
        sign_in(client, "rita", "wrong password")
    assert sign_in(client, "rita", "pw-rita").status_code == 302
    assert not AccessAttempt.objects.filter(username="rita").exists()


def test_a_locked_out_username_does_not_lock_out_other_users_at_the_same_address(
    client, responder, manager
):
    fail_five_times(client, "rita")
    response = sign_in(client, "max", "pw-max")
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(manager.pk)


def test_the_lock_holds_for_one_address_only(client, responder):
    fail_five_times(client, "rita", REMOTE_ADDR="203.0.113.9")
    assert sign_in(client, "rita", "pw-rita", REMOTE_ADDR="203.0.113.9").status_code == 429
    assert sign_in(client, "rita", "pw-rita", REMOTE_ADDR="198.51.100.4").status_code == 302


def test_axes_reset_lifts_the_lock(client, responder):
    fail_five_times(client, "rita")
    call_command("axes_reset", verbosity=0)
    assert sign_in(client, "rita", "pw-rita").status_code == 302


def test_api_tokens_keep_working_for_a_locked_out_user(client, responder):
    fail_five_times(client, "rita")
    assert sign_in(client, "rita", "pw-rita").status_code == 429
    assert api_client_for(responder).get("/api/v1/incidents/").status_code == 200


def test_a_locked_out_session_cannot_reach_the_api_either(client, responder):
    fail_five_times(client, "rita")
    sign_in(client, "rita", "pw-rita")
    assert client.get("/api/v1/incidents/").status_code in (401, 403)


@pytest.mark.parametrize(("proxies", "forwarded", "expected"), [
    (0, "198.51.100.7", "10.0.0.2"),            # no proxy: X-Forwarded-For is the client's word
    (1, "198.51.100.7", "198.51.100.7"),        # one proxy appended the client's address
    (1, "6.6.6.6, 198.51.100.7", "198.51.100.7"),  # a forged entry left of it is ignored
    (2, "198.51.100.7, 10.0.0.9", "198.51.100.7"),
    (2, "198.51.100.7", "10.0.0.2"),            # too few entries: not through both proxies
])
def test_the_client_address_comes_from_x_forwarded_for_only_behind_trusted_proxies(
    settings, proxies, forwarded, expected
):
    settings.TOCSIN_PROXY_COUNT = proxies
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=forwarded)
    assert client_ip(request) == expected


def test_the_test_clients_login_still_works_with_the_lockout_on(client, responder, settings):
    assert settings.AXES_ENABLED
    assert client.login(username="rita", password="pw-rita")
    assert not client.login(username="rita", password="wrong password")


def test_a_sign_in_logs_no_info_lines_but_a_failure_is_a_warning(client, responder, caplog):
    caplog.set_level("DEBUG")
    assert sign_in(client, "rita", "pw-rita").status_code == 302
    assert [r for r in caplog.records if r.name.startswith("axes")] == []
    sign_in(client, "rita", "wrong password")
    lines = [r for r in caplog.records if r.name.startswith("axes")]
    assert lines and {r.levelname for r in lines} == {"WARNING"}
