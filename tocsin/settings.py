"""Tocsin settings. Every value comes from the environment, with a safe default."""

from pathlib import Path

from tocsin.env import database_from_url, env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", False)
# Without SECRET_KEY a development key is used; scripts/start writes a random one to .env.
SECRET_KEY = env_str("SECRET_KEY") or "insecure-development-key-set-SECRET_KEY-in-production"
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
TOCSIN_EVENT_RETENTION_DAYS = env_int("TOCSIN_EVENT_RETENTION_DAYS", 7)
TOCSIN_REQUEUE_AFTER_SECONDS = env_int("TOCSIN_REQUEUE_AFTER_SECONDS", 300)
# Posts to the anymail inbound mail webhooks (/anymail/<esp>/inbound/) up to this size are
# read whatever DATA_UPLOAD_MAX_MEMORY_SIZE says; larger ones are answered 413.
TOCSIN_INBOUND_MAIL_MAX_BYTES = env_int("TOCSIN_INBOUND_MAIL_MAX_BYTES", 25 * 1024 * 1024)

# Destinations: per-request timeout, how many attempts a delivery gets (network errors,
# 5xx and 429 are retried with exponential backoff from RETRY_BASE up to RETRY_MAX
# seconds), and after how many failed deliveries in a row a destination is marked failing.
TOCSIN_DELIVERY_TIMEOUT_SECONDS = env_int("TOCSIN_DELIVERY_TIMEOUT_SECONDS", 10)
TOCSIN_DELIVERY_MAX_ATTEMPTS = env_int("TOCSIN_DELIVERY_MAX_ATTEMPTS", 8)
TOCSIN_DELIVERY_RETRY_BASE_SECONDS = env_int("TOCSIN_DELIVERY_RETRY_BASE_SECONDS", 15)
TOCSIN_DELIVERY_RETRY_MAX_SECONDS = env_int("TOCSIN_DELIVERY_RETRY_MAX_SECONDS", 3600)
TOCSIN_DESTINATION_FAILING_AFTER = env_int("TOCSIN_DESTINATION_FAILING_AFTER", 3)
# Ingest views read the body themselves and answer 413 past TOCSIN_MAX_BODY_BYTES.
DATA_UPLOAD_MAX_MEMORY_SIZE = None

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
    "anymail",
    "django_q",
    "incidents",
    "integrations",
    "destinations",
    "notifications",
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
    "timeout": env_int("TOCSIN_TASK_TIMEOUT", 120),
    # retry must exceed timeout, or a slow task is handed to a second worker while running.
    "retry": env_int("TOCSIN_TASK_TIMEOUT", 120) + 60,
    "max_attempts": 3,
    "ack_failures": True,
    "catch_up": False,
    # Keep no successful task results: every inbound event records its own outcome, and
    # with a limit django-q2 reads all kept results after each task to trim them, which
    # halved processing throughput in benchmarks/ingest.py. Failures are still kept.
    "save_limit": -1,
    "poll": 0.2,
    "label": "Task queue",
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
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Tocsin API",
    "DESCRIPTION": "Incident response portal: services, integrations, incidents and alerts.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
