"""The project's Celery app with one addition for tests/production/test_logs.py: once a worker or
beat is up, it writes LOG_PROBE_TEXT the careless ways, through Celery's task logger (a handler of
Celery's own) and print() (stdout, which Celery turns into log records)."""

import os

from celery.signals import beat_init, worker_ready
from celery.utils.log import get_task_logger

from scheduler.celery import app

__all__ = ["app"]


@worker_ready.connect
@beat_init.connect
def write_the_probe_text(**kwargs: object) -> None:
    text = os.environ["LOG_PROBE_TEXT"]
    get_task_logger(__name__).warning("probe %s", text)
    print(f"probe {text}")
