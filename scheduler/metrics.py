"""GET /metrics in Prometheus' text format (OpenMetrics when asked), for whoever runs the service.

A scrape shows django-prometheus' request and database metrics and the service's counters
(notifications/metrics.py), summed over every process that writes to PROMETHEUS_MULTIPROC_DIR,
then gauges read from the database and the broker as it is made: late and stuck messages, the
tick's last run, the Celery queue. Read at the scrape, the gauges say the same on every web host
and need no process to keep them up to date; each read uses an index and a source that is down
is reported (`scheduler_metrics_source_up`) instead of failing the scrape.

With METRICS_TOKEN set, only `Authorization: Bearer <token>` may read it. Without one, production
answers 404 and development answers this machine only. No label names a clinic, a patient or a
phone: the page is for the service's operator, not for a clinic's staff.
"""

import functools
import hmac
import ipaddress
import logging
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime

import redis
from django.conf import settings
from django.db.models import Count, Min, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from kombu.transport.redis import PRIORITY_STEPS
from kombu.transport.redis import Channel as RedisChannel
from prometheus_client import REGISTRY
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from redis.backoff import NoBackoff
from redis.retry import Retry

from notifications.models import Heartbeat, Message
from notifications.sending import TICK_HEARTBEAT

from .celery import app

log = logging.getLogger(__name__)
Status = Message.Status

# A broker that does not answer at once is reported down: the scrape must not wait on it.
BROKER_TIMEOUT_SECONDS = 0.5


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    refusal = _refusal(request)
    if refusal is not None:
        return refusal
    # The format the scraper asks for: OpenMetrics, or the classic text format by default.
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encode(_Scrape()), content_type=content_type)


def _refusal(request: HttpRequest) -> HttpResponse | None:
    token = settings.METRICS_TOKEN
    if not token:
        if not settings.METRICS_LOOPBACK_OPEN:
            raise Http404  # closed: a deployment that set no token shows nothing here
        if _loopback(request.META.get("REMOTE_ADDR", "")):
            return None
        return _plain(403, "Without METRICS_TOKEN, /metrics answers this machine only.")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        answer = _plain(401, "Send Authorization: Bearer <METRICS_TOKEN>.")
        answer["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return answer
    # Compared in constant time, so the answer's timing tells nothing of the token.
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        return _plain(403, "Wrong metrics token.")
    return None


def _loopback(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def _plain(status: int, text: str) -> HttpResponse:
    return HttpResponse(text, status=status, content_type="text/plain; charset=utf-8")


class _Scrape:
    """One scrape's metrics: what the processes counted, then what the sources say now."""

    def collect(self) -> Iterator[Metric]:
        counted = (
            MultiProcessCollector(None, path=settings.PROMETHEUS_MULTIPROC_DIR)
            if settings.PROMETHEUS_MULTIPROC_DIR
            else REGISTRY
        )
        yield from counted.collect()
        yield from _read_now(timezone.now())


def _read_now(now: datetime) -> Iterator[Metric]:
    up = GaugeMetricFamily(
        "scheduler_metrics_source_up",
        "1 when this scrape read the source of its gauges (database, broker), 0 when it could not.",
        labels=["source"],
    )
    sources: list[tuple[str, Callable[[], Iterable[Metric]]]] = [("database", lambda: _database_gauges(now))]
    if _broker_is_redis():
        sources.append(("broker", _queue_gauges))
    for source, read in sources:
        try:
            families = list(read())
        except Exception:  # the source being down is the answer, shown in the gauge below
            log.warning("metrics: the %s could not be read", source, exc_info=True)
            up.add_metric([source], 0)
            continue
        up.add_metric([source], 1)
        yield from families
    yield up


def _database_gauges(now: datetime) -> list[Metric]:
    """Three indexed reads: the oldest due planned row (message_due_planned_idx), the rows in
    flight (message_lease_idx) and the tick's heartbeat (unique name)."""
    planned = (
        Message.objects.filter(status=Status.PLANNED, due_at__lte=now)
        .order_by("due_at")
        .values_list("due_at", flat=True)
        .first()
    )
    in_flight = Message.objects.filter(status__in=[Status.CLAIMED, Status.SENDING]).aggregate(
        claimed_due=Min("due_at", filter=Q(status=Status.CLAIMED)),
        claimed=Count("pk", filter=Q(status=Status.CLAIMED, lease_expires_at__lt=now)),
        sending=Count("pk", filter=Q(status=Status.SENDING, lease_expires_at__lt=now)),
    )
    tick = Heartbeat.objects.filter(name=TICK_HEARTBEAT).values_list("at", flat=True).first()

    oldest = min((due for due in (planned, in_flight["claimed_due"]) if due is not None), default=now)
    late = GaugeMetricFamily(
        "scheduler_reminders_oldest_due_seconds",
        "Age of the oldest message due and not yet handed to the provider (planned, or claimed by "
        "a tick and waiting for a worker); 0 when none is due.",
        value=max((now - oldest).total_seconds(), 0.0),
    )
    stuck = GaugeMetricFamily(
        "scheduler_messages_stuck",
        "Messages past their lease: claimed (the worker's task never ran) or sending (the worker "
        "stopped mid-send; the tick checks Twilio's log before any resend).",
        labels=["state"],
    )
    stuck.add_metric([Status.CLAIMED], in_flight["claimed"])
    stuck.add_metric([Status.SENDING], in_flight["sending"])
    last_run = GaugeMetricFamily(
        "scheduler_tick_last_run_timestamp_seconds",
        "When the reminder tick last ran, in Unix seconds; 0 if it never has.",
        value=tick.timestamp() if tick is not None else 0.0,
    )
    return [late, stuck, last_run]


def _broker_is_redis() -> bool:
    return settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://"))


def _queue_gauges() -> list[Metric]:
    """LLEN of each Celery queue's Redis lists (kombu keeps one per priority step), in one round trip."""
    queues = sorted(app.amqp.queues)
    keys = {queue: [_priority_key(queue, step) for step in PRIORITY_STEPS] for queue in queues}
    with _broker_client(settings.CELERY_BROKER_URL).pipeline(transaction=False) as pipe:
        for queue in queues:
            for key in keys[queue]:
                pipe.llen(key)
        lengths = iter(pipe.execute())
    family = GaugeMetricFamily(
        "scheduler_celery_queue_length", "Tasks waiting in the broker for a worker, by queue.", labels=["queue"]
    )
    for queue in queues:
        family.add_metric([queue], sum(next(lengths) for _ in keys[queue]))
    return [family]


def _priority_key(queue: str, step: int) -> str:
    return f"{queue}{RedisChannel.sep}{step}" if step else queue


@functools.cache
def _broker_client(url: str) -> redis.Redis:
    # No retry: a second try would only double the wait before the gauge says "down".
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=BROKER_TIMEOUT_SECONDS,
        socket_timeout=BROKER_TIMEOUT_SECONDS,
        retry=Retry(NoBackoff(), 0),
    )
