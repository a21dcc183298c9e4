"""GET /metrics (scheduler/metrics.py): who may read it, and the gauges it reads from the database
and the broker at each scrape."""

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from unittest import mock

import pytest
import redis as redis_client
from django.db import OperationalError
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from notifications.models import Heartbeat, Message, ReminderRule
from notifications.sending import TICK_HEARTBEAT
from sessions.services import series_book
from tests.factories import clinic_make, patient_make, protocol_make
from tests.processes import ROOT
from tests.production.test_deploy import production_env

pytestmark = pytest.mark.django_db
Status = Message.Status
TOKEN = "s3cret-metrics-token"


def scrape(client: Client, *, address: str = "127.0.0.1", **headers: str):
    return client.get("/metrics", REMOTE_ADDR=address, **headers)


def samples(answer) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of a scrape."""
    assert answer.status_code == 200, answer.content
    text = answer.content.decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def gauge(found: dict, name: str, **labels: str) -> float | None:
    return found.get((name, tuple(sorted(labels.items()))))


@pytest.fixture
def open_in_dev(settings) -> None:
    settings.METRICS_TOKEN = ""
    settings.METRICS_LOOPBACK_OPEN = True


# Who may read it ---------------------------------------------------------------------------------


def test_with_a_token_only_its_bearer_reads_the_metrics(client, settings):
    settings.METRICS_TOKEN = TOKEN

    right = scrape(client, address="10.1.2.3", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    missing = scrape(client, address="127.0.0.1")
    wrong = scrape(client, HTTP_AUTHORIZATION="Bearer s3cret-metrics-tokem")
    basic = scrape(client, HTTP_AUTHORIZATION=f"Basic {TOKEN}")

    assert right.status_code == 200
    assert right["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert b"scheduler_reminders_oldest_due_seconds" in right.content
    assert (missing.status_code, missing["WWW-Authenticate"]) == (401, 'Bearer realm="metrics"')
    assert wrong.status_code == 403
    assert basic.status_code == 401
    assert all(b"scheduler_" not in a.content for a in (missing, wrong, basic))


def test_a_scraper_that_asks_for_openmetrics_gets_it(client, open_in_dev):
    prometheus = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.4,*/*;q=0.1"

    answer = scrape(client, HTTP_ACCEPT=prometheus)

    assert answer["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    assert answer.content.endswith(b"# EOF\n")


def test_without_a_token_production_shows_nothing_even_to_this_machine(client, settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_LOOPBACK_OPEN = False

    assert scrape(client, address="127.0.0.1").status_code == 404


def test_without_a_token_development_answers_this_machine_only(client, settings, open_in_dev):
    settings.TRUSTED_PROXY_HOPS = 1

    assert scrape(client, address="127.0.0.1").status_code == 200
    assert scrape(client, address="::1").status_code == 200
    assert scrape(client, address="192.168.1.20").status_code == 403
    # Behind the proxy on this machine, the client is the one X-Forwarded-For names.
    assert scrape(client, address="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 403


def test_production_settings_close_metrics_without_a_token_and_open_them_with_it():
    probe = (
        "from django.test import Client; c = Client(HTTP_HOST='scheduler.example.com', REMOTE_ADDR='127.0.0.1'); "
        "print(c.get('/metrics').status_code, c.get('/metrics', HTTP_AUTHORIZATION='Bearer t0ken').status_code)"
    )

    def statuses(**env: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", probe],
            cwd=ROOT, env=production_env(**env), capture_output=True, text=True,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout.strip().splitlines()[-1]

    assert statuses() == "404 404"
    # Not redirected to HTTPS: Prometheus scrapes in plain HTTP across the private network.
    assert statuses(METRICS_TOKEN="t0ken") == "401 200"


# What it reads at each scrape --------------------------------------------------------------------


@pytest.fixture
def messages(settings) -> list[Message]:
    """A booked session's messages, which each test moves into the states it needs."""
    clinic = clinic_make()
    ReminderRule.objects.filter(clinic=clinic).delete()
    ReminderRule.objects.create(clinic=clinic, channel="sms", offset_minutes=24 * 60)
    ReminderRule.objects.create(clinic=clinic, channel="email", offset_minutes=48 * 60)
    patient = patient_make(clinic, phone="+16025550142", email="pat@example.com")
    start = (timezone.now() + timedelta(days=5)).astimezone(clinic.zone).replace(hour=10, minute=0, tzinfo=None)
    series_book(patient=patient, protocol=protocol_make(clinic, kind="booster"), starts=[start])
    found = list(Message.objects.order_by("pk"))
    assert len(found) == 4  # booking text and email, a reminder of each
    return found


def put(message: Message, status: str, *, due_ago: timedelta, lease_in: timedelta | None = None) -> None:
    now = timezone.now()
    lease = now + lease_in if lease_in is not None else None
    Message.objects.filter(pk=message.pk).update(status=status, due_at=now - due_ago, lease_expires_at=lease)


def test_nothing_due_reads_as_zero_and_a_tick_that_never_ran_as_zero(client, open_in_dev, messages):
    Message.objects.update(due_at=timezone.now() + timedelta(hours=1))

    found = samples(scrape(client))

    assert gauge(found, "scheduler_reminders_oldest_due_seconds") == 0
    assert gauge(found, "scheduler_messages_stuck", state="claimed") == 0
    assert gauge(found, "scheduler_messages_stuck", state="sending") == 0
    assert gauge(found, "scheduler_tick_last_run_timestamp_seconds") == 0
    assert gauge(found, "scheduler_metrics_source_up", source="database") == 1


