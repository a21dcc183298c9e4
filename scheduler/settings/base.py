"""Settings shared by every environment, read from the environment with django-environ.

Without DATABASE_URL the project runs on SQLite; without REDIS_URL Celery uses kombu's
filesystem transport, so `make run` needs nothing but Python.
"""

from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from scheduler.errors import error_tracking_start
from scheduler.metric_files import metric_files_start

BASE_DIR = Path(__file__).resolve().parent.parent.parent
env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

SECRET_KEY = env("DJANGO_SECRET_KEY")
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1"])
PUBLIC_BASE_URL = env("PUBLIC_BASE_URL", default="http://localhost:8000")
# Reverse proxies in front of the app that append to X-Forwarded-For (0: none, REMOTE_ADDR is the
# client). Rate limits count per client address, so behind a proxy this must be right.
TRUSTED_PROXY_HOPS = env.int("TRUSTED_PROXY_HOPS", default=0)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # Its lookups (unaccent, for accent-insensitive patient search) on PostgreSQL; idle on SQLite.
    "django.contrib.postgres",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "django_celery_beat",
    "django_prometheus",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "sessions.apps.BookingConfig",
    "notifications.apps.NotificationsConfig",
]

MIDDLEWARE = [
    # django-prometheus' pair: first and (but for axes) last, so /metrics times the whole request.
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "scheduler.proxy.ClientAddressMiddleware",
    "scheduler.logs.RequestLogMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Tells the audit trail who is writing and through which surface (sessions/audit.py).
    "sessions.audit.AuditChannelMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "scheduler.staff.middleware.SecondFactorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Outside axes, so a sign-in it refused is counted with the status the client got.
    "django_prometheus.middleware.PrometheusAfterMiddleware",
    # Last, as django-axes asks: it turns a sign-in it refused into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "scheduler.urls"
WSGI_APPLICATION = "scheduler.wsgi.application"

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
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat share one SQLite file in development: wait for the lock instead of
    # failing at once, and take it at BEGIN so a read never has to upgrade mid-transaction.
    DATABASES["default"]["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    DATABASES["default"]["CONN_MAX_AGE"] = 0
else:
    # Server-side parameters let PostgreSQL keep a plan per statement and connection: a query
    # run a few times is prepared once instead of planned on every call (a patient link's
    # six-table lookup spent more time in the planner than running). Behind a pooler in
    # transaction mode, set DB_PREPARE_THRESHOLD=0 unless it keeps prepared statements
    # (PgBouncer >= 1.21 with max_prepared_statements).
    _prepare = env.int("DB_PREPARE_THRESHOLD", default=5)
    # Added to what DATABASE_URL's query string set (sslmode, connect_timeout…), which wins.
    DATABASES["default"]["OPTIONS"] = {
        "server_side_binding": True,
        "prepare_threshold": _prepare or None,
        **DATABASES["default"].get("OPTIONS", {}),
    }
# The same engine inside django-prometheus' wrapper, which counts queries, their time and errors
# for /metrics.
DATABASES["default"]["ENGINE"] = {
    "django.db.backends.postgresql": "django_prometheus.db.backends.postgresql",
    "django.db.backends.sqlite3": "django_prometheus.db.backends.sqlite3",
}.get(DATABASES["default"]["ENGINE"], DATABASES["default"]["ENGINE"])

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("es", "Español")]
# Every word a patient reads (texts, emails, the link page) in each language; staff pages are English.
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

REDIS_URL = env("REDIS_URL", default="")
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    # A broker that needs no server: the worker and beat pass messages through folders.
    _broker_dir = Path(env("CELERY_FILESYSTEM_BROKER_DIR", default=str(BASE_DIR / ".broker")))
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        # Without it kombu keeps its exchange bindings in ./control, wherever the process started.
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
    # kombu does not create these: a worker polling a missing folder crashes, and a producer
    # (the web, beat) would fail to publish before the worker has ever run.
    for _folder in ("queue", "processed", "control"):
        (_broker_dir / _folder).mkdir(parents=True, exist_ok=True)
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Celery's Django fix-up otherwise closes the database connection around every task: a new
# PostgreSQL connection per text was the largest cost of sending (see docs/benchmarks.md).
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=1000)
# Rather than hold a Redis connection through a long run of sends, prefetch few: a killed worker
# then strands little, and the tick's lease hands what it stranded to another worker.
CELERY_WORKER_PREFETCH_MULTIPLIER = 4
# No task may hang a worker process: a send waits at most TWILIO_TIMEOUT_SECONDS or EMAIL_TIMEOUT
# on its provider, and a tick asks Twilio's log about at most REMINDER_RECONCILE_BATCH rows. The
# soft limit raises inside the task; the hard one kills the process. A send cut off either way
# stays `sending` and is checked against Twilio's log once its lease ends, never resent blindly.
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=90)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=120)

