"""Refill (issue 13): a month of the 24-chair bench clinic in simulated time, with cancels, no-shows
and a waitlist answering the offers the beat tick makes, all through the real code.

The calendar is laid out in bulk (bench/clinic.py); everything after that goes through the
services with `now` set to the simulated moment: patients join the waitlist (`waitlist_join`),
sessions are cancelled (`session_cancel`, whose receiver records the freed time as an `Opening`)
and marked no-show (`session_mark`), the tick offers the openings (`offers_tick`), and patients
accept or decline (`offer_accept`, `offer_decline`) or let the offer run out. Texts and emails
are planned as rows but never sent: what a patient does is drawn, at a fixed acceptance rate.
"""

import heapq
import math
import time as clock
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from itertools import count
from random import Random

from django.conf import settings
from django.db.models import Min

from notifications.offers import OPENINGS_PER_TICK, offers_tick
from sessions.clock import local_date, wall_clock
from sessions.models import Offer, Opening, Patient, Protocol, Session, WaitlistEntry
from sessions.services import session_cancel, session_mark
from sessions.waitlist import offer_accept, offer_decline, waitlist_join

from .clinic import CHAIRS, CLOSES, OPENS, BenchClinic, bench_clinic_build, patient_new
from .database import database_analyze
from .measure import Group, Options, Row

# 2,700 sessions fill 32 days at 70% of the chair time: the month, and the two days before it
# that the clock starts with, so that a session of the month's first day can be cancelled 48 h
# ahead too.
SESSIONS, PATIENTS = 2_700, 600
LEAD_DAYS, MONTH_DAYS = 2, 30
CANCEL_SHARE, NO_SHOW_SHARE = 0.08, 0.05
CANCEL_NOTICE = timedelta(hours=48)
# Who waits, for what: most for a booster (one session), a few for a 6-session induction.
WISHES = (("booster", 52), ("induction", 8))
ACCEPT_RATE = 0.11
# An offer not accepted is declined this often, else left to run out; an answer comes 1–30
# minutes after the offer (sooner when the offer is shorter).
DECLINE_SHARE = 0.5
ANSWER_WITHIN = timedelta(minutes=30)
# The beat tick as deployed runs every few seconds; the simulation's runs every 15 minutes, the
# clinic's slot, which is also WAITLIST_RECHECK_MINUTES.
TICK = timedelta(minutes=15)
REFILL_AHEAD = timedelta(hours=24)
SHARE_TARGET_PERCENT = 50
FIRST_OFFER_TARGET_TICKS = 1


@dataclass(frozen=True)
class Bound:
    """A target on a number the simulation counts, not on a time: at least or at most `limit`,
    held by the row's median, or by its p95 (`on_p95`) where every sample should keep it."""

    limit: float
    unit: str
    at_least: bool = False
    on_p95: bool = False

    def describe(self) -> str:
        return f"{'≥' if self.at_least else '≤'} {self.limit:g} {self.unit}" + (" (p95)" if self.on_p95 else "")

    def met_by(self, median: float, p95: float) -> bool:
        value = p95 if self.on_p95 else median
        return value >= self.limit if self.at_least else value <= self.limit


@dataclass
class _Run:
    """What the simulation saw as it went: the ticks it ran and what the patients answered."""

    began: datetime
    tick_ms: list[float] = field(default_factory=list)
    answers: Counter[str] = field(default_factory=Counter)
    joins_refused: list[str] = field(default_factory=list)
    # Events waiting for their moment: (at, order, what to do).
    queue: list[tuple[datetime, int, Callable[[datetime], None]]] = field(default_factory=list)
    order: count = field(default_factory=count)

    def at(self, moment: datetime, action: Callable[[datetime], None]) -> None:
        heapq.heappush(self.queue, (moment, next(self.order), action))


@dataclass(frozen=True)
class _Plan:
    cancels: list[Session]
    no_shows: list[Session]
    month_sessions: int


def refill_benchmarks(options: Options) -> Group:
    began = clock.perf_counter()
    _openings_of_other_groups_drop()
    bench = bench_clinic_build(seed=options.seed, sessions=SESSIONS, patients=PATIENTS)
    database_analyze()
    rng = Random(options.seed)
    start = wall_clock(bench.first_date, time(0), bench.clinic.zone)
    month = (start + timedelta(days=LEAD_DAYS), start + timedelta(days=LEAD_DAYS + MONTH_DAYS))
    run = _Run(began=start)
    plan = _month_plan(bench, month, rng, run)
    _waitlist_plan(bench, month, rng, run)
    simulated = clock.perf_counter()
    _simulate(run, rng, end=month[1])
    group = Group(title="Refill", description="")
    _rows(group, bench, plan, run)
    group.description = _describe(bench, plan, run, simulated - began, clock.perf_counter() - simulated)
    return group