def test_the_oldest_due_is_the_oldest_planned_or_claimed_message_not_yet_sent(client, open_in_dev, messages):
    text, email, reminder, later = messages
    put(text, Status.PLANNED, due_ago=timedelta(minutes=10))
    put(email, Status.PLANNED, due_ago=timedelta(minutes=2))
    put(reminder, Status.SENT, due_ago=timedelta(hours=3))  # sent long ago: not late
    put(later, Status.PLANNED, due_ago=-timedelta(hours=1))  # not due yet

    before = timezone.now()
    late = gauge(samples(scrape(client)), "scheduler_reminders_oldest_due_seconds")
    assert 600 <= late <= 600 + (timezone.now() - before).total_seconds() + 1

    # Claimed by a tick 20 minutes ago and never sent by a worker: still late, and the oldest.
    put(reminder, Status.CLAIMED, due_ago=timedelta(minutes=20), lease_in=timedelta(minutes=5))
    late = gauge(samples(scrape(client)), "scheduler_reminders_oldest_due_seconds")
    assert 1200 <= late <= 1200 + (timezone.now() - before).total_seconds() + 1


def test_stuck_counts_claimed_and_sending_rows_past_their_lease_only(client, open_in_dev, messages):
    text, email, reminder, later = messages
    put(text, Status.CLAIMED, due_ago=timedelta(minutes=9), lease_in=-timedelta(seconds=5))
    put(email, Status.SENDING, due_ago=timedelta(minutes=9), lease_in=-timedelta(minutes=1))
    put(reminder, Status.SENDING, due_ago=timedelta(minutes=1), lease_in=timedelta(minutes=1))  # in hand
    put(later, Status.CLAIMED, due_ago=timedelta(seconds=1), lease_in=timedelta(minutes=5))  # in hand

    found = samples(scrape(client))

    assert gauge(found, "scheduler_messages_stuck", state="claimed") == 1
    assert gauge(found, "scheduler_messages_stuck", state="sending") == 1


def test_the_ticks_last_run_is_its_heartbeat(client, open_in_dev):
    ran = timezone.now() - timedelta(seconds=42)
    Heartbeat.objects.create(name=TICK_HEARTBEAT, at=ran)

    found = samples(scrape(client))

    assert gauge(found, "scheduler_tick_last_run_timestamp_seconds") == pytest.approx(ran.timestamp(), abs=1e-3)


def test_the_queue_length_adds_every_priority_list_of_each_queue(client, open_in_dev, settings, redis):
    settings.CELERY_BROKER_URL = redis.url
    broker = redis_client.Redis.from_url(redis.url)
    broker.rpush("celery", *[b"task"] * 3)
    broker.rpush("celery\x06\x169", *[b"task"] * 2)  # kombu's list for priority 9

    found = samples(scrape(client))

    assert gauge(found, "scheduler_celery_queue_length", queue="celery") == 5
    assert gauge(found, "scheduler_metrics_source_up", source="broker") == 1


@pytest.fixture
def silent_broker() -> Iterator[str]:
    """A port that takes connections and never answers, as a hung Redis would."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"


@pytest.mark.parametrize("down", ["refused", "silent"])
def test_a_broker_down_or_hung_is_reported_and_the_rest_of_the_scrape_stands(
    client, open_in_dev, settings, messages, silent_broker, down
):
    settings.CELERY_BROKER_URL = silent_broker if down == "silent" else "redis://127.0.0.1:9/0"
    put(messages[0], Status.PLANNED, due_ago=timedelta(minutes=10))

    started = time.monotonic()
    found = samples(scrape(client))

    assert time.monotonic() - started < 3  # a short timeout, not a hung scrape
    assert gauge(found, "scheduler_metrics_source_up", source="broker") == 0
    assert gauge(found, "scheduler_metrics_source_up", source="database") == 1
    assert not any(name == "scheduler_celery_queue_length" for name, _ in found)
    assert gauge(found, "scheduler_reminders_oldest_due_seconds") >= 600


def test_a_database_that_does_not_answer_is_reported_and_the_rest_of_the_scrape_stands(client, open_in_dev):
    lost = OperationalError("server closed the connection unexpectedly")
    with mock.patch("scheduler.metrics.Message.objects.filter", side_effect=lost):
        found = samples(scrape(client))

    assert gauge(found, "scheduler_metrics_source_up", source="database") == 0
    assert gauge(found, "scheduler_reminders_oldest_due_seconds") is None
    assert any(name == "django_http_requests_total_by_method_total" for name, _ in found)


def test_no_label_names_a_clinic_a_patient_or_a_phone(client, open_in_dev, messages):
    patient = messages[0].patient
    put(messages[0], Status.PLANNED, due_ago=timedelta(minutes=1))

    answer = scrape(client)

    text = answer.content.decode()
    labels = {label for family in text_string_to_metric_families(text) for s in family.samples for label in s.labels}
    assert not labels & {"clinic", "clinic_id", "patient", "patient_id", "phone", "to", "recipient"}
    assert patient.phone not in text and patient.last_name not in text and patient.clinic.name not in text