# Reminders. The tick is the only periodic task; django-celery-beat's scheduler installs it.
REMINDER_TICK_SECONDS = env.float("REMINDER_TICK_SECONDS", default=60)
REMINDER_TICK_BATCH = env.int("REMINDER_TICK_BATCH", default=1000)
# Stuck sends asked about per tick, and for how long at most: each question may wait
# TWILIO_TIMEOUT_SECONDS on Twilio's log, and the claim after them must not wait long. Rows not
# reached are asked about once their new lease ends.
REMINDER_RECONCILE_BATCH = env.int("REMINDER_RECONCILE_BATCH", default=50)
REMINDER_RECONCILE_SECONDS = env.float("REMINDER_RECONCILE_SECONDS", default=30)
REMINDER_KICK_ON_BOOKING = env.bool("REMINDER_KICK_ON_BOOKING", default=True)
CELERY_BEAT_SCHEDULE = {
    "reminder-tick": {
        "task": "notifications.tasks.reminder_tick",
        "schedule": REMINDER_TICK_SECONDS,
        # A tick that waited in the queue longer than a tick is stale: the next one does its work.
        "options": {"expires": REMINDER_TICK_SECONDS},
    },
}
MESSAGE_CLAIM_LEASE_SECONDS = env.float("MESSAGE_CLAIM_LEASE_SECONDS", default=300)
MESSAGE_SEND_LEASE_SECONDS = env.float("MESSAGE_SEND_LEASE_SECONDS", default=120)
MESSAGE_RETRY_BASE_SECONDS = env.float("MESSAGE_RETRY_BASE_SECONDS", default=30)
MESSAGE_RETRY_MAX_SECONDS = env.float("MESSAGE_RETRY_MAX_SECONDS", default=900)
SMS_DAILY_CAP = env.int("SMS_DAILY_CAP", default=1)
SMS_WEEKLY_CAP = env.int("SMS_WEEKLY_CAP", default=3)

# Twilio. Without an account SID and token, texts go to the outbox that staff read.
TWILIO_ACCOUNT_SID = env("TWILIO_ACCOUNT_SID", default="")
TWILIO_AUTH_TOKEN = env("TWILIO_AUTH_TOKEN", default="")
TWILIO_FROM_NUMBER = env("TWILIO_FROM_NUMBER", default="")
TWILIO_MESSAGING_SERVICE_SID = env("TWILIO_MESSAGING_SERVICE_SID", default="")
TWILIO_API_BASE_URL = env("TWILIO_API_BASE_URL", default="")
TWILIO_TIMEOUT_SECONDS = env.float("TWILIO_TIMEOUT_SECONDS", default=10)

