"""The runtime lock alone runs the service. `make test` builds a venv from requirements.txt and
nothing else, as the image does (`make runtime-venv`), and names its interpreter in
RUNTIME_PYTHON; web, a Celery worker and beat start from it with production settings on
PostgreSQL and Redis. The dev venv cannot show a missing package: the test tools pull in their own
(pytest brings `packaging`, which kombu's Redis transport needs)."""

import os
import re
import secrets
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from notifications.models import ReminderRule
from sessions.services import series_book
from tests.factories import patient_make, protocol_make
from tests.notifications.conftest import always_open_clinic
from tests.processes import CeleryProcess, ChildProcess, RedisServer, WebProcess, celery_env, wait_until

RUNTIME_PYTHON = os.environ.get("RUNTIME_PYTHON", "")
STARTUP_TIMEOUT_SECONDS = 60.0

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the processes share the PostgreSQL test database"),
    pytest.mark.skipif(not RUNTIME_PYTHON, reason="RUNTIME_PYTHON unset: `make test` builds the runtime venv"),
]


@pytest.fixture
def runtime_processes(tmp_path: Path, redis: RedisServer, twilio, smtp) -> Iterator[list[ChildProcess]]:
    """Web, worker and beat as docker-compose.yml runs them, from the runtime venv's interpreter."""
    env = celery_env(
        redis_url=redis.url,
        twilio=twilio,
        smtp=smtp,
        DJANGO_SETTINGS_MODULE="scheduler.settings.production",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        GUNICORN_WORKERS="2",
    )
    # Only the runtime venv's own packages: nothing from the dev venv through the path.
    env.pop("PYTHONPATH", None)
    started: list[ChildProcess] = []
    try:
        started.append(WebProcess(env, tmp_path / "web.log", python=RUNTIME_PYTHON))
        started.append(CeleryProcess("worker", env, tmp_path / "worker.log", python=RUNTIME_PYTHON))
        started.append(CeleryProcess("beat", env, tmp_path / "beat.log", python=RUNTIME_PYTHON))
        yield started
    finally:
        for process in started:
            process.stop()


def test_web_worker_and_beat_run_from_the_runtime_lock_alone(runtime_processes, twilio, smtp, settings) -> None:
    web, worker, _ = runtime_processes
    # The booking below is made in this process, whose broker is not the test's Redis.
    settings.REMINDER_KICK_ON_BOOKING = False

    def until(condition: Callable[[], bool], what: str) -> None:
        def checked() -> bool:
            for process in runtime_processes:
                process.assert_running()
            return condition()

        wait_until(checked, STARTUP_TIMEOUT_SECONDS, what)

    until(lambda: healthz_status(web) == 200, "web to answer /healthz with the database and broker up")
    until(lambda: re.search(r"celery@\S+ ready\.", worker.output()) is not None, "the worker to be ready")

    # The booking confirmation is due at once: beat's tick goes through Redis to the worker, which
    # claims it and sends the text to (fake) Twilio and the email, invite and all, to the SMTP sink.
    clinic = always_open_clinic()
    ReminderRule.objects.filter(clinic=clinic).delete()
    protocol = protocol_make(clinic, kind="booster", chair_minutes=30)
    patient = patient_make(clinic, phone="+12125550163", email="runtime@example.com")
    series_book(patient=patient, protocol=protocol, starts=[timezone.now() + timedelta(days=2)])
    until(lambda: len(twilio.messages_to(patient.phone)) == len(smtp.messages) == 1, "the confirmation sent")

    # Only beat's schedule runs the tick, whose heartbeat the strict probe wants fresh.
    until(lambda: healthz_status(web, "?strict=1") == 200, "/healthz?strict=1 to see a fresh tick")


def healthz_status(web: WebProcess, query: str = "") -> int:
    """Asked as the TLS proxy in front would (X-Forwarded-Proto), which production's HTTPS redirect
    lets through; 0 while nothing listens."""
    request = urllib.request.Request(f"{web.url}/healthz{query}", headers={"X-Forwarded-Proto": "https"})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0
