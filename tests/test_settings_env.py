import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from tests.processes import ROOT, base_env
from tocsin.env import (
    DEVELOPMENT_SECRET_KEY,
    database_from_url,
    env_bool,
    env_delivery_deadline,
    env_int,
    env_list,
    env_secret_key,
)

STRONG_KEY = secrets.token_urlsafe(50)
# The production environment docs/deployment.md documents, behind a TLS-terminating proxy.
PRODUCTION_ENV = {
    "SECRET_KEY": STRONG_KEY,
    "ALLOWED_HOSTS": "tocsin.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://tocsin.example.com",
    "TOCSIN_PUBLIC_URL": "https://tocsin.example.com",
    "TOCSIN_TLS": "true",
    "TOCSIN_TLS_PROXY": "true",
}


def test_env_bool_understands_common_words(monkeypatch):
    monkeypatch.setenv("FLAG", "yes")
    assert env_bool("FLAG") is True
    monkeypatch.setenv("FLAG", "off")
    assert env_bool("FLAG", True) is False
    monkeypatch.delenv("FLAG")
    assert env_bool("FLAG", True) is True


def test_env_bool_refuses_nonsense(monkeypatch):
    monkeypatch.setenv("FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="FLAG"):
        env_bool("FLAG")


def test_env_int_and_list(monkeypatch):
    monkeypatch.setenv("N", "12")
    monkeypatch.setenv("HOSTS", "a.example, b.example,,")
    assert env_int("N", 1) == 12
    assert env_list("HOSTS", []) == ["a.example", "b.example"]
    monkeypatch.setenv("N", "twelve")
    with pytest.raises(ImproperlyConfigured, match="N must be an integer"):
        env_int("N", 1)


def test_sqlite_url_uses_wal_and_immediate_transactions():
    db = database_from_url("sqlite:///data/x.sqlite3", base_dir=Path("/srv"), conn_max_age=0)
    assert db["ENGINE"] == "django.db.backends.sqlite3"
    assert db["NAME"] == "/srv/data/x.sqlite3"
    assert db["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert "journal_mode=WAL" in db["OPTIONS"]["init_command"]
    assert db["OPTIONS"]["timeout"] > 0


def test_absolute_sqlite_path():
    db = database_from_url("sqlite:////var/lib/tocsin.db", base_dir=Path("/srv"), conn_max_age=0)
    assert db["NAME"] == "/var/lib/tocsin.db"


def test_postgres_url_keeps_connections():
    db = database_from_url(
        "postgres://tocsin:s%40cret@db.internal:5433/tocsin?sslmode=require",
        base_dir=Path("/srv"), conn_max_age=600,
    )
    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert (db["USER"], db["PASSWORD"], db["HOST"], db["PORT"], db["NAME"]) == (
        "tocsin", "s@cret", "db.internal", "5433", "tocsin"
    )
    assert db["CONN_MAX_AGE"] == 600
    assert db["OPTIONS"] == {"sslmode": "require"}


def test_unknown_database_scheme_is_refused():
    with pytest.raises(ImproperlyConfigured, match="mysql"):
        database_from_url("mysql://x/y", base_dir=Path("/srv"), conn_max_age=0)


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    """manage.py in a fresh process, so the settings are read from ``env`` alone."""
    env = {"DEBUG": None, **env}
    env = base_env(DATABASE_URL="sqlite:///:memory:", **env)
    env = {key: value for key, value in env.items() if value is not None}
    return subprocess.run(
        [sys.executable, "manage.py", *args], env=env, cwd=ROOT, capture_output=True,
        text=True, timeout=120,
    )


def last_line(output: str) -> str:
    return output.strip().splitlines()[-1]


def test_a_strong_secret_key_is_used_as_given(monkeypatch):
    monkeypatch.setenv("SECRET_KEY", STRONG_KEY)
    assert env_secret_key("SECRET_KEY", allow_weak=False) == STRONG_KEY


@pytest.mark.parametrize(("key", "reason"), [
    (None, "is not set"),
    ("", "is not set"),
    (DEVELOPMENT_SECRET_KEY, "is the public development key"),
    ("django-insecure-" + STRONG_KEY, "starts with django-insecure-"),
    ("s3cr3t-but-short-0123456789", "is too short (27 characters, at least 50 needed)"),
    ("ab" * 40, "fewer than 5 different characters"),
])
def test_without_debug_a_missing_or_weak_secret_key_is_refused(monkeypatch, key, reason):
    if key is None:
        monkeypatch.delenv("SECRET_KEY", raising=False)
    else:
        monkeypatch.setenv("SECRET_KEY", key)
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY .*token_urlsafe") as refused:
        env_secret_key("SECRET_KEY", allow_weak=False)
    assert reason in str(refused.value)
    assert "\n" not in str(refused.value)
    if key:
        assert key not in str(refused.value)


def test_with_debug_a_missing_secret_key_falls_back_to_the_development_key(monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.warns(RuntimeWarning, match="SECRET_KEY is not set, the public development"):
        assert env_secret_key("SECRET_KEY", allow_weak=True, warn=True) == DEVELOPMENT_SECRET_KEY
    monkeypatch.setenv("SECRET_KEY", "short")
    with pytest.warns(RuntimeWarning, match="SECRET_KEY is too short"):
        assert env_secret_key("SECRET_KEY", allow_weak=True, warn=True) == "short"


def test_a_process_without_debug_and_without_a_key_refuses_to_start():
    refused = manage("check", SECRET_KEY=None)
    assert refused.returncode != 0
    assert last_line(refused.stderr) == (
        "django.core.exceptions.ImproperlyConfigured: SECRET_KEY is not set: set it to a "
        "random value of at least 50 characters, for example the output of python3 -c "
        "'import secrets; print(secrets.token_urlsafe(50))' (see docs/deployment.md)"
    )


def test_a_process_without_debug_refuses_the_old_public_development_key():
    refused = manage("check", SECRET_KEY=DEVELOPMENT_SECRET_KEY)
    assert refused.returncode != 0
    assert "SECRET_KEY is the public development key" in last_line(refused.stderr)


def test_a_process_with_debug_starts_on_the_development_key_and_says_so():
    started = manage("check", SECRET_KEY=None, DEBUG="true")
    assert started.returncode == 0, started.stderr
    assert (
        "SECRET_KEY is not set, the public development key is used: acceptable with DEBUG on only"
    ) in started.stderr


def test_the_documented_production_settings_pass_check_deploy():
    checked = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION_ENV)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "no issues" in checked.stdout


def test_check_deploy_warns_about_plain_http_settings():
    checked = manage("check", "--deploy", "--fail-level", "WARNING", SECRET_KEY=STRONG_KEY)
    assert checked.returncode != 0
    for warning in ("W004", "W008", "W012", "W016"):
        assert f"security.{warning}" in checked.stderr


def show_settings(*names: str, **env: str) -> list[str]:
    code = "from django.conf import settings; " + "; ".join(
        f"print(repr(settings.{name}))" for name in names
    )
    shown = manage("shell", "-v0", "-c", code, **env)
    assert shown.returncode == 0, shown.stderr
    return shown.stdout.splitlines()


def test_behind_a_tls_proxy_cookies_are_secure_and_https_is_enforced():
    assert show_settings(
        "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_SSL_REDIRECT",
        "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_PROXY_SSL_HEADER",
        **PRODUCTION_ENV,
    ) == ["True", "True", "True", "31536000", "True", "('HTTP_X_FORWARDED_PROTO', 'https')"]


def test_the_plain_http_default_keeps_cookies_usable_on_localhost():
    assert show_settings(
        "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_SSL_REDIRECT",
        "SECURE_HSTS_SECONDS", "SECURE_PROXY_SSL_HEADER", SECRET_KEY=STRONG_KEY,
    ) == ["False", "False", "False", "0", "None"]


def test_hsts_can_be_shortened_while_trying_tls_out():
    assert show_settings(
        "SECURE_HSTS_SECONDS", **{**PRODUCTION_ENV, "SECURE_HSTS_SECONDS": "300"}
    ) == ["300"]


def test_a_delivery_deadline_10_s_below_the_task_timeout_is_accepted(monkeypatch):
    monkeypatch.setenv("TOCSIN_DELIVERY_DEADLINE_SECONDS", "110")
    assert env_delivery_deadline("TOCSIN_DELIVERY_DEADLINE_SECONDS", 30, task_timeout=120) == 110
    monkeypatch.delenv("TOCSIN_DELIVERY_DEADLINE_SECONDS")
    assert env_delivery_deadline("TOCSIN_DELIVERY_DEADLINE_SECONDS", 30, task_timeout=120) == 30


@pytest.mark.parametrize(("deadline", "task_timeout", "reason"), [
    ("111", 120, "must be at least 10 s below TOCSIN_TASK_TIMEOUT (120)"),
    ("120", 120, "lower it to 110 or less, or raise TOCSIN_TASK_TIMEOUT"),
    ("5", 10, "mid-send: raise TOCSIN_TASK_TIMEOUT"),
    ("0", 120, "must be at least 1 second, got 0"),
])
def test_a_delivery_deadline_the_task_timeout_could_cut_short_is_refused(
    monkeypatch, deadline, task_timeout, reason
):
    monkeypatch.setenv("TOCSIN_DELIVERY_DEADLINE_SECONDS", deadline)
    with pytest.raises(ImproperlyConfigured, match="TOCSIN_DELIVERY_DEADLINE_SECONDS") as refused:
        env_delivery_deadline("TOCSIN_DELIVERY_DEADLINE_SECONDS", 30, task_timeout=task_timeout)
    assert reason in str(refused.value)
    assert "\n" not in str(refused.value)


def test_a_process_refuses_a_delivery_deadline_as_long_as_the_task_timeout():
    refused = manage("check", SECRET_KEY=STRONG_KEY, TOCSIN_DELIVERY_DEADLINE_SECONDS="120",
                     TOCSIN_TASK_TIMEOUT="120")
    assert refused.returncode != 0
    assert last_line(refused.stderr) == (
        "django.core.exceptions.ImproperlyConfigured: TOCSIN_DELIVERY_DEADLINE_SECONDS (120) "
        "must be at least 10 s below TOCSIN_TASK_TIMEOUT (120), or the worker may kill a "
        "delivery mid-send: lower it to 110 or less, or raise TOCSIN_TASK_TIMEOUT "
        "(see docs/configuration.md)"
    )


def test_a_longer_delivery_deadline_is_accepted_with_a_longer_task_timeout():
    assert show_settings(
        "TOCSIN_DELIVERY_DEADLINE_SECONDS", "Q_CLUSTER['timeout']", "Q_CLUSTER['retry']",
        SECRET_KEY=STRONG_KEY, TOCSIN_DELIVERY_DEADLINE_SECONDS="120", TOCSIN_TASK_TIMEOUT="180",
    ) == ["120", "180", "240"]


def test_an_event_retention_below_one_day_is_raised_to_one_day():
    # With 0 the hourly prune would delete a trace id its sender has just been given.
    assert show_settings("TOCSIN_EVENT_RETENTION_DAYS", SECRET_KEY=STRONG_KEY,
                         TOCSIN_EVENT_RETENTION_DAYS="0") == ["1"]