# Email: EMAIL_URL such as smtp+tls://user:pass@host:587; printed to the console when unset.
_email = env.email_url("EMAIL_URL", default="consolemail://")
EMAIL_BACKEND = _email["EMAIL_BACKEND"]
EMAIL_HOST = _email.get("EMAIL_HOST") or "localhost"
EMAIL_PORT = _email.get("EMAIL_PORT") or 25
EMAIL_HOST_USER = _email.get("EMAIL_HOST_USER") or ""
EMAIL_HOST_PASSWORD = _email.get("EMAIL_HOST_PASSWORD") or ""
EMAIL_USE_TLS = _email.get("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = _email.get("EMAIL_USE_SSL", False)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="reminders@localhost")
EMAIL_MESSAGE_ID_DOMAIN = env("EMAIL_MESSAGE_ID_DOMAIN", default="scheduler.local")
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=15)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.DjangoModelPermissions"],
    # The API speaks JSON. A form cannot carry a clinic's opening hours (lists of rows): a form
    # PATCH dropped them without a word, and a malformed multipart body read as "change nothing".
    # JSON refusing 1e400 and runaway nesting with a 400 (sessions/parsers.py).
    "DEFAULT_PARSER_CLASSES": ["sessions.parsers.ApiJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "sessions.pagination.Pages",
    "PAGE_SIZE": 100,
    "EXCEPTION_HANDLER": "sessions.api_errors.exception_handler",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Infusion session scheduling API",
    "DESCRIPTION": "Book and manage a patient's series of sessions. Times are ISO 8601; a time "
    "without an offset is the clinic's wall-clock time.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Two choice sets are called "channel": without distinct names one overwrote the other.
    "ENUM_NAME_OVERRIDES": {
        "SessionChannelEnum": "sessions.models.Session.Channel",
        "MessageChannelEnum": "notifications.models.Channel",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "sessions.api_schema.document_error_responses",
    ],
}

# Applied by scheduler.logs, which first makes every log record of the process, whatever its
# logger and handler, without patient link tokens and patient searches.
LOGGING_CONFIG = "scheduler.logs.logging_configure"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # key=value lines after a fixed prefix: easy to grep, and to parse into a log store.
    "formatters": {"plain": {"format": "%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    # The library logs every request's URL and headers at INFO: noise, and phone numbers.
    "loggers": {"twilio": {"level": "WARNING"}},
}

# Error tracking (scheduler/errors.py): off unless SENTRY_DSN is set, and no patient data in what
# it sends. Started here because every process loads the settings first: web, worker, beat and
# manage.py alike.
SENTRY_DSN = env("SENTRY_DSN", default="")
SENTRY_ENVIRONMENT = env("SENTRY_ENVIRONMENT", default="production")
SENTRY_RELEASE = env("SENTRY_RELEASE", default="")
# The share of requests and tasks traced for performance; 0 traces none.
SENTRY_TRACES_SAMPLE_RATE = env.float("SENTRY_TRACES_SAMPLE_RATE", default=0.0)
error_tracking_start(
    dsn=SENTRY_DSN,
    environment=SENTRY_ENVIRONMENT,
    release=SENTRY_RELEASE,
    traces_sample_rate=SENTRY_TRACES_SAMPLE_RATE,
)

# Metrics at /metrics (scheduler/metrics.py), for whoever runs the service: with METRICS_TOKEN set
# they answer only `Authorization: Bearer <token>`; without it production answers 404, and
# development (METRICS_LOOPBACK_OPEN) answers this machine only.
METRICS_TOKEN = env("METRICS_TOKEN", default="")
METRICS_LOOPBACK_OPEN = False
# A folder every process of the service writes its counters to, summed by /metrics (gunicorn's
# workers, Celery's, beat): shared by web, worker and beat, and emptied when they all restart.
# Unset: each process counts in memory, and /metrics shows the web process's own counts only.
PROMETHEUS_MULTIPROC_DIR = env("PROMETHEUS_MULTIPROC_DIR", default="")
# Buckets of django-prometheus' request and query histograms, in seconds: a query takes about a
# millisecond and the patient link page a few, below its default's first bucket (10 ms).
PROMETHEUS_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, float("inf"))
# Here because every process loads the settings before it creates its first metric.
metric_files_start(folder=PROMETHEUS_MULTIPROC_DIR)

# Patient links /r/<token>: fixed windows counted in REDIS_URL's Redis (in memory without it).
# Counted per REMOTE_ADDR: behind a reverse proxy, REMOTE_ADDR must be set to the client's address,
# or every patient shares the proxy's budget.
LINK_RATE_WINDOW_SECONDS = env.int("LINK_RATE_WINDOW_SECONDS", default=60)
LINK_RATE_PER_IP = env.int("LINK_RATE_PER_IP", default=120)
LINK_RATE_BAD_TOKENS_PER_IP = env.int("LINK_RATE_BAD_TOKENS_PER_IP", default=30)
LINK_RATE_POSTS_PER_TOKEN = env.int("LINK_RATE_POSTS_PER_TOKEN", default=30)

