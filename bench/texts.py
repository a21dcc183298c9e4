"""Texts end to end: due SMS reminders handed out by one tick in the bench process and sent by a
real `celery worker` process through the official twilio client to the fake Twilio, which runs
in the bench process. Timed from the tick to the last row `sent`, for a few worker setups."""

import os
import re
import sys
import tempfile
import time as clock
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from django.test.utils import override_settings
from django.utils import timezone

from notifications import sending
from notifications.models import Message
from tests.fakes import FakeTwilio, SmtpSink
from tests.processes import CeleryProcess, RedisServer, celery_env, wait_until

from .host import CpuSnapshot, cpu_snapshot
from .measure import Call, Group, Options, Row, Throughput, captured_queries, profile_calls
from .messages import PATIENTS, ReminderClinic, messages_empty, messages_load
from .publishing import publishing_replaced

TEXTS = 1_000
TEXTS_PER_SECOND = 100


@dataclass(frozen=True)
class WorkerSetup:
    name: str
    options: tuple[str, ...]
    # Worker processes started side by side, each with the options above.
    processes: int = 1


THREADS_8 = ("--pool=threads", "--concurrency=8")
# The first is the recommended setup on a 2-core host and the one held to the target: one
# threads worker is held to one core by the GIL, and threads cost less CPU a text than prefork.
# The others are measured beside it.
WORKERS = (
    WorkerSetup("2 workers × threads 8", THREADS_8, processes=2),
    WorkerSetup("1 worker × threads 8", THREADS_8),
    WorkerSetup("1 worker × prefork 2 (docker-compose's worker on 2 cores)", ("--pool=prefork", "--concurrency=2")),
)
# Texts sent before the timed run: each pool process or thread has connected and imported.
WARMUP_TEXTS = 50


def send_rows(group: Group, bench: ReminderClinic, broker: RedisServer, options: Options) -> None:
    group.notes.append(
        f"Texts end to end: {TEXTS:,} due SMS reminders, one for each of {PATIENTS:,} patients with phones of "
        f"their own (caps raised, a messaging window open all day), handed out by one `reminder_tick()` in the "
        f"bench process and sent by real `celery worker` processes (DB_CONN_MAX_AGE=60 as in production; log "
        f"level info) through the official twilio client to the fake Twilio in the bench process. Timed from the "
        f"tick's start until no row is planned, claimed or sending; the workers first send {WARMUP_TEXTS} texts "
        f"untimed. Every run is checked: each row `sent`, and exactly one text per row at the fake, counted by "
        f"the `m=` id of its StatusCallback. Workers' CPU is that of their process groups (pools included); the "
        f"bench process's holds the fake Twilio, the tick and the polling. The fake answers at once; when Twilio "
        f"takes L seconds, N threads send at most N / L texts a second (8 threads at 200 ms: 40), so in "
        f"production the concurrency is sized for the provider's latency, not for the cores."
    )
    with FakeTwilio() as twilio, SmtpSink() as smtp, tempfile.TemporaryDirectory(prefix="bench-worker-") as logs:
        for number, setup in enumerate(WORKERS):
            elapsed, note = _send_setup(bench, twilio, _worker_env(broker, twilio, smtp, setup), Path(logs), setup)
            row = Row(f"{TEXTS:,} texts, first tick to all sent: {setup.name}", [elapsed * 1000])
            if number == 0:
                row.target = Throughput(items=TEXTS, per_second=TEXTS_PER_SECOND, unit="texts")
            group.rows.append(row)
            group.notes.append(note)
        group.notes.append(_in_process(group, bench, twilio, options))


def _send_setup(
    bench: ReminderClinic, twilio: FakeTwilio, env: dict[str, str], logs: Path, setup: WorkerSetup
) -> tuple[float, str]:
    """Start the setup's workers, time the texts, stop them; the worker logs' ends on a failure."""
    folder = Path(tempfile.mkdtemp(dir=logs))
    workers = [
        CeleryProcess("worker", env, folder / f"{n}.log", f"--hostname=bench{n}@%h", *setup.options)
        for n in range(setup.processes)
    ]
    try:
        return _send_run(bench, twilio, workers, setup)
    except Exception:
        for worker in workers:
            print(f"The end of the log of {setup.name}:\n{worker.output()[-4000:]}", file=sys.stderr)
        raise
    finally:
        for worker in workers:
            worker.stop()


def _in_process(group: Group, bench: ReminderClinic, twilio: FakeTwilio, options: Options) -> str:
    """Texts sent by `message_send` in the bench process, against the fake: the queries of one,
    and with --profile where the time of a few hundred goes (no Celery around them)."""
    count = 300 if options.profile else 1
    messages_empty()
    messages_load(bench, numbers=range(count), due=count, now=timezone.now(), key="in-process")
    with publishing_replaced(lambda ids: None):
        pending = iter(sending.messages_claim_due(now=timezone.now(), limit=count))

    def prepare() -> Call:
        message_id = next(pending)
        return lambda: sending.message_send(message_id=message_id)

    with override_settings(**_twilio_settings(twilio)):
        queries = captured_queries(prepare)
        if options.profile:
            group.profiles["message_send in the bench process, no Celery"] = profile_calls(prepare, count=count - 1)
    kinds = Counter(_query_kind(sql) for sql in queries)
    return (
        f"One text makes {len(queries)} queries: "
        + ", ".join(f"{kind}{f' × {n}' if n > 1 else ''}" for kind, n in kinds.items())
        + "."
    )


