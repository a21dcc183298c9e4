"""Load: gunicorn on loopback with production settings and gunicorn.conf.py's defaults. The
patient link page at 32 concurrent clients, driven by wrk (bench/wrk.py); the booking API booking
6-session series with auto-placement across four clinics, driven by the asyncio client of
bench/http_load.py (each request a different patient); afterwards the database must hold no
overlapping sessions on a chair or for a patient.

`scripts/chaos.py` runs the same booking load while it kills the worker and restarts Redis.
"""

import json
import math
import os
import random
import runpy
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory

from django.contrib.auth.models import Group as UserGroup
from django.contrib.auth.models import User
from django.db import connection
from django.utils import timezone
from rest_framework.authtoken.models import Token

from notifications import links as links_module
from sessions.models import Chair, Clinic, OpeningHours, Patient, Protocol, Session
from sessions.services import series_book
from tests.processes import RedisServer, free_port, wait_until

from .http_load import Outcome, Request, run_load
from .measure import Group, Options, Row, Target, Throughput
from .wrk import WrkOutcome, wrk_run

ROOT = Path(__file__).resolve().parent.parent
CLINICS = 4
PATIENTS_PER_CLINIC = 3_000
LINK_CLIENTS = 32
LINKS = 600  # patient links the load walks through, each opening its own session
LINK_SECONDS = 10
LINK_PER_SECOND = 300
LINK_P99_MS = 100
BOOKING_CLIENTS = 12
BOOKING_SECONDS = 15
BOOKING_PER_SECOND = 50


@dataclass
class LoadSite:
    """What the load needs: clinics with patients and a staff token, and a patient link."""

    clinics: list[Clinic]
    patients: dict[int, list[int]]
    protocols: dict[int, int]
    token: str
    link_tokens: list[str]


def load_benchmarks(options: Options) -> Group:
    group = Group(title="Load", description="")
    site = site_build()
    with own_redis() as redis, web_server(redis.url) as port:
        links_outcome = link_page_load(port, site)
        booking = booking_load(port, site, seconds=BOOKING_SECONDS, clients=BOOKING_CLIENTS)
    overlaps = overlap_pairs()
    link_errors = sum(links_outcome.errors.values())
    group.rows += [
        Row(f"patient link page: latency at {LINK_CLIENTS} clients", links_outcome.quantiles_ms),
        Row(f"patient link page: p99 latency at {LINK_CLIENTS} clients", [links_outcome.p99_ms],
            Target(median_ms=LINK_P99_MS, wording=f"p99 ≤ {LINK_P99_MS} ms")),
        Row(f"patient link page: {links_outcome.per_second():.0f} requests/s",
            [_per_thousand_ms(links_outcome) if not link_errors else float("inf")],
            Throughput(items=1000, per_second=LINK_PER_SECOND, unit="requests")),
        Row(f"booking API: {booking.per_second():.0f} series/s booked ({BOOKING_CLIENTS} clients)",
            [_per_item_ms(booking, 100, statuses=(201,))],
            Throughput(items=100, per_second=BOOKING_PER_SECOND, unit="series")),
    ]  # fmt: skip
    group.description = (
        f"gunicorn ({_gunicorn_shape()}) with scheduler.settings.production on 127.0.0.1; PostgreSQL, Redis "
        f"and the load generator on the same 2 cores. Link page (wrk, {LINK_CLIENTS} connections, each "
        f"walking through {len(site.link_tokens)} links to as many sessions): "
        f"{links_outcome.requests:,} GETs in {links_outcome.seconds:.1f} s, errors {links_outcome.errors} "
        f"(status: answers other than 2xx/3xx), max latency {links_outcome.max_ms:.0f} ms. "
        f"Booking: {booking.count:,} POST /api/series/ (6-session induction, auto-placed, {CLINICS} clinics) in "
        f"{booking.elapsed:.1f} s, statuses {booking.statuses} (409: the slot asked for was taken), "
        f"errors {booking.errors}; latency median {booking.percentile(50):.0f} ms, "
        f"p99 {booking.percentile(99):.0f} ms. "
        f"Afterwards, overlapping sessions on a chair or for a patient: {overlaps}."
    )
    if overlaps:
        group.notes.append(f"OVERLAPS FOUND: {overlaps}")
    if link_errors:
        group.notes.append(f"LINK PAGE ERRORS: {links_outcome.errors}")
    return group


