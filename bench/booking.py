"""Booking: a series booked with auto-placement, a re-flow of its later sessions, and the slots
a session may move to, on a clinic whose calendar already holds 20,000 sessions."""

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from itertools import count
from random import Random

from django.dispatch import Signal
from django.utils import timezone

from sessions import signals
from sessions.calendar import BookingConflict, ClinicCalendar, Slot
from sessions.clock import day_bounds, to_utc
from sessions.models import Patient, Protocol, Series, Session
from sessions.selectors import session_slots
from sessions.services import series_book, series_reflow

from .clinic import (
    CELL_MINUTES,
    CHAIRS,
    CLOSES,
    NURSES,
    OPENS,
    PATIENTS_PER_NURSE,
    STAGGER_CAP,
    ZONE,
    BenchClinic,
    bench_clinic_build,
    naive_start,
    patient_new,
)
from .database import database_analyze
from .measure import Call, Group, Options, Prepare, Row, Target, captured_queries, profile_calls, time_calls

BOOKING_TARGET = Target(median_ms=15, p95_ms=40)
REFLOW_TARGET = Target(median_ms=20)
# Session 3 of a 6-session induction moves a day later: it and the three after it change.
REFLOW_FROM, REFLOW_MOVES = 3, 4
SLOTS_TARGET = Target(median_ms=30)
SLOT_DAYS = 14

_patient_numbers = count()


def booking_benchmarks(options: Options) -> Group:
    bench = bench_clinic_build(seed=options.seed)
    database_analyze()
    rng = Random(options.seed)
    group = Group(title="Booking", description=_describe(bench))
    _series_book_rows(group, bench, rng, options)
    _series_reflow_rows(group, bench, rng, options)
    _session_slots_rows(group, bench, rng, options)
    return group


def _series_book_rows(group: Group, bench: BenchClinic, rng: Random, options: Options) -> None:
    name = "series_book: 6-session induction, auto-placed, committed"
    prepare = _booking(bench, rng)
    samples = time_calls(prepare, count=options.iterations, warmup=options.warmup)
    booked = samples.pop("booked", [])
    refusals = Counter({label.partition(":")[2]: len(times) for label, times in samples.items()})
    group.rows.append(Row(name, booked, BOOKING_TARGET))
    if refusals:
        refused = [ms for times in samples.values() for ms in times]
        group.rows.append(Row("series_book refused: a rule broken, rolled back", refused))
    with _unheard(signals.sessions_booked):
        core = time_calls(prepare, count=options.iterations, warmup=options.warmup).get("booked", [])
    group.rows.append(Row("series_book, booking core alone: nothing listens to sessions_booked", core))
    queries = captured_queries(prepare)
    reminders = sum(1 for sql in queries if '"notifications_' in sql)
    group.notes.append(
        f"series_book: {options.iterations} bookings, each for a new patient, at a first start where the "
        f"first session still fits (drawn from days 1–{bench.open_starts[-1][0]}, as a scheduler picks one "
        f"from the open slots). Each commits, then is deleted untimed, so that every booking meets the "
        f"calendar as built: {len(booked)} booked, {refusals.total()} refused "
        f"({', '.join(f'{code} {n}' for code, n in refusals.most_common()) or 'none'}). "
        f"Queries in one booking: {len(queries)}, of which {reminders} plan its reminders (notifications/, "
        f"in the same transaction)."
    )
    if options.profile:
        group.profiles[name] = profile_calls(prepare, count=options.iterations)


def _series_reflow_rows(group: Group, bench: BenchClinic, rng: Random, options: Options) -> None:
    name = f"series_reflow: {REFLOW_MOVES} sessions of a 6-session induction re-spaced, committed"
    prepare = _reflowing(bench, rng)
    samples = time_calls(prepare, count=options.iterations, warmup=options.warmup)
    moved = samples.pop(f"moved:{REFLOW_MOVES}", [])
    group.rows.append(Row(name, moved, REFLOW_TARGET))
    others = Counter({label: len(times) for label, times in samples.items()})
    queries = captured_queries(prepare)
    reminders = sum(1 for sql in queries if '"notifications_' in sql)
    group.notes.append(
        f"series_reflow: {options.iterations} re-flows, each of a series booked untimed just before it for a new "
        f"patient (as series_book above), whose session {REFLOW_FROM} moves to the time session "
        f"{REFLOW_FROM + 1} holds, so that sessions {REFLOW_FROM}–6 all move (session {REFLOW_FROM + 1} on "
        f"takes the earliest day its gap allows). Each commits, then its series is deleted untimed: "
        f"{len(moved)} moved {REFLOW_MOVES} sessions"
        + (
            f", other outcomes not in the row: {', '.join(f'{k} {n}' for k, n in others.most_common())}"
            if others
            else ""
        )
        + f". Queries in one re-flow: {len(queries)}, of which {reminders} replan its reminders and staff tasks "
        f"(notifications/, in the same transaction)."
    )
    if options.profile:
        group.profiles[name] = profile_calls(prepare, count=options.iterations)


@contextmanager
def _unheard(signal: Signal) -> Iterator[None]:
    """The booking core alone: its receivers (reminder planning) are set aside for the block."""
    receivers = signal.receivers
    signal.receivers = []
    signal.sender_receivers_cache.clear()
    try:
        yield
    finally:
        signal.receivers = receivers
        signal.sender_receivers_cache.clear()


