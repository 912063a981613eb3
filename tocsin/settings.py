"""Tocsin settings. Every value comes from the environment, with a safe default."""

import sys
from datetime import timedelta
from pathlib import Path

from tocsin.env import (
    database_from_url,
    env_bool,
    env_delivery_deadline,
    env_int,
    env_list,
    env_log_level,
    env_secret_key,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", False)
# pytest-django loads these settings inside the test run itself, with DEBUG off as in
# production. Only there (gunicorn and qcluster never import it) may the key be missing;
# the processes tests start get a real one (tests/processes.py).
TESTING = "pytest_django" in sys.modules
# Anyone who knows the key can forge sessions and the task queue's signed pickles, which the
# worker unpickles, so with DEBUG off a missing or weak key stops the process. scripts/start
# writes a random key to .env; the container keeps one in its data volume.
SECRET_KEY = env_secret_key("SECRET_KEY", allow_weak=DEBUG or TESTING, warn=DEBUG)

# TOCSIN_TLS: the portal is reached over HTTPS (TLS ended by gunicorn or by a proxy in
# front). Cookies then only travel over TLS, plain HTTP is redirected and browsers are told
# to use HTTPS only (HSTS). Off by default, so scripts/start works on http://127.0.0.1:8000.
TOCSIN_TLS = env_bool("TOCSIN_TLS", False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = SECURE_SSL_REDIRECT = TOCSIN_TLS
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 24 * 3600 if TOCSIN_TLS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", TOCSIN_TLS)
# Preloading asks browser vendors to hard-code HTTPS for the whole registered domain: the
# operator's call, not this app's, so it stays off and check --deploy is not told otherwise.
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SILENCED_SYSTEM_CHECKS = ["security.W021"]
# Load balancers and container health checks probe over plain HTTP inside the network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
# A proxy that ends TLS says so in X-Forwarded-Proto. Trusted only when asked for: the proxy
# must set (overwrite) the header, or any client could claim HTTPS.
if env_bool("TOCSIN_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Django's defaults, stated because the admin must never be framed (clickjacking).
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

TOCSIN_PUBLIC_URL = env_str("TOCSIN_PUBLIC_URL", "http://localhost:8000").rstrip("/")
TOCSIN_INBOUND_EMAIL_DOMAIN = env_str("TOCSIN_INBOUND_EMAIL_DOMAIN", "alerts.localhost")
TOCSIN_ALLOW_PRIVATE_DESTINATIONS = env_bool("TOCSIN_ALLOW_PRIVATE_DESTINATIONS", False)

# Ingest: body size limit, default per-integration rate limit, how long inbound events
# (and so trace ids) are kept, and when a still-queued event is handed to the queue again.
TOCSIN_MAX_BODY_BYTES = env_int("TOCSIN_MAX_BODY_BYTES", 1024 * 1024)
# The incoming webhook parses json() parameters only from bodies up to PARSE_BYTES (larger
# ones fall back to defaults) and refuses bodies over MAX_BODY_BYTES with 413.
TOCSIN_INCOMING_WEBHOOK_PARSE_BYTES = env_int("TOCSIN_INCOMING_WEBHOOK_PARSE_BYTES", 1024 * 1024)
TOCSIN_INCOMING_WEBHOOK_MAX_BODY_BYTES = env_int(
    "TOCSIN_INCOMING_WEBHOOK_MAX_BODY_BYTES", 5 * 1024 * 1024
)
TOCSIN_DEFAULT_RATE_LIMIT_PER_MINUTE = env_int("TOCSIN_DEFAULT_RATE_LIMIT_PER_MINUTE", 600)
# At least a day: with 0 the hourly prune would delete trace ids a sender just received.
TOCSIN_EVENT_RETENTION_DAYS = max(1, env_int("TOCSIN_EVENT_RETENTION_DAYS", 7))
TOCSIN_REQUEUE_AFTER_SECONDS = env_int("TOCSIN_REQUEUE_AFTER_SECONDS", 300)
# Mapping and alert rules: the longest `matches` regex accepted (RE2 runs it in linear
# time; the cap bounds what one condition may cost), and the largest payload the preview
# takes, since it runs the saved regexes in the web process for anyone who may view.
TOCSIN_MAX_REGEX_LENGTH = env_int("TOCSIN_MAX_REGEX_LENGTH", 1000)
TOCSIN_PREVIEW_MAX_PAYLOAD_BYTES = env_int("TOCSIN_PREVIEW_MAX_PAYLOAD_BYTES", 256 * 1024)
# Attempts at processing one inbound event (a timed-out one counts) before it is failed
# with its last error; reprocessing it from the admin or API gives it a fresh budget.
TOCSIN_EVENT_MAX_ATTEMPTS = max(1, env_int("TOCSIN_EVENT_MAX_ATTEMPTS", 5))
# Posts to the anymail inbound mail webhooks (/anymail/<esp>/inbound/) up to this size are
# read whatever DATA_UPLOAD_MAX_MEMORY_SIZE says; larger ones are answered 413.
TOCSIN_INBOUND_MAIL_MAX_BYTES = env_int("TOCSIN_INBOUND_MAIL_MAX_BYTES", 25 * 1024 * 1024)

# Destinations: per-request timeout, how many attempts a delivery gets (network errors,
# 5xx and 429 are retried with exponential backoff from RETRY_BASE up to RETRY_MAX
# seconds), and after how many failed deliveries in a row a destination is marked failing.
TOCSIN_DELIVERY_TIMEOUT_SECONDS = env_int("TOCSIN_DELIVERY_TIMEOUT_SECONDS", 10)
# Seconds a queue task may run before the cluster kills it (Q_CLUSTER below).
TOCSIN_TASK_TIMEOUT = env_int("TOCSIN_TASK_TIMEOUT", 120)
# One delivery attempt (DNS, connect, the full response of every redirect hop, of all its
# requests together) never takes longer. Refused unless comfortably below the task
# timeout, which would otherwise kill a send half-way.
TOCSIN_DELIVERY_DEADLINE_SECONDS = env_delivery_deadline(
    "TOCSIN_DELIVERY_DEADLINE_SECONDS", 30, task_timeout=TOCSIN_TASK_TIMEOUT)
TOCSIN_DELIVERY_MAX_ATTEMPTS = env_int("TOCSIN_DELIVERY_MAX_ATTEMPTS", 8)
TOCSIN_DELIVERY_RETRY_BASE_SECONDS = env_int("TOCSIN_DELIVERY_RETRY_BASE_SECONDS", 15)
TOCSIN_DELIVERY_RETRY_MAX_SECONDS = env_int("TOCSIN_DELIVERY_RETRY_MAX_SECONDS", 3600)
TOCSIN_DESTINATION_FAILING_AFTER = env_int("TOCSIN_DESTINATION_FAILING_AFTER", 3)
# Request bodies (docs/security.md). The ingest views read the raw body themselves with
# their own limits above (request.read() is not subject to these); every other endpoint --
# admin forms, the login page, the REST API (tocsin.parsers) -- is held to Django's
# defaults, so an anonymous POST cannot pull an arbitrary body into memory.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("TOCSIN_MAX_FORM_BYTES", 2621440)
DATA_UPLOAD_MAX_NUMBER_FIELDS = env_int("TOCSIN_MAX_FORM_FIELDS", 1000)
DATA_UPLOAD_MAX_NUMBER_FILES = 100
FILE_UPLOAD_HANDLERS = [
    "tocsin.parsers.BoundedUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]

# Admin login lockout with django-axes (docs/security.md). Failures are counted per
# username *and* client address together: one address guessing one account is stopped,
# but nobody can lock everyone out from a single address. The database handler shares
# the counts between every web process and host.
AXES_ENABLED = env_bool("TOCSIN_LOGIN_LOCKOUT", True)
AXES_FAILURE_LIMIT = env_int("TOCSIN_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("TOCSIN_LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_LOCKOUT_TEMPLATE = "tocsin/lockout.html"
AXES_HTTP_RESPONSE_CODE = 429
# No "AXES: BEGIN …" banner at the start of every process and management command; failed
# sign-ins and lockouts are still logged.
AXES_VERBOSE = False
# Behind reverse proxies REMOTE_ADDR is the nearest proxy; TOCSIN_PROXY_COUNT says how many
# trusted proxies append to X-Forwarded-For, so the client address is read from it instead.
TOCSIN_PROXY_COUNT = env_int("TOCSIN_PROXY_COUNT", 0)
AXES_CLIENT_IP_CALLABLE = "tocsin.lockout.client_ip"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "axes",
    "anymail",
    "django_q",
    "tocsin",
    "incidents",
    "integrations",
    "destinations",
    "notifications",
    "oncall",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "tocsin.actor.CurrentRequestMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes requires: it turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    # First, so a locked-out username/address pair is refused before its password is checked.
    "tocsin.lockout.LockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "tocsin.urls"
WSGI_APPLICATION = "tocsin.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": database_from_url(
        env_str("DATABASE_URL", "sqlite:///tocsin.sqlite3"),
        base_dir=BASE_DIR,
        conn_max_age=env_int("CONN_MAX_AGE", 600),
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOG_LEVEL = env_log_level("LOG_LEVEL", "INFO")
# django-q2 logs every enqueued and finished task at INFO -- a line or two per alert. Its
# logger is held at WARNING (or LOG_LEVEL, when stricter); TOCSIN_QUEUE_LOG_LEVEL=INFO
# brings those lines back.
QUIET_LOG_LEVEL = LOG_LEVEL if LOG_LEVEL in ("ERROR", "CRITICAL") else "WARNING"
QUEUE_LOG_LEVEL = env_log_level("TOCSIN_QUEUE_LOG_LEVEL", QUIET_LOG_LEVEL)

REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
else:
    # Rate limits and similar counters must be shared by every gunicorn worker and host,
    # so the fallback is the database cache, never process-local memory.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "tocsin_cache",
        }
    }

Q_CLUSTER = {
    "name": "tocsin",
    "workers": env_int("TOCSIN_WORKERS", 2),
    "timeout": TOCSIN_TASK_TIMEOUT,
    # retry must exceed timeout, or a slow task is handed to a second worker while running.
    "retry": TOCSIN_TASK_TIMEOUT + 60,
    "max_attempts": 3,
    "ack_failures": True,
    "catch_up": False,
    # Keep no successful task results: every inbound event records its own outcome, and
    # with a limit django-q2 reads all kept results after each task to trim them, which
    # halved processing throughput in benchmarks/ingest.py. Failures are still kept.
    "save_limit": -1,
    "poll": 0.2,
    "label": "Task queue",
    "log_level": QUEUE_LOG_LEVEL,
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
if DEBUG:
    STORAGES["staticfiles"] = {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
    }

EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
# Without a timeout a stuck mail server would hold a worker (and a delivery's claim) forever.
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 30)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "tocsin@localhost")
# Stakeholder messages name their own recipients, so they are bounded (docs/notifications.md):
# addresses per alert, and the only domains plain addresses may be in (portal users and
# teams are always allowed; empty = no plain addresses).
TOCSIN_STAKEHOLDER_MAX_RECIPIENTS = env_int("TOCSIN_STAKEHOLDER_MAX_RECIPIENTS", 50)
TOCSIN_STAKEHOLDER_EMAIL_DOMAINS = env_list("TOCSIN_STAKEHOLDER_EMAIL_DOMAINS", [])

# Paging people (docs/on-call.md). SMS and voice calls go through Twilio's REST API; the
# API address is a setting (an operator's choice, not a user's), so it is not subject to
# the private-address guard, and tests point it at a local server.
TOCSIN_TWILIO_ACCOUNT_SID = env_str("TOCSIN_TWILIO_ACCOUNT_SID")
TOCSIN_TWILIO_AUTH_TOKEN = env_str("TOCSIN_TWILIO_AUTH_TOKEN")
TOCSIN_TWILIO_FROM = env_str("TOCSIN_TWILIO_FROM")
TOCSIN_TWILIO_API_URL = env_str("TOCSIN_TWILIO_API_URL", "https://api.twilio.com").rstrip("/")
# How long before a shift starts its user is told (a handoff notice).
TOCSIN_HANDOFF_NOTICE_MINUTES = env_int("TOCSIN_HANDOFF_NOTICE_MINUTES", 15)

ANYMAIL = {
    # Each ESP setting is read under its anymail name with an ANYMAIL_ prefix. The inbound
    # webhooks of the other ESPs need the secrets and keys from MAILERSEND_ on to check
    # signatures or fetch attachments (docs/email-integration.md).
    key: env_str(f"ANYMAIL_{key}")
    for key in (
        "WEBHOOK_SECRET",
        "MAILGUN_API_KEY",
        "MAILGUN_WEBHOOK_SIGNING_KEY",
        "POSTMARK_SERVER_TOKEN",
        "SENDGRID_API_KEY",
        "MAILERSEND_INBOUND_SECRET",
        "MAILTRAP_API_TOKEN",
        "MAILTRAP_INBOUND_SECRET",
        "MANDRILL_WEBHOOK_KEY",
        "MANDRILL_WEBHOOK_URL",
        "POSTAL_WEBHOOK_KEY",
        "RESEND_API_KEY",
        "RESEND_INBOUND_SECRET",
        "BREVO_API_KEY",
    )
    if env_str(f"ANYMAIL_{key}")
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["tocsin.permissions.GroupModelPermissions"],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "tocsin.apikit.StableOrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "tocsin.apikit.exception_handler",
    # DRF reads bodies as a stream, past DATA_UPLOAD_MAX_MEMORY_SIZE: these parsers apply it.
    "DEFAULT_PARSER_CLASSES": [
        "tocsin.parsers.BoundedJSONParser",
        "tocsin.parsers.BoundedFormParser",
        "tocsin.parsers.BoundedMultiPartParser",
    ],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Tocsin API",
    "DESCRIPTION": "Incident response portal: services, integrations, incidents and alerts.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Choice sets used by several resources get one name each. The outbox statuses keep the
    # name they had when deliveries were the only outbox, so generated clients keep theirs.
    "ENUM_NAME_OVERRIDES": {
        "ContactMethodKindEnum": "oncall.models.ContactMethod.Kind",
        "DeliveryStatusEnum": "tocsin.outbox.OutboxItem.Status",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    # Propagated records are filtered by their own logger's level, not the root's.
    # django-axes writes four INFO lines per successful sign-in; its failures and lockouts
    # are WARNINGs and still show.
    "loggers": {"django-q": {"level": QUEUE_LOG_LEVEL}, "axes": {"level": QUIET_LOG_LEVEL}},
}