def site_build(
    *, clinics: int = CLINICS, patients: int = PATIENTS_PER_CLINIC, texts: bool = False, links: int = LINKS
) -> LoadSite:
    """Clinics open 07:00–19:00 every day with 24 chairs, many patients (texted only with `texts`),
    a staff token, and patient links to the sessions of series booked in the first clinic."""
    built = []
    by_clinic: dict[int, list[int]] = {}
    protocols: dict[int, int] = {}
    for n in range(clinics):
        clinic = Clinic.objects.create(
            name=f"Load clinic {n}", time_zone="America/Phoenix", phone="+16025550100", address="1 Main St",
            sender_name="Desert Bloom", turnover_buffer_minutes=15, max_starts_per_slot=4,
        )  # fmt: skip
        OpeningHours.objects.bulk_create(
            OpeningHours(clinic=clinic, weekday=d, opens=time(7), closes=time(19)) for d in range(7)
        )
        Chair.objects.bulk_create(Chair(clinic=clinic, name=f"Chair {c:02d}") for c in range(1, 25))
        protocol = Protocol.objects.create(
            clinic=clinic, name="Depression induction", patient_name="Wellness series", session_count=6,
            chair_minutes=120, min_gap_days=1, max_gap_days=4,
        )  # fmt: skip
        Patient.objects.bulk_create(
            Patient(clinic=clinic, first_name="Load", last_name=f"Patient {n}-{p}", external_id=f"L{n}-{p}",
                    phone=f"+1602{n + 2}{p:06d}", email="", sms_enabled=texts, email_enabled=False)
            for p in range(patients)
        )  # fmt: skip
        by_clinic[clinic.pk] = list(Patient.objects.filter(clinic=clinic).values_list("pk", flat=True))
        protocols[clinic.pk] = protocol.pk
        built.append(clinic)
    user, _ = User.objects.get_or_create(username="load", defaults={"is_staff": True})
    user.groups.add(UserGroup.objects.get(name="Scheduler"))
    token = Token.objects.get_or_create(user=user)[0].key
    link_tokens = []
    protocol = Protocol.objects.get(pk=protocols[built[0].pk])
    for n in range(math.ceil(links / protocol.session_count)):
        patient = Patient.objects.get(pk=by_clinic[built[0].pk].pop())
        day = (timezone.now() + timedelta(days=300 + n)).astimezone(built[0].zone).date()
        first = datetime.combine(day, time(7)) + timedelta(minutes=15 * (n % 40))  # one series a slot
        series = series_book(patient=patient, protocol=protocol, first_start=first)
        link_tokens += [links_module.link_create(session=session) for session in series.sessions.all()]
    return LoadSite(built, by_clinic, protocols, token, link_tokens[:links])


@contextmanager
def web_server(redis_url: str, **extra: str) -> Iterator[int]:
    """gunicorn with production settings (HTTP on loopback: no TLS redirect), stopped afterwards."""
    port = free_port()
    db = connection.settings_dict
    database = f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "scheduler.settings.production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_SECURE_SSL_REDIRECT": "false",
        "DATABASE_URL": database,
        "REDIS_URL": redis_url,
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        # gunicorn.conf.py's defaults unless LOAD_GUNICORN_WORKERS / LOAD_GUNICORN_THREADS say otherwise.
        **_gunicorn_overrides(),
        # One address sends everything here: lift the per-address limits a real patient never meets.
        "LINK_RATE_PER_IP": "100000000",
        "LINK_RATE_BAD_TOKENS_PER_IP": "100000000",
        "LOG_LEVEL": "WARNING",
        **extra,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "scheduler.wsgi"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        wait_until(lambda: _answers(port), 30, "gunicorn to answer")
        yield port
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def link_page_load(port: int, site: LoadSite) -> WrkOutcome:
    paths = [f"/r/{token}" for token in site.link_tokens]
    url = f"http://127.0.0.1:{port}/"
    wrk_run(url, clients=LINK_CLIENTS, seconds=2, paths=paths)  # warm every worker up
    return wrk_run(url, clients=LINK_CLIENTS, seconds=LINK_SECONDS, paths=paths)


