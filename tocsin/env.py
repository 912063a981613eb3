"""Small typed readers for settings that come from the environment.

Only ``tocsin/settings.py`` calls these; the rest of the code reads ``django.conf.settings``.
Each reader fails loudly on a value it cannot understand instead of guessing.
"""

import os
import warnings
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), got {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None


# What a delivery task needs besides its HTTP requests (claiming the row, recording the
# outcome, a busy database): the delivery deadline must leave at least this much of the
# task timeout.
TASK_TIMEOUT_MARGIN_SECONDS = 10


def env_delivery_deadline(name: str, default: int, *, task_timeout: int,
                          task_timeout_name: str = "TOCSIN_TASK_TIMEOUT") -> int:
    """The deadline of one delivery attempt (all its requests together), refused unless it
    ends TASK_TIMEOUT_MARGIN_SECONDS before the worker's task timeout: otherwise the worker
    may kill a send half-way, after a create landed but before its id was stored."""
    seconds = env_int(name, default)
    if seconds < 1:
        raise ImproperlyConfigured(f"{name} must be at least 1 second, got {seconds}")
    longest = task_timeout - TASK_TIMEOUT_MARGIN_SECONDS
    if seconds > longest:
        lower = f"lower it to {longest} or less, or " if longest >= 1 else ""
        raise ImproperlyConfigured(
            f"{name} ({seconds}) must be at least {TASK_TIMEOUT_MARGIN_SECONDS} s below "
            f"{task_timeout_name} ({task_timeout}), or the worker may kill a delivery "
            f"mid-send: {lower}raise {task_timeout_name} (see docs/configuration.md)")
    return seconds


# The key every installation shared before a real one was required; refused without DEBUG.
DEVELOPMENT_SECRET_KEY = "insecure-development-key-set-SECRET_KEY-in-production"
# Django's own `check --deploy` calls shorter or less varied keys weak (security.W009).
SECRET_KEY_MIN_LENGTH = 50
SECRET_KEY_MIN_UNIQUE_CHARACTERS = 5
SECRET_KEY_HOW_TO = (
    "set it to a random value of at least 50 characters, for example the output of "
    "python3 -c 'import secrets; print(secrets.token_urlsafe(50))' (see docs/deployment.md)"
)


def secret_key_weakness(key: str) -> str | None:
    """Why ``key`` must not sign anything in production, or None when it is fit for it."""
    if not key:
        return "is not set"
    if key == DEVELOPMENT_SECRET_KEY:
        return "is the public development key"
    if key.startswith("django-insecure-"):
        return "is a development key (it starts with django-insecure-)"
    if len(key) < SECRET_KEY_MIN_LENGTH:
        return f"is too short ({len(key)} characters, at least {SECRET_KEY_MIN_LENGTH} needed)"
    if len(set(key)) < SECRET_KEY_MIN_UNIQUE_CHARACTERS:
        return f"has fewer than {SECRET_KEY_MIN_UNIQUE_CHARACTERS} different characters"
    return None


def env_secret_key(name: str, *, allow_weak: bool, warn: bool = False) -> str:
    """The signing key from ``name``. Unless ``allow_weak``, a missing or weak key stops the
    process: whoever knows the key can forge sessions and the task queue's signed pickles,
    which the worker unpickles (code execution). With ``allow_weak`` a missing key falls
    back to the public development key (with a warning if ``warn``)."""
    key = os.environ.get(name, "")
    weakness = secret_key_weakness(key)
    if weakness is None:
        return key
    if not allow_weak:
        raise ImproperlyConfigured(f"{name} {weakness}: {SECRET_KEY_HOW_TO}")
    if warn:
        fallback = "" if key else ", the public development key is used"
        warnings.warn(
            f"{name} {weakness}{fallback}: acceptable with DEBUG on only", RuntimeWarning,
            stacklevel=2,
        )
    return key or DEVELOPMENT_SECRET_KEY


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def env_log_level(name: str, default: str) -> str:
    raw = os.environ.get(name, "").strip().upper()
    if not raw:
        return default
    if raw not in LOG_LEVELS:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(LOG_LEVELS)}, got {raw!r}")
    return raw


def database_from_url(url: str, *, base_dir: Path, conn_max_age: int) -> dict:
    """DATABASES["default"] from ``sqlite:///path`` or ``postgres://user:pass@host:port/name``."""
    parts = urlsplit(url)
    options = dict(parse_qsl(parts.query))
    if parts.scheme == "sqlite":
        # sqlite:///relative.db or sqlite:////absolute/path.db
        path = unquote(parts.path[1:] if parts.path.startswith("/") else parts.path)
        return sqlite_database(
            base_dir / path if path else base_dir / "tocsin.sqlite3", conn_max_age
        )
    if parts.scheme in ("postgres", "postgresql", "pgsql"):
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")) or "tocsin",
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            # A new connection per request caps PostgreSQL throughput far below what the
            # views can do, so connections are kept and health-checked before reuse.
            "CONN_MAX_AGE": conn_max_age,
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": options,
        }
    raise ImproperlyConfigured(f"DATABASE_URL scheme {parts.scheme!r} is not supported")


def sqlite_database(path: Path, conn_max_age: int = 600) -> dict:
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(path),
        # Reusing the connection spares re-running the PRAGMAs below on every request.
        "CONN_MAX_AGE": conn_max_age,
        "OPTIONS": {
            # WAL lets readers work during a write, and IMMEDIATE takes the write lock at
            # BEGIN, so the web process and the django-q2 worker wait for each other (up to
            # the timeout) instead of failing with "database is locked" mid-transaction.
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }
