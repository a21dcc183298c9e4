"""/metrics over real processes: gunicorn serves what a Celery worker (prefork children) and beat
counted into a shared PROMETHEUS_MULTIPROC_DIR while they sent due texts to the fake Twilio."""

import re
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from notifications.models import Channel, Message, ReminderRule
from sessions.services import series_book
from tests.factories import patient_make, protocol_make
from tests.notifications.conftest import always_open_clinic
from tests.ops.test_ops_files import alert_exprs, named
from tests.processes import CeleryProcess, ChildProcess, WebProcess, celery_env, wait_until

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the processes share the PostgreSQL test database"),
]

TOKEN = "e2e-metrics-token"
STARTUP_TIMEOUT_SECONDS = 60.0
TEXTS = 3


class Scrape:
    def __init__(self, text: str) -> None:
        self.samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def value(self, name: str, **labels: str) -> float:
        """The sample's value; 0 for a labelled counter nothing has counted yet."""
        return self.samples.get((name, tuple(sorted(labels.items()))), 0.0)

    def names(self) -> set[str]:
        return {name for name, _ in self.samples}


@pytest.fixture
def env(tmp_path: Path, redis, twilio, smtp) -> dict[str, str]:
    folder = tmp_path / "metrics"
    folder.mkdir()
    return celery_env(
        redis_url=redis.url, twilio=twilio, smtp=smtp, PROMETHEUS_MULTIPROC_DIR=str(folder), METRICS_TOKEN=TOKEN,
        GUNICORN_WORKERS="2",
    )  # fmt: skip


@pytest.fixture
def web(env, tmp_path: Path) -> Iterator[WebProcess]:
    process = WebProcess(env, tmp_path / "web.log")
    yield process
    process.stop()


@pytest.fixture
def workers(env, tmp_path: Path) -> Iterator[list[ChildProcess]]:
    """Started by the test, once it has scraped the state before them."""
    started: list[ChildProcess] = []

    def start() -> list[ChildProcess]:
        # The default prefork pool: sends run in forked children, each counting in files of its own.
        started.append(CeleryProcess("worker", env, tmp_path / "worker.log", "--concurrency=2"))
        started.append(CeleryProcess("beat", env, tmp_path / "beat.log"))
        return started

    yield start
    for process in started:
        process.stop()


def scrape(web: WebProcess) -> Scrape:
    request = urllib.request.Request(f"{web.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=5) as answer:
        return Scrape(answer.read().decode())


def answers(web: WebProcess) -> bool:
    web.assert_running()
    try:
        scrape(web)
    except OSError:
        return False
    return True


def test_metrics_follow_the_worker_sending_due_texts(env, web, workers, twilio, smtp, settings):
    settings.REMINDER_KICK_ON_BOOKING = False  # this process's broker is not the processes' Redis
    clinic = always_open_clinic()
    ReminderRule.objects.filter(clinic=clinic).delete()
    protocol = protocol_make(clinic, kind="booster", chair_minutes=30)
    phones = [f"+1212555017{n}" for n in range(TEXTS)]
    for phone in phones:
        patient = patient_make(clinic, phone=phone, email="")
        series_book(patient=patient, protocol=protocol, starts=[timezone.now() + timedelta(days=2)])
    # The booking texts fell due ten minutes ago, and nothing has sent them.
    texts = Message.objects.filter(channel=Channel.SMS)
    assert texts.count() == TEXTS
    texts.update(due_at=timezone.now() - timedelta(minutes=10))
    wait_until(lambda: answers(web), STARTUP_TIMEOUT_SECONDS, "gunicorn to answer /metrics")

    before = scrape(web)
    assert before.value("scheduler_reminders_oldest_due_seconds") >= 600
    assert before.value("scheduler_messages_total", channel="sms", outcome="sent", reason="") == 0
    assert before.value("scheduler_tick_last_run_timestamp_seconds") == 0
    assert before.value("scheduler_metrics_source_up", source="broker") == 1

    started_at = timezone.now().timestamp()
    processes = workers()

    def all_sent() -> bool:
        for process in processes:
            process.assert_running()
        after = scrape(web)
        return (
            after.value("scheduler_messages_total", channel="sms", outcome="sent", reason="") == TEXTS
            and after.value("scheduler_reminders_oldest_due_seconds") == 0
        )

    wait_until(all_sent, STARTUP_TIMEOUT_SECONDS, "the worker to send the due texts and /metrics to count them")

    after = scrape(web)
    assert sorted(text.to for text in twilio.messages) == sorted(phones)
    assert after.value("scheduler_messages_total", channel="sms", outcome="sent", reason="") == TEXTS
    assert after.value("scheduler_tick_last_run_timestamp_seconds") >= started_at
    assert after.value("scheduler_tick_duration_seconds_count") >= 1
    assert after.value("scheduler_messages_stuck", state="sending") == 0
    # Counted in the worker's children and in gunicorn's workers alike: one folder, summed.
    queries = {"alias": "default", "vendor": "postgresql"}
    assert after.value("django_db_execute_total", **queries) > before.value("django_db_execute_total", **queries)
    scrapes = {"status": "200", "view": "metrics", "method": "GET"}
    assert after.value("django_http_responses_total_by_status_view_method_total", **scrapes) >= 2
    assert named(alert_exprs()) - after.names() == set()
    # Files per process, named by host and pid: gunicorn's workers, the worker, its children, beat.
    counting = {re.fullmatch(r"counter_(.+)\.db", f.name) for f in Path(env["PROMETHEUS_MULTIPROC_DIR"]).iterdir()}
    assert len({found.group(1) for found in counting if found}) >= 4