def booking_load(port: int, site: LoadSite, *, seconds: float, clients: int, keep: bool = False) -> Outcome:
    """POST /api/series/ for patients not booked yet, at random first starts on the slot grid."""
    rng = random.Random(7)
    headers = {"Authorization": f"Token {site.token}", "Content-Type": "application/json"}
    today = timezone.now().date()

    def booking() -> Request:
        clinic = rng.choice(site.clinics)
        patient = site.patients[clinic.pk].pop()
        day = today + timedelta(days=rng.randint(2, 120))
        first = datetime.combine(day, time(7)) + timedelta(minutes=15 * rng.randint(0, 40))
        body = {"patient": patient, "protocol": site.protocols[clinic.pk], "first_start": first.isoformat()}
        return "POST", "/api/series/", headers, json.dumps(body).encode()

    return run_load(port, booking, clients=clients, seconds=seconds, keep=keep)


def overlap_pairs() -> int:
    """Holding sessions that overlap on one chair (turnover included) or for one patient."""
    holding = list(Session.HOLDING)
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT
                 (SELECT count(*) FROM booking_session a JOIN booking_session b ON a.chair_id = b.chair_id
                   AND a.id < b.id AND a.starts_at < b.chair_free_at AND b.starts_at < a.chair_free_at
                   WHERE a.status = ANY(%s) AND b.status = ANY(%s))
               + (SELECT count(*) FROM booking_session a JOIN booking_session b ON a.patient_id = b.patient_id
                   AND a.id < b.id AND a.starts_at < b.ends_at AND b.starts_at < a.ends_at
                   WHERE a.status = ANY(%s) AND b.status = ANY(%s))""",
            [holding] * 4,
        )
        return cursor.fetchone()[0]


def _answers(port: int) -> bool:
    try:
        outcome = run_load(port, lambda: ("GET", "/healthz", {}, b""), clients=1, seconds=0.01)
    except OSError:
        return False
    return outcome.count > 0


@contextmanager
def own_redis() -> Iterator[RedisServer]:
    with TemporaryDirectory(prefix="load-redis-") as folder:
        server = RedisServer(Path(folder)).start()
        try:
            yield server
        finally:
            server.stop()


def _per_thousand_ms(outcome: WrkOutcome) -> float:
    """How long 1,000 requests took at the rate the run achieved."""
    return 1000 / outcome.per_second() * 1000 if outcome.requests else float("inf")


def _per_item_ms(outcome: Outcome, items: int, statuses: tuple[int, ...] | None = None) -> float:
    """How long `items` took at the rate the run achieved (counting only the given statuses)."""
    done = sum(n for s, n in outcome.statuses.items() if statuses is None or s in statuses)
    return items / (done / outcome.elapsed) * 1000 if done else float("inf")


def _gunicorn_overrides() -> dict[str, str]:
    given = {"GUNICORN_WORKERS": "LOAD_GUNICORN_WORKERS", "GUNICORN_THREADS": "LOAD_GUNICORN_THREADS"}
    return {name: os.environ[load] for name, load in given.items() if load in os.environ}


def _gunicorn_shape() -> str:
    settings = runpy.run_path(str(ROOT / "gunicorn.conf.py"), init_globals={})
    workers = os.environ.get("LOAD_GUNICORN_WORKERS", settings["workers"])
    threads = os.environ.get("LOAD_GUNICORN_THREADS", settings["threads"])
    return f"{workers} workers × {threads} thread{'s' if int(threads) > 1 else ''}"
