"""Settings of the prototype worker in the reminder benchmarks: the app's own, but with Celery
keeping each pool thread's database connection between tasks.

Unless CELERY_DB_REUSE_MAX is set, Celery's Django fix-up closes every database connection
before and after each task, whatever CONN_MAX_AGE says, so every text opens a new PostgreSQL
connection. This is a proposal measured by the bench, not the app's configuration.
"""

from scheduler.settings.dev import *  # noqa: F403

CELERY_DB_REUSE_MAX = 1_000