def _session_slots_rows(group: Group, bench: BenchClinic, rng: Random, options: Options) -> None:
    upcoming = Session.objects.filter(clinic=bench.clinic, status__in=Session.UPCOMING)
    cases = (
        (
            f"session_slots: {SLOT_DAYS} days, a session of the next {SLOT_DAYS} days",
            upcoming.filter(starts_at__lt=day_bounds(bench.day(SLOT_DAYS), bench.clinic.zone)[0]),
        ),
        (
            f"session_slots: {SLOT_DAYS} days, a booster (no series gap narrows the search)",
            upcoming.filter(series__protocol=bench.protocols["booster"]),
        ),
    )
    for name, sessions in cases:
        pool = list(sessions.select_related("clinic", "series__protocol"))
        offered: list[int] = []
        prepare = _listing(pool, rng, offered)
        samples = time_calls(prepare, count=options.iterations, warmup=options.warmup)
        group.rows.append(Row(name, samples["listed"], SLOTS_TARGET))
        measured = sorted(offered[options.warmup :])
        group.notes.append(
            f"{name.partition(', ')[2]}: {options.iterations} sessions drawn from {len(pool):,}; slots "
            f"offered median {measured[len(measured) // 2]}, max {measured[-1]}. "
            f"Queries per listing: {len(captured_queries(prepare))}."
        )
        if options.profile:
            group.profiles[name] = profile_calls(prepare, count=options.iterations)


def _booking(bench: BenchClinic, rng: Random) -> Prepare:
    protocol = bench.protocols["induction"]
    booked: list[int] = []

    def prepare() -> Call:
        # Each booking commits, then is deleted here, untimed: every booking meets the calendar as
        # built, instead of one that the benchmark itself keeps filling (and slowing) as it runs.
        Series.objects.filter(pk__in=booked).delete()
        booked.clear()
        patient = Patient.objects.bulk_create([patient_new(bench.clinic, next(_patient_numbers), prefix="N")])[0]
        return _book(protocol, patient, _open_first_start(bench, rng, protocol), booked)

    return prepare


def _reflowing(bench: BenchClinic, rng: Random) -> Prepare:
    protocol = bench.protocols["induction"]
    booked: list[int] = []

    def prepare() -> Call:
        # Untimed, as in _booking: the last call's series goes, and a fresh one is booked to re-flow.
        Series.objects.filter(pk__in=booked).delete()
        booked.clear()
        while True:
            patient = Patient.objects.bulk_create([patient_new(bench.clinic, next(_patient_numbers), prefix="R")])[0]
            try:
                series = series_book(
                    patient=patient, protocol=protocol, first_start=_open_first_start(bench, rng, protocol)
                )
            except BookingConflict:
                continue
            booked.append(series.pk)
            sessions = list(series.sessions.select_related("clinic", "series__protocol").order_by("number"))
            return _reflow(sessions[REFLOW_FROM - 1], sessions[REFLOW_FROM].starts_at)

    return prepare


def _reflow(session: Session, starts_at: datetime) -> Call:
    def call() -> str:
        try:
            changed = series_reflow(session=session, starts_at=starts_at, reason="bench")
        except BookingConflict as conflict:
            return f"refused:{conflict.code}"
        return f"moved:{len(changed)}"

    return call


def _open_first_start(bench: BenchClinic, rng: Random, protocol: Protocol) -> datetime:
    """A first start drawn from those open when the calendar was built, checked to be open still."""
    calendar = ClinicCalendar(bench.clinic, patient_id=0, now=timezone.now())
    length = timedelta(minutes=protocol.chair_minutes)
    for _ in range(100):
        first_start = naive_start(bench, *rng.choice(bench.open_starts))
        if isinstance(calendar.first_free(to_utc(first_start, calendar.zone), length, None), Slot):
            return first_start
    raise RuntimeError("The bench clinic has no open first start left.")


def _book(protocol: Protocol, patient: Patient, first_start: datetime, booked: list[int]) -> Call:
    def call() -> str:
        try:
            series = series_book(patient=patient, protocol=protocol, first_start=first_start)
        except BookingConflict as conflict:
            return f"refused:{conflict.code}"
        booked.append(series.pk)
        return "booked"

    return call


def _listing(pool: list[Session], rng: Random, offered: list[int]) -> Prepare:
    def prepare() -> Call:
        session = rng.choice(pool)

        def call() -> str:
            offered.append(len(session_slots(session=session, days=SLOT_DAYS)))
            return "listed"

        return call

    return prepare


def _describe(bench: BenchClinic) -> str:
    protocols = "; ".join(
        f"{p.name} {p.session_count} × {p.chair_minutes} min, {p.min_gap_days}–{p.max_gap_days} days apart"
        for p in bench.protocols.values()
    )
    return (
        f"One clinic in {ZONE} with {CHAIRS} chairs, open {OPENS:%H:%M}–{CLOSES:%H:%M} every day, "
        f"{CELL_MINUTES}-minute slots and turnover, {NURSES} nurses × {PATIENTS_PER_NURSE} patients all day, "
        f"at most {STAGGER_CAP} starts per slot. Protocols: {protocols}. Its calendar holds "
        f"{bench.sessions:,} booked or confirmed sessions over the {bench.days} days from tomorrow "
        f"({bench.series:,} series of {bench.patients:,} patients; {bench.past_sessions:,} earlier sessions of "
        f"theirs are completed, and {bench.completed_series:,} series with them), {bench.chair_fill:.0%} of the "
        f"chair time with turnover. Across a patient's series the calendar keeps rule 10: each protocol's "
        f"minimum gap between any two of their infusions, one active series per protocol. Built with "
        f"bulk_create in {bench.seconds:.1f} s."
    )