def _openings_of_other_groups_drop() -> None:
    """The tick works on every clinic's openings, the 20 soonest first: those earlier groups left
    (the booking group's re-flows free the times they move from) would take the simulation's places."""
    Opening.objects.all().delete()


def _month_plan(bench: BenchClinic, month: tuple[datetime, datetime], rng: Random, run: _Run) -> _Plan:
    """Draw the month's cancels (each at a random moment at least 48 h before its session) and
    no-shows (marked 15 minutes after the start), and queue them."""
    sessions = list(
        Session.objects.filter(
            clinic=bench.clinic, status__in=Session.UPCOMING, starts_at__gte=month[0], starts_at__lt=month[1]
        ).order_by("starts_at", "pk")
    )
    drawn = rng.sample(sessions, round((CANCEL_SHARE + NO_SHOW_SHARE) * len(sessions)))
    cancels = drawn[: round(CANCEL_SHARE * len(sessions))]
    no_shows = drawn[len(cancels) :]
    for session in cancels:
        latest = session.starts_at - CANCEL_NOTICE
        moment = run.began + (latest - run.began) * rng.random()
        run.at(moment, _cancelling(session))
    for session in no_shows:
        run.at(session.starts_at + timedelta(minutes=15), _missing(session))
    return _Plan(cancels=cancels, no_shows=no_shows, month_sessions=len(sessions))


def _cancelling(session: Session) -> Callable[[datetime], None]:
    return lambda now: session_cancel(session=session, reason="bench: cancelled", now=now) and None


def _missing(session: Session) -> Callable[[datetime], None]:
    return lambda now: session_mark(session=session, status=Session.Status.NO_SHOW, now=now) and None


def _waitlist_plan(bench: BenchClinic, month: tuple[datetime, datetime], rng: Random, run: _Run) -> None:
    """Queue the waiting patients' joins: each can come on 5–14 days somewhere in the month, and
    joins at a random moment before the first of them; a third keep to some weekdays, a quarter
    to mornings or afternoons, a quarter need the visit by a date."""
    wants = [bench.protocols[key] for key, many in WISHES for _ in range(many)]
    rng.shuffle(wants)
    patients = Patient.objects.bulk_create(
        patient_new(bench.clinic, 900_000 + n, prefix="W") for n in range(len(wants))
    )
    zone = bench.clinic.zone
    first_day, last_day = local_date(month[0], zone), local_date(month[1], zone) - timedelta(days=1)
    for patient, protocol in zip(patients, wants, strict=True):
        earliest = first_day + timedelta(days=rng.randrange((last_day - first_day).days - 4))
        latest = min(earliest + timedelta(days=rng.randint(4, 13)), last_day)
        wish = {"patient": patient, "protocol": protocol, "earliest": earliest, "latest": latest}
        wish.update(_preferences(rng, earliest, latest))
        joins = wall_clock(earliest, time(0), zone) - timedelta(days=1)
        run.at(run.began + (joins - run.began) * rng.random(), _joining(run, wish))


def _preferences(rng: Random, earliest: date, latest: date) -> dict:
    chosen: dict = {}
    if rng.random() < 1 / 3:
        chosen["weekdays"] = sorted(rng.sample(range(7), rng.randint(3, 5)))
    if rng.random() < 1 / 4:
        morning = rng.random() < 0.5
        chosen["not_before"], chosen["not_after"] = (OPENS, time(11)) if morning else (time(12), time(16))
    if rng.random() < 1 / 4:
        chosen["needed_by"] = earliest + timedelta(days=rng.randint(2, max(2, (latest - earliest).days)))
    return chosen


def _joining(run: _Run, wish: dict) -> Callable[[datetime], None]:
    def join(now: datetime) -> None:
        try:
            waitlist_join(**wish, now=now)
        except Exception as error:  # a wish the service refuses is counted, not fatal to the month
            run.joins_refused.append(f"{wish['patient'].external_id}: {error}")

    return join