def _twilio_settings(twilio: FakeTwilio) -> dict[str, object]:
    return {
        "TWILIO_ACCOUNT_SID": twilio.account_sid,
        "TWILIO_AUTH_TOKEN": twilio.auth_token,
        "TWILIO_FROM_NUMBER": "+16025550199",
        "TWILIO_MESSAGING_SERVICE_SID": "",
        "TWILIO_API_BASE_URL": twilio.base_url,
        "SMS_DAILY_CAP": TEXTS * 10,
        "SMS_WEEKLY_CAP": TEXTS * 10,
    }


_TABLE = re.compile(r'(?:FROM|INTO|UPDATE)\s+"(\w+)"')


def _query_kind(sql: str) -> str:
    """What a query does and to which table: `SELECT FOR UPDATE booking_patient`, `BEGIN`."""
    kind = "SELECT COUNT" if sql.startswith("SELECT COUNT") else sql.split()[0]
    locking = " FOR UPDATE" if kind == "SELECT" and "FOR UPDATE" in sql else ""
    table = _TABLE.search(sql)
    return f"{kind}{locking} {table[1]}" if table else kind


def _send_run(
    bench: ReminderClinic, twilio: FakeTwilio, workers: list[CeleryProcess], setup: WorkerSetup
) -> tuple[float, str]:
    """Seconds the timed texts took, and a note on the run, once the workers have warmed up."""
    wait_until(lambda: all(" ready." in w.output() for w in workers), 60, f"{setup.name} to start")
    _texts_send(bench, twilio, key="warmup", count=WARMUP_TEXTS)
    groups = [worker.process.pid for worker in workers]
    before = cpu_snapshot(groups)
    elapsed, checked = _texts_send(bench, twilio, key="e2e", count=TEXTS)
    used = cpu_snapshot(groups).since(before)
    return elapsed, _send_note(setup, elapsed, used, checked)


def _send_note(setup: WorkerSetup, elapsed: float, used: CpuSnapshot, checked: str) -> str:
    described = f"`{' '.join(setup.options)}`" + (f" × {setup.processes} processes" if setup.processes > 1 else "")
    return (
        f"Worker {described}: {TEXTS / elapsed:.0f} texts/s. CPU per text: worker "
        f"{used.group_seconds / TEXTS * 1000:.1f} ms, bench process {used.own_seconds / TEXTS * 1000:.1f} ms; the "
        f"host's CPUs {used.host_busy:.0%} busy, whoever used them. {checked}."
    )


def _worker_env(broker: RedisServer, twilio: FakeTwilio, smtp: SmtpSink, setup: WorkerSetup) -> dict[str, str]:
    return celery_env(
        redis_url=broker.url,
        twilio=twilio,
        smtp=smtp,
        # The bench calls the tick itself; no beat runs.
        tick_seconds=3600,
        DATABASE_URL=os.environ["DATABASE_URL"],
        DB_CONN_MAX_AGE="60",
        DJANGO_DEBUG="false",
        SMS_DAILY_CAP=str(TEXTS * 10),
        SMS_WEEKLY_CAP=str(TEXTS * 10),
    )


def _texts_send(bench: ReminderClinic, twilio: FakeTwilio, *, key: str, count: int) -> tuple[float, str]:
    """Seconds from the tick to the last of `count` rows sent, and what the fake received."""
    messages_empty()
    twilio.reset()
    messages_load(bench, numbers=range(count), due=count, now=timezone.now(), key=key)
    ids = list(Message.objects.values_list("pk", flat=True))
    began = clock.perf_counter()
    sending.reminder_tick(now=timezone.now())
    wait_until(_all_sent_or_ended, 120, f"{count} texts to be sent", every=0.01)
    elapsed = clock.perf_counter() - began
    return elapsed, _texts_check(twilio, ids)


def _all_sent_or_ended() -> bool:
    return not Message.objects.filter(status__in=[*Message.PENDING, Message.Status.SENDING]).exists()


def _texts_check(twilio: FakeTwilio, ids: list[int]) -> str:
    statuses = Counter(Message.objects.values_list("status", flat=True))
    texts = Counter(_callback_id(request.form) for request in twilio.received if request.sid)
    problems = []
    if statuses != {Message.Status.SENT: len(ids)}:
        problems.append(f"rows ended {dict(statuses)}")
    if set(texts) != set(ids) or max(texts.values(), default=0) != 1:
        twice = sum(1 for n in texts.values() if n > 1)
        problems.append(f"the fake got {texts.total():,} texts for {len(texts):,} rows ({twice} texted twice)")
    if problems:
        raise RuntimeError("The send benchmark went wrong: " + "; ".join(problems))
    return f"Exactly one text per row at the fake ({texts.total():,} texts for {len(texts):,} rows)"


def _callback_id(form: dict[str, str]) -> int:
    return int(parse_qs(urlsplit(form.get("StatusCallback", "")).query)["m"][0])
