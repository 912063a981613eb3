from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from tocsin.env import database_from_url, env_bool, env_int, env_list


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