def _simulate(run: _Run, rng: Random, *, end: datetime) -> None:
    """Every 15 simulated minutes: the events due by then, then a tick, and the answers to the
    offers it made queued. A stretch with no opening open and no offer out is skipped to the tick
    after the next event: no tick would do anything in it."""
    tick_at = run.began
    while tick_at < end:
        while run.queue and run.queue[0][0] <= tick_at:
            moment, _, action = heapq.heappop(run.queue)
            action(moment)
        ticked = clock.perf_counter()
        offers_tick(now=tick_at)
        run.tick_ms.append((clock.perf_counter() - ticked) * 1000)
        for offer in Offer.objects.filter(created_at=tick_at).order_by("pk"):
            _answer_queue(run, rng, offer)
        if _work_left() or not run.queue:
            tick_at += TICK
        else:
            tick_at = run.began + TICK * math.ceil((run.queue[0][0] - run.began) / TICK)


def _work_left() -> bool:
    return Opening.objects.filter(status=Opening.Status.OPEN).exists() or (
        Offer.objects.filter(status=Offer.Status.OFFERED).exists()
    )


def _answer_queue(run: _Run, rng: Random, offer: Offer) -> None:
    """Accepted at ACCEPT_RATE, else declined or left to run out, each drawn per offer."""
    draw = rng.random()
    within = min(ANSWER_WITHIN, offer.expires_at - offer.created_at - timedelta(minutes=1))
    answered = offer.created_at + timedelta(minutes=1) + (within - timedelta(minutes=1)) * rng.random()
    if draw < ACCEPT_RATE:
        run.at(answered, lambda now: run.answers.update([f"accept: {offer_accept(offer=offer, now=now).outcome}"]))
    elif draw < ACCEPT_RATE + (1 - ACCEPT_RATE) * DECLINE_SHARE:
        run.at(answered, lambda now: run.answers.update([f"decline: {offer_decline(offer=offer, now=now).outcome}"]))
    else:
        run.answers["left to run out"] += 1


def _rows(group: Group, bench: BenchClinic, plan: _Plan, run: _Run) -> None:
    freed = {s.pk: s.ends_at - s.starts_at for s in plan.cancels}
    openings = list(Opening.objects.filter(freed_by_id__in=freed).order_by("starts_at"))
    filled = [o for o in openings if o.status == Opening.Status.FILLED]
    refilled = {o.pk: min(_refilled_length(o), freed[o.freed_by_id]) for o in filled}
    ahead = sum((refilled[o.pk] for o in filled if o.closed_at <= o.starts_at - REFILL_AHEAD), timedelta())
    offers = Offer.objects.filter(opening__in=openings)
    made = offers.count()
    firsts = dict(offers.values_list("opening").annotate(first=Min("created_at")).values_list("opening", "first"))
    ticks = [math.ceil((firsts[o.pk] - o.created_at) / TICK) for o in openings if o.pk in firsts]
    freed_hours = _hours(sum(freed.values(), timedelta()))
    no_show_hours = _hours(sum((s.ends_at - s.starts_at for s in plan.no_shows), timedelta()))
    share = 100 * _hours(ahead) / freed_hours if freed_hours else 0.0
    accepted = offers.filter(status=Offer.Status.ACCEPTED).count()
    group.rows += [
        Row(
            "chair-hours freed by cancels and refilled ≥ 24 h ahead, % (value in both columns)",
            [share],
            Bound(SHARE_TARGET_PERCENT, "%", at_least=True),
        ),
        Row(
            "ticks from a cancel to its first offer, openings offered at all",
            [float(t) for t in ticks],
            Bound(FIRST_OFFER_TARGET_TICKS, "tick", on_p95=True),
        ),
        Row("offers per fill", [made / len(filled)] if filled else []),
        Row("fills (openings booked from the waitlist)", [float(len(filled))]),
        Row("chair-hours freed by cancels", [freed_hours]),
        Row("chair-hours refilled ≥ 24 h ahead", [_hours(ahead)]),
        Row("chair-hours of no-shows (not refillable ahead)", [no_show_hours]),
        Row("accept rate seen, % of offers made", [100 * accepted / made] if made else []),
        Row("offers_tick: one simulated tick, wall-clock ms", run.tick_ms),
    ]
    group.notes += _notes(bench, plan, run, openings, firsts, ticks, made)


def _refilled_length(opening: Opening) -> timedelta:
    """Chair time the waitlist's booking took at the opening's start (its series' other
    sessions, for an induction, land on other days and are not freed time made good)."""
    session = Session.objects.get(series_id=opening.filled_series_id, starts_at=opening.starts_at)
    return session.ends_at - session.starts_at


def _hours(span: timedelta) -> float:
    return span.total_seconds() / 3600


