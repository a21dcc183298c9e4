"""Reminders: the beat tick's claim of due rows with its hand-off to the broker, at 10,000 and at
1,000,000 rows in the table; then texts end to end, from the first tick to every row `sent`,
through a real Celery worker, a Redis of the bench's own and the official twilio client talking
to the fake Twilio in this process."""

import logging
import time as clock
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import celery
import kombu
from django.utils import timezone

from notifications import sending
from notifications.models import Message
from tests.processes import RedisServer

from .measure import Call, Group, Options, Prepare, Row, Target, profile_calls, time_calls
from .messages import (
    PATIENTS,
    ReminderClinic,
    messages_analyze,
    messages_empty,
    messages_load,
    messages_vacuum,
    reminder_clinic_build,
)
from .publishing import (
    PROTOTYPES,
    Publish,
    bench_broker,
    broker_queue_empty,
    publish_chunked,
    publish_pipelined,
    publishing_replaced,
)
from .texts import send_rows

DUE = 1_000
TABLES = (10_000, 1_000_000)
TICK_TARGET_MS = 100
# The bigger table may cost at most this much more than the smaller one.
TICK_GROWTH = 1.5


def reminder_benchmarks(options: Options) -> Group:
    began = clock.perf_counter()
    bench = reminder_clinic_build()
    group = Group(title="Reminders", description="")
    with bench_broker() as broker, _quiet("notifications"):
        loading = _tick_rows(group, bench, broker, options)
        # What the last tick published: a worker would take it for work.
        broker_queue_empty(broker)
        send_rows(group, bench, broker, options)
    messages_empty()
    group.description = _describe(loading, clock.perf_counter() - began)
    return group