# The waitlist's order when chair time frees up (sessions/waitlist.py): "needed_by", the nearest
# deadline first, then "waited", the longest waiting first; a clinic that ranks by time waited
# alone sets WAITLIST_RANKING=waited.
WAITLIST_RANKING = env.list("WAITLIST_RANKING", default=["needed_by", "waited"])
if not WAITLIST_RANKING or not set(WAITLIST_RANKING) <= {"needed_by", "waited"}:
    raise ImproperlyConfigured("WAITLIST_RANKING: a comma-separated list of needed_by and waited.")
# Booster recall (sessions/recalls.py): staff see recalls due within RECALL_SOON_DAYS, and call
# one not booked RECALL_OVERDUE_DAYS after it fell due overdue.
RECALL_SOON_DAYS = env.int("RECALL_SOON_DAYS", default=14)
RECALL_OVERDUE_DAYS = env.int("RECALL_OVERDUE_DAYS", default=14)
# Offers of freed chair time (notifications/offers.py): how many waiting patients the tick offers
# one time to at once (the first to book it gets it), how long an offer stands (never past the
# visit's minimum notice), and how often a time nobody fitted is looked at again.
WAITLIST_OFFER_BATCH = env.int("WAITLIST_OFFER_BATCH", default=1)
WAITLIST_OFFER_MINUTES = env.int("WAITLIST_OFFER_MINUTES", default=60)
WAITLIST_RECHECK_MINUTES = env.int("WAITLIST_RECHECK_MINUTES", default=15)
if WAITLIST_OFFER_BATCH < 1 or WAITLIST_OFFER_MINUTES < 10:
    raise ImproperlyConfigured("WAITLIST_OFFER_BATCH must be 1 or more, WAITLIST_OFFER_MINUTES 10 or more.")
# A booster recall is texted (and emailed) this many days before it falls due.
RECALL_TEXT_LEAD_DAYS = env.int("RECALL_TEXT_LEAD_DAYS", default=7)

# The staff pages (scheduler/staff) sign in on their own page; the admin keeps its own.
LOGIN_URL = "staff:login"
LOGIN_REDIRECT_URL = "staff:home"
LOGOUT_REDIRECT_URL = "staff:login"

# Sign-in throttling (django-axes). Its backend comes first so a locked-out sign-in is refused
# before the password is even checked.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
# A lock keyed on the username alone would let anyone lock a clinic admin out by typing their name
# wrong from anywhere; keyed on the address alone, a clinic behind one NAT address would lock each
# other out. The pair stops guessing one account from one place and leaves the real user, at their
# own address, able to sign in; the cool-off ends every lock without an admin.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_FAILURE_LIMIT = env.int("STAFF_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("STAFF_LOGIN_COOLOFF_MINUTES", default=15))
# A right password forgives the typos before it, so they do not add up across the day.
AXES_RESET_ON_SUCCESS = True
# The address the rate limits count by, TRUSTED_PROXY_HOPS applied: not whatever X-Forwarded-For says.
AXES_CLIENT_IP_CALLABLE = "scheduler.proxy.client_address"
AXES_LOCKOUT_CALLABLE = "scheduler.staff.views.sign_in_locked_out"
# Lockouts are logged with the address; the username stays masked, as a password typed into the
# wrong box would otherwise land in the log. The admin's Access attempts list shows both.
AXES_SENSITIVE_PARAMETERS = ["username"]

# Two-factor sign-in (django-otp, TOTP): required of clinic admins where STAFF_2FA_REQUIRED is on
# (production's default), open to any staff member who turns it on. Off here so `make run`'s
# demo login stays one step.
STAFF_2FA_REQUIRED = env.bool("STAFF_2FA_REQUIRED", default=False)
OTP_TOTP_ISSUER = "Session scheduling"
# After each wrong code the next try waits 1, 2, 4, 8… seconds (0 would turn this off).
OTP_TOTP_THROTTLE_FACTOR = 1
# An admin who may see devices must not read their secret keys off the page.
OTP_ADMIN_HIDE_SENSITIVE_DATA = True