def _notes(
    bench: BenchClinic,
    plan: _Plan,
    run: _Run,
    openings: list[Opening],
    firsts: dict[int, datetime],
    ticks: list[int],
    made: int,
) -> list[str]:
    entries = WaitlistEntry.objects.filter(clinic=bench.clinic)
    by_status = Counter(entries.values_list("status", flat=True))
    outcomes = Counter(
        "filled"
        if o.status == Opening.Status.FILLED
        else ("offered, not filled" if o.pk in firsts else "never offered")
        for o in openings
    )
    statuses = Counter(Offer.objects.filter(opening__in=openings).values_list("status", flat=True))
    spread = Counter(ticks)
    demand = _hours(
        sum(
            (
                timedelta(minutes=p.chair_minutes)
                for p in Protocol.objects.filter(waitlist_entries__clinic=bench.clinic)
            ),
            timedelta(),
        )
    )
    return [
        f"Openings: {len(openings)} from {len(plan.cancels)} cancels; "
        + ", ".join(f"{name} {n}" for name, n in outcomes.most_common())
        + f". Offers: {made}, "
        + ", ".join(f"{name} {n}" for name, n in statuses.most_common())
        + ". Answers drawn: "
        + ", ".join(f"{name} {n}" for name, n in sorted(run.answers.items()))
        + ".",
        "Ticks from a cancel to its first offer: "
        + ", ".join(f"{t} tick{'s' if t != 1 else ''}: {n}" for t, n in sorted(spread.items()))
        + ".",
        f"Waitlist at the month's end: "
        + ", ".join(f"{name} {n}" for name, n in by_status.most_common())
        + f" of {sum(by_status.values())}"
        + (f"; joins refused: {'; '.join(run.joins_refused)}" if run.joins_refused else "")
        + f". Had every waiting patient been booked into freed time, they would have taken {demand:.0f} "
        f"chair-hours, the most the waitlist can refill.",
        "No-shows: a no-show is known only once its start has passed (session_mark refuses before), and an "
        "opening is recorded only for time still ahead, so their chair time cannot be offered ahead; it is "
        f"counted apart: {len(plan.no_shows)} sessions, "
        f"{Opening.objects.filter(freed_by__in=plan.no_shows).count()} openings.",
    ]


def _describe(bench: BenchClinic, plan: _Plan, run: _Run, build_seconds: float, simulate_seconds: float) -> str:
    return (
        f"A month ({MONTH_DAYS} days) of a clinic of {CHAIRS} chairs open {OPENS:%H:%M}–{CLOSES:%H:%M} every day "
        f"(the bench clinic, {bench.chair_fill:.0%} of its chair time booked: {plan.month_sessions:,} sessions in "
        f"the month), in simulated time: every service is called with `now` set to the simulated moment. "
        f"{CANCEL_SHARE:.0%} of the month's sessions ({len(plan.cancels)}) are cancelled through "
        f"`session_cancel`, each at a random moment from the clock's start ({LEAD_DAYS} days before the month) "
        f"to 48 h before its start; {NO_SHOW_SHARE:.0%} ({len(plan.no_shows)}) are marked no-show 15 minutes "
        f"after theirs. {sum(n for _, n in WISHES)} patients join the waitlist through `waitlist_join` "
        f"({', '.join(f'{n} for a {key}' for key, n in WISHES)}), at a random moment before their first day, "
        f"each able to come on 5–14 days of the month; a third keep to some weekdays, a quarter to mornings or "
        f"afternoons, a quarter need the visit by a date. Every patient has a phone and an email, so an offer "
        f"reaches them at any hour. `offers_tick` runs every {TICK.seconds // 60} simulated minutes "
        f"(stretches with no opening open and no offer out are skipped: {len(run.tick_ms):,} ticks ran) with the "
        f"settings as deployed: WAITLIST_OFFER_BATCH {settings.WAITLIST_OFFER_BATCH}, WAITLIST_OFFER_MINUTES "
        f"{settings.WAITLIST_OFFER_MINUTES}, WAITLIST_RECHECK_MINUTES {settings.WAITLIST_RECHECK_MINUTES}, "
        f"{OPENINGS_PER_TICK} openings a tick, the clinic's 24 h minimum notice. Each offer is accepted with "
        f"probability {ACCEPT_RATE:.0%} (seeded), else declined ({DECLINE_SHARE:.0%} of the rest) or left to "
        f"run out; an answer comes 1–{ANSWER_WITHIN.seconds // 60} minutes after its offer, inside its "
        f"validity. Texts and emails are planned, not sent. Rows other than the tick's are counts: the "
        f"median and p95 columns hold the number in the unit the row names. Built in {build_seconds:.1f} s, "
        f"simulated in {simulate_seconds:.1f} s."
    )