def _tick_rows(group: Group, bench: ReminderClinic, broker: RedisServer, options: Options) -> dict[int, float]:
    """Claim and publish at each table size, and the claim alone; then the publishing alone, as
    the app does it and as the prototypes would. Returns the seconds each table took to load."""
    count, warmup = max(5, options.iterations // 10), min(options.warmup, 2)
    now = timezone.now()
    messages_empty()
    loading: dict[int, float] = {}
    ticks: list[Row] = []
    claims: list[Row] = []
    for loaded, size in zip((0, *TABLES), TABLES, strict=False):
        loading[size] = messages_load(bench, numbers=range(loaded, size), due=DUE, now=now)
        messages_analyze()
        name = f"tick: claim {DUE:,} due of {size:,} rows and hand them to the broker"
        ticks.append(Row(name, _timed(_claiming(broker, now), count, warmup)))
        with publishing_replaced(lambda ids: None):
            name = f"claim alone, {size:,} rows (publishing set aside)"
            claims.append(Row(name, _timed(_claiming(broker, now), count, warmup)))
        if options.profile:
            group.profiles[ticks[-1].name] = profile_calls(_claiming(broker, now), count=count)
    small, large = ticks
    small.target = Target(TICK_TARGET_MS)
    large.target = Target(
        min(TICK_TARGET_MS, TICK_GROWTH * small.median_ms),
        wording=f"median ≤ {TICK_TARGET_MS} ms and ≤ {TICK_GROWTH:g} × the {TABLES[0]:,}-row one",
    )
    group.rows += [*ticks, *claims]
    group.notes.append(_tick_note(ticks, claims, count, warmup))
    _publishing_rows(group, broker, now, count=max(5, count // 4), warmup=1)
    return loading


def _tick_note(ticks: list[Row], claims: list[Row], count: int, warmup: int) -> str:
    return (
        f"Tick: `messages_claim_due(now=…, limit={DUE:,})` on a table of {TABLES[0]:,}, then {TABLES[1]:,} planned "
        f"SMS rows ({DUE:,} of them due in the hour before now, the rest over the next 30 days), timed from the "
        f"call to its return: the claim, the commit, and the on-commit hand-off of the {DUE:,} ids (one "
        f"`dispatch_sends` task per {sending.DISPATCH_CHUNK} ids, over one producer; a worker fans each out to "
        f"`send_message` tasks) "
        f"to a redis-server of the bench's own. Between calls, untimed: the claimed rows go back to planned, the "
        f"table is vacuumed, the queue emptied. {count} timed calls after {warmup} untimed. From the small table "
        f"to the large one the tick's median went ×{ticks[1].median_ms / ticks[0].median_ms:.2f} and the claim's "
        f"×{claims[1].median_ms / claims[0].median_ms:.2f}; publishing is "
        f"{1 - claims[0].median_ms / ticks[0].median_ms:.0%} of the tick."
    )


def _publishing_rows(group: Group, broker: RedisServer, now: datetime, *, count: int, warmup: int) -> None:
    _claims_undo()
    ids = list(Message.objects.filter(status=Message.Status.PLANNED, due_at__lte=now).values_list("pk", flat=True))
    name = f"publish alone: {len(ids):,} ids as the app's _enqueue does (dispatch chunks)"
    group.rows.append(Row(name, _timed(_publishing(broker, sending._enqueue, ids), count, warmup)))
    for name, publish in PROTOTYPES.items():
        group.rows.append(
            Row(f"publish alone, prototype: {name}", _timed(_publishing(broker, publish, ids), count, warmup))
        )
    for name, publish in (("pipelined", publish_pipelined), ("chunked", publish_chunked)):
        with publishing_replaced(publish):
            name = f"tick, {TABLES[-1]:,} rows, publishing as the {name} prototype"
            group.rows.append(Row(name, _timed(_claiming(broker, now), count, warmup)))
    group.notes.append(
        f"Publishing alone: the same {len(ids):,} ids published again and again, the queue emptied between calls; "
        f"{count} timed calls after {warmup} untimed, as for the ticks with a prototype's publishing. The "
        f"prototypes (bench/publishing.py) are proposals, not the app's code. With a task per id no send waits "
        f"behind another; the chunked prototype publishes a task the app does not have (a list of ids), whose "
        f"worker would send them one after the other."
    )


def _claiming(broker: RedisServer, now: datetime) -> Prepare:
    def prepare() -> Call:
        _claims_undo()
        broker_queue_empty(broker)

        def call() -> str:
            claimed = sending.messages_claim_due(now=now, limit=DUE)
            return "claimed" if len(claimed) == DUE else f"claimed {len(claimed)}"

        return call

    return prepare


def _claims_undo() -> None:
    """Claimed rows back to planned. A claim leaves dead row versions in the partial index of
    planned rows: autovacuum clears them in production, and each call meets the table as built."""
    Message.objects.filter(status=Message.Status.CLAIMED).update(status=Message.Status.PLANNED, lease_expires_at=None)
    messages_vacuum()


def _publishing(broker: RedisServer, publish: Publish, ids: list[int]) -> Prepare:
    def prepare() -> Call:
        broker_queue_empty(broker)

        def call() -> str:
            publish(ids)
            return "published"

        return call

    return prepare


def _timed(prepare: Prepare, count: int, warmup: int) -> list[float]:
    samples = time_calls(prepare, count=count, warmup=warmup)
    wrong = {label: len(times) for label, times in samples.items() if label not in ("claimed", "published")}
    if wrong:
        raise RuntimeError(f"The tick benchmark did not claim or publish what it should: {wrong}")
    return next(iter(samples.values()))


@contextmanager
def _quiet(logger: str) -> Iterator[None]:
    """The app logs each tick and each send at INFO: thousands of lines in the bench's output."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        log.setLevel(level)


def _describe(loading: dict[int, float], seconds: float) -> str:
    loads = ", ".join(f"{size:,} rows in {s:.1f} s" for size, s in loading.items())
    return (
        f"A clinic of {PATIENTS:,} patients, each with one booked session from tomorrow on. Message rows are "
        f"written by one INSERT … SELECT over generate_series ({loads}; the second load adds to the first), then "
        f"vacuumed and analyzed. The broker is a redis-server on loopback of the bench's own; celery "
        f"{celery.__version__}, kombu {kombu.__version__}. The group took {seconds:.0f} s, its data and worker "
        f"starts included."
    )
