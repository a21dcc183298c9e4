"""Refill (issue 13): a month of the 24-chair bench clinic in simulated time, with cancels, no-shows
and a waitlist answering the offers the beat tick makes, all through the real code.

The calendar is laid out in bulk (bench/clinic.py); everything after that goes through the
services with `now` set to the simulated moment: a standing waitlist of 60 patients
(`waitlist_join`; whoever is booked from it, or whose window ends, is followed by a newcomer),
sessions are cancelled (`session_cancel`, whose receiver records the freed time as an `Opening`)
and marked no-show (`session_mark`), the tick offers the openings (`offers_tick`), and patients
accept or decline (`offer_accept`, `offer_decline`) or let the offer run out. Texts and emails
are planned as rows but never sent: what a patient does is drawn, at a fixed acceptance rate.
"""

import heapq
import math
import statistics
import time as clock
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from itertools import count
from random import Random
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Min

from notifications.offers import OPENINGS_PER_TICK, SHORTEST_OFFER, offers_tick, openings_due_a_look
from sessions.clock import local_date, wall_clock
from sessions.models import Offer, Opening, Session, WaitlistEntry
from sessions.services import session_cancel, session_mark
from sessions.waitlist import offer_accept, offer_decline, waitlist_candidates, waitlist_join, waitlist_remove

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
NO_SHOW_MARKED = timedelta(minutes=15)
# The waitlist stands at WAITLIST patients waiting at every moment: whoever is booked from it, or
# whose window ends, is followed at that moment by a newcomer. Who waits, for what: most for a
# booster (one session), a few for a 6-session induction, the first WAITLIST in these numbers,
# each newcomer drawn in their proportions.
WAITLIST = 60
WISHES = (("booster", 52), ("induction", 8))
# A patient can come on 5–14 days from the day they join.
WINDOW_DAYS = (5, 14)
ACCEPT_RATE = 0.11
# An offer not accepted is declined this often, else left to run out; an answer comes 1–30
# minutes after the offer (sooner when the offer is shorter).
DECLINE_SHARE = 0.5
ANSWER_WITHIN = timedelta(minutes=30)
# The beat tick as deployed runs every REMINDER_TICK_SECONDS (60); the simulation's runs on a
# 15-minute grid, the clinic's slot, which is also WAITLIST_RECHECK_MINUTES' default.
TICK = timedelta(minutes=15)
REFILL_AHEAD = timedelta(hours=24)
SHARE_TARGET_PERCENT = 50
FIRST_OFFER_TARGET_TICKS = 1


@dataclass(frozen=True)
class Bound:
    """A target on a number the simulation counts, not on a time: at least or at most `limit`,
    held by the row's median, or by its p95 (`on_p95`) where nearly every sample should keep it."""

    limit: float
    unit: str
    at_least: bool = False
    on_p95: bool = False

    def describe(self) -> str:
        return f"{'≥' if self.at_least else '≤'} {self.limit:g} {self.unit}" + (", p95" if self.on_p95 else "")

    def met_by(self, median: float, p95: float) -> bool:
        value = p95 if self.on_p95 else median
        return value >= self.limit if self.at_least else value <= self.limit


@dataclass
class _Run:
    """The simulated clock's queue of events, and what the simulation saw as it went."""

    bench: BenchClinic
    began: datetime
    # Openings starting sooner than this after `now` can be offered to nobody (rule 13's notice).
    dead_band: timedelta
    last_tick: datetime
    queue: list[tuple[datetime, int, Callable[[datetime], None]]] = field(default_factory=list)
    order: count = field(default_factory=count)
    tick_ms: list[float] = field(default_factory=list)
    answers: Counter[str] = field(default_factory=Counter)
    joins_refused: list[str] = field(default_factory=list)
    # Who joined the waitlist, by why: at the start, after a booking, after a window's end.
    joins: Counter[str] = field(default_factory=Counter)
    numbers: count = field(default_factory=lambda: count(900_000))
    # Openings some waiting patient fitted when their session was cancelled.
    fitted: set[int] = field(default_factory=set)
    first_looked: dict[int, datetime] = field(default_factory=dict)
    # Why the tick after a cancel offered its time to nobody; and, at the ticks that passed over
    # a new opening, where their looks went.
    first_look_misses: Counter[str] = field(default_factory=Counter)
    crowded_looks: Counter[str] = field(default_factory=Counter)
    # Openings the ticks looked at since the state last changed: looked at again, they give nothing.
    seen: set[int] = field(default_factory=set)

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
    # A clinic of its own: the booking group's is still in the database when every group runs.
    bench = bench_clinic_build(seed=options.seed, sessions=SESSIONS, patients=PATIENTS, name="Refill Clinic")
    database_analyze()
    rng = Random(options.seed)
    start = wall_clock(bench.first_date, time(0), bench.clinic.zone)
    month = (start + timedelta(days=LEAD_DAYS), start + timedelta(days=LEAD_DAYS + MONTH_DAYS))
    # The shortest notice any visit keeps, as openings_lapse_past_notice reads it.
    clinic = bench.clinic
    hours = clinic.self_service_notice_hours
    notice = timedelta(hours=clinic.cancellation_notice_hours if hours is None else hours)
    run = _Run(bench=bench, began=start, dead_band=notice + SHORTEST_OFFER, last_tick=start - TICK)
    plan = _month_plan(bench, month, rng, run)
    _waitlist_open(rng, run)
    simulated = clock.perf_counter()
    _simulate(run, rng, end=month[1])
    group = Group(title="Refill", description="")
    _rows(group, bench, plan, run)
    group.description = _describe(bench, plan, run, simulated - began, clock.perf_counter() - simulated)
    return group


def _openings_of_other_groups_drop() -> None:
    """The tick works on every clinic's openings, 20 at a time: those earlier groups left (the
    booking group's re-flows free the times they move from) would take the simulation's turns."""
    Opening.objects.all().delete()


def _month_plan(bench: BenchClinic, month: tuple[datetime, datetime], rng: Random, run: _Run) -> _Plan:
    """Draw the month's cancels (each at a random moment from the clock's start to 48 h before its
    session) and no-shows (marked 15 minutes after the start), and queue them."""
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
        run.at(run.began + (latest - run.began) * rng.random(), _cancelling(run, session))
    for session in no_shows:
        run.at(session.starts_at + NO_SHOW_MARKED, _missing(session))
    return _Plan(cancels=cancels, no_shows=no_shows, month_sessions=len(sessions))


def _cancelling(run: _Run, session: Session) -> Callable[[datetime], None]:
    def cancel(now: datetime) -> None:
        session_cancel(session=session, reason="bench: cancelled", now=now)
        opening = Opening.objects.select_related("clinic", "chair").get(freed_by=session)
        # Whether anyone on the list could take the time at all, asked of the tick's own search
        # without its "no other offer out": the first-offer target is held only where someone could.
        fits = waitlist_candidates(
            clinic=opening.clinic, starts_at=opening.starts_at, chair=opening.chair, self_service=True, limit=1,
            now=now,
        )  # fmt: skip
        if fits:
            run.fitted.add(opening.pk)

    return cancel


def _missing(session: Session) -> Callable[[datetime], None]:
    def miss(now: datetime) -> None:
        session_mark(session=session, status=Session.Status.NO_SHOW, now=now)

    return miss


def _waitlist_open(rng: Random, run: _Run) -> None:
    """The waitlist at the clock's start: WAITLIST patients, in WISHES' numbers."""
    wants = [key for key, many in WISHES for _ in range(many)]
    rng.shuffle(wants)
    for key in wants:
        _patient_join(rng, run, run.began, key, why="at the start")


def _patient_join(rng: Random, run: _Run, now: datetime, key: str, *, why: str) -> None:
    """A new patient joins the waitlist now, able to come on 5–14 days from today; a third keep to
    some weekdays, a quarter to mornings or afternoons, a quarter need the visit by a date. When
    their last day ends, they leave the list if still on it, and someone new joins."""
    bench = run.bench
    patient = patient_new(bench.clinic, next(run.numbers), prefix="W")  # a phone of their own each
    patient.save()
    zone = bench.clinic.zone
    earliest = local_date(now, zone)
    latest = earliest + timedelta(days=rng.randint(*WINDOW_DAYS) - 1)
    wish = {"patient": patient, "protocol": bench.protocols[key], "earliest": earliest, "latest": latest}
    wish.update(_preferences(rng, earliest, latest))
    try:
        entry = waitlist_join(**wish, now=now)
    except ValidationError as error:  # counted and shown: the month goes on without them
        run.joins_refused.append(f"{patient.external_id}: {error}")
        return
    run.joins[why] += 1
    run.at(wall_clock(latest + timedelta(days=1), time(0), zone), _window_ending(rng, run, entry))


def _newcomer_join(rng: Random, run: _Run, now: datetime, *, why: str) -> None:
    key = rng.choices([key for key, _ in WISHES], weights=[many for _, many in WISHES])[0]
    _patient_join(rng, run, now, key, why=why)


def _window_ending(rng: Random, run: _Run, entry: WaitlistEntry) -> Callable[[datetime], None]:
    def end(now: datetime) -> None:
        if waitlist_remove(entry=entry, now=now):
            _newcomer_join(rng, run, now, why="after another's window ended")

    return end


def _preferences(rng: Random, earliest: date, latest: date) -> dict[str, Any]:
    chosen: dict[str, Any] = {}
    if rng.random() < 1 / 3:
        chosen["weekdays"] = sorted(rng.sample(range(7), rng.randint(3, 5)))
    if rng.random() < 1 / 4:
        morning = rng.random() < 0.5
        chosen["not_before"], chosen["not_after"] = (OPENS, time(11)) if morning else (time(12), time(16))
    if rng.random() < 1 / 4:
        chosen["needed_by"] = earliest + timedelta(days=rng.randint(2, (latest - earliest).days))
    return chosen


def _simulate(run: _Run, rng: Random, *, end: datetime) -> None:
    """On the 15-minute grid: the events due by then, then a tick, and the answers to the offers
    it made queued."""
    tick_at = run.began
    while tick_at < end:
        changed = False
        while run.queue and run.queue[0][0] <= tick_at:
            moment, _, action = heapq.heappop(run.queue)
            action(moment)
            changed = True
        _tick(run, rng, tick_at, changed=changed)
        run.last_tick = tick_at
        tick_at = _next_tick(run, tick_at, end)


def _tick(run: _Run, rng: Random, now: datetime, *, changed: bool) -> None:
    new = list(Opening.objects.filter(status=Opening.Status.OPEN, created_at__gt=run.last_tick))
    began = clock.perf_counter()
    offers_tick(now=now)
    run.tick_ms.append((clock.perf_counter() - began) * 1000)
    # Every opening the tick looked at carries its time as checked_at.
    looked = set(Opening.objects.filter(checked_at=now).values_list("pk", flat=True))
    for opening_id in looked:
        run.first_looked.setdefault(opening_id, now)
    made = list(Offer.objects.filter(created_at=now).order_by("pk"))
    for offer in made:
        _answer_queue(run, rng, offer)
    ended = Offer.objects.filter(closed_at=now).exists() or Opening.objects.filter(closed_at=now).exists()
    run.seen = looked if changed or ended or made else run.seen | looked
    offered = {offer.opening_id for offer in made}
    for opening in new:
        if opening.pk not in offered:
            run.first_look_misses[_why_not_offered(opening, looked, now)] += 1
    if any(opening.pk not in looked for opening in new):
        _crowd_count(run, looked, offered, now)


def _why_not_offered(opening: Opening, looked: set[int], now: datetime) -> str:
    """Why the tick after a cancel offered its time to nobody, asked of the same candidate search
    without the tick's "no other offer out"."""
    if opening.pk not in looked:
        return f"not looked at, {OPENINGS_PER_TICK} sooner openings were due a look"
    fits = waitlist_candidates(
        clinic=opening.clinic, starts_at=opening.starts_at, chair=opening.chair, self_service=True, limit=1, now=now
    )
    return "every waiting patient it fitted had another offer out" if fits else "no waiting patient fitted it"


def _crowd_count(run: _Run, looked: set[int], offered: set[int], now: datetime) -> None:
    """Where the looks of a tick that passed over a new opening went."""
    dead = set(Opening.objects.filter(pk__in=looked, starts_at__lt=now + run.dead_band).values_list("pk", flat=True))
    run.crowded_looks["ticks"] += 1
    run.crowded_looks["inside the notice"] += len(dead)
    run.crowded_looks["offered"] += len(offered)
    run.crowded_looks["nobody offered"] += len(looked - dead - offered)


def _next_tick(run: _Run, tick_at: datetime, end: datetime) -> datetime:
    """The next tick on the 15-minute grid that can do anything: the next one, where it would look
    at an opening not looked at since the state last changed; else the one at or after the next
    moment the state changes (an event: a join, a window's end, a cancel, a no-show, an answer; an
    offer running out; an opening coming within the clinic's notice and SHORTEST_OFFER of its start,
    where it lapses). Between those moments the ticks
    would only look again, with nothing changed, at openings nobody was offered (the waiting
    patients a time fits only shrink as time passes, with the notice), so they are skipped. Run at
    every tick, the simulation made the same offers (each one's time, patient and end alike, over
    the whole month), in three times the wall-clock time: checked before the standing waitlist and
    the tick's least-recently-looked-at order, not since (a run of every tick now takes over 10
    minutes)."""
    following = tick_at + TICK
    if set(openings_due_a_look(now=following)[:OPENINGS_PER_TICK]) - run.seen:
        return following
    wakes = [run.queue[0][0]] if run.queue else []
    expiry = Offer.objects.filter(status=Offer.Status.OFFERED).aggregate(at=Min("expires_at"))["at"]
    soonest = Opening.objects.filter(status=Opening.Status.OPEN).aggregate(at=Min("starts_at"))["at"]
    wakes += [expiry] if expiry else []
    wakes += [soonest - run.dead_band] if soonest else []
    if not wakes:
        return end
    return max(following, run.began + TICK * math.ceil((min(wakes) - run.began) / TICK))


def _answer_queue(run: _Run, rng: Random, offer: Offer) -> None:
    """Accepted at ACCEPT_RATE, else declined or left to run out, drawn per offer."""
    draw = rng.random()
    within = min(ANSWER_WITHIN, offer.expires_at - offer.created_at - timedelta(minutes=1))
    answered = offer.created_at + timedelta(minutes=1) + (within - timedelta(minutes=1)) * rng.random()
    if draw < ACCEPT_RATE:
        run.at(answered, _accepting(rng, run, offer))
    elif draw < ACCEPT_RATE + (1 - ACCEPT_RATE) * DECLINE_SHARE:
        run.at(answered, lambda now: run.answers.update([f"decline: {offer_decline(offer=offer, now=now).outcome}"]))
    else:
        run.answers["left to run out"] += 1


def _accepting(rng: Random, run: _Run, offer: Offer) -> Callable[[datetime], None]:
    def accept(now: datetime) -> None:
        outcome = offer_accept(offer=offer, now=now).outcome
        run.answers[f"accept: {outcome}"] += 1
        if outcome == "accepted":
            _newcomer_join(rng, run, now, why="after another was booked")

    return accept


@dataclass(frozen=True)
class _Outcome:
    """The month as the database holds it at its end."""

    # The cancels' openings, and the rests of their times that shorter visits left (`_opening_rest`).
    openings: list[Opening]
    freed: dict[int, timedelta]  # by the cancelled session's id
    # By the filled opening's id, ≥ 24 h ahead: the part of the cancelled session's time it took.
    refilled: dict[int, timedelta]
    offers: int
    accepted: int
    # Ticks from each offered opening's cancel to its first offer, by opening id.
    first_offer: dict[int, int]


def _outcome(plan: _Plan) -> _Outcome:
    cancelled = {s.pk: s for s in plan.cancels}
    freed = {s.pk: s.ends_at - s.starts_at for s in plan.cancels}
    openings = list(Opening.objects.filter(freed_by_id__in=freed).order_by("starts_at", "pk"))
    refilled = {
        o.pk: _refilled_length(o, cancelled[o.freed_by_id])
        for o in openings
        if o.status == Opening.Status.FILLED and o.closed_at <= o.starts_at - REFILL_AHEAD
    }
    offers = Offer.objects.filter(opening__in=openings)
    firsts = dict(offers.values_list("opening").annotate(first=Min("created_at")).values_list("opening", "first"))
    created = {o.pk: o.created_at for o in openings}
    return _Outcome(
        openings=openings,
        freed=freed,
        refilled=refilled,
        offers=offers.count(),
        accepted=offers.filter(status=Offer.Status.ACCEPTED).count(),
        first_offer={pk: math.ceil((first - created[pk]) / TICK) for pk, first in firsts.items()},
    )


def _refilled_length(opening: Opening, cancelled: Session) -> timedelta:
    """The part of the cancelled session's time the waitlist's booking at the opening's start took
    (an induction's other sessions land on other days: they are not the freed time made good; a
    visit running past the cancelled one's end takes time that was free anyway)."""
    session = Session.objects.get(series_id=opening.filled_series_id, starts_at=opening.starts_at)
    return max(min(session.ends_at, cancelled.ends_at) - max(session.starts_at, cancelled.starts_at), timedelta())


def _rows(group: Group, bench: BenchClinic, plan: _Plan, run: _Run) -> None:
    out = _outcome(plan)
    fills = sum(1 for o in out.openings if o.status == Opening.Status.FILLED)
    freed = _hours(sum(out.freed.values(), timedelta()))
    refilled = _hours(sum(out.refilled.values(), timedelta()))
    fitted = [float(ticks) for pk, ticks in out.first_offer.items() if pk in run.fitted]
    group.rows += [
        Row(
            "share of the chair-hours cancels freed, refilled ≥ 24 h ahead (%)",
            [100 * refilled / freed],
            Bound(SHARE_TARGET_PERCENT, "%", at_least=True),
        ),
        Row(
            "ticks from a cancel to its first offer, cancels a waiting patient fitted",
            fitted,
            Bound(FIRST_OFFER_TARGET_TICKS, "tick", on_p95=True),
        ),
        Row(
            "ticks from a cancel to its first offer, every opening offered",
            [float(t) for t in out.first_offer.values()],
        ),
        Row("offers per fill", [out.offers / fills] if fills else []),
        Row("fills: openings booked from the waitlist", [float(fills)]),
        Row("chair-hours freed by cancels", [freed]),
        Row("chair-hours refilled ≥ 24 h ahead", [refilled]),
        Row("chair-hours of no-shows (cannot be refilled ahead)", [_hours(_length(plan.no_shows))]),
        Row("accept rate seen (% of offers made)", [100 * out.accepted / out.offers] if out.offers else []),
        Row("offers_tick: one tick (wall-clock ms)", run.tick_ms),
    ]
    group.notes += _notes(bench, plan, run, out)


def _notes(bench: BenchClinic, plan: _Plan, run: _Run, out: _Outcome) -> list[str]:
    return [
        _openings_note(run, out),
        _first_offer_note(run, out),
        _waitlist_note(bench, plan, run, out),
        "No-shows are counted apart: a no-show is known only once its start has passed (session_mark refuses "
        "before), and an opening is recorded only for time still ahead, so their chair time cannot be offered "
        f"ahead: {len(plan.no_shows)} no-shows, {Opening.objects.filter(freed_by__in=plan.no_shows).count()} "
        "openings.",
    ]


def _openings_note(run: _Run, out: _Outcome) -> str:
    outcomes = Counter(_fate(o, out) for o in out.openings)
    statuses = Counter(Offer.objects.filter(opening__in=out.openings).values_list("status", flat=True))
    return (
        f"Openings: {len(out.openings)} from {len(out.freed)} cancels: "
        + ", ".join(f"{name} {n}" for name, n in outcomes.most_common())
        + f". Offers: {out.offers}: "
        + ", ".join(f"{name} {n}" for name, n in statuses.most_common())
        + "; the answers drawn: "
        + ", ".join(f"{name} {n}" for name, n in sorted(run.answers.items()))
        + "."
    )


def _fate(opening: Opening, out: _Outcome) -> str:
    if opening.status == Opening.Status.FILLED:
        return "filled"
    return "offered, lapsed" if opening.pk in out.first_offer else "never offered"


def _first_offer_note(run: _Run, out: _Outcome) -> str:
    bands = Counter(_band(ticks) for ticks in out.first_offer.values())
    looks = [math.ceil((run.first_looked.get(o.pk, o.starts_at) - o.created_at) / TICK) for o in out.openings]
    return (
        "First offers, ticks after the cancel: "
        + ", ".join(f"{band} {bands[band]}" for band in _BANDS if bands[band])
        + f". A waiting patient fitted {len(run.fitted)} of the {len(out.openings)} times when they were freed. "
        "At the tick after its cancel, an opening not offered at once was: "
        + ", ".join(f"{why} ({n})" for why, n in run.first_look_misses.most_common())
        + f". Ticks from a cancel to the first tick that looked at its opening: median "
        f"{statistics.median(looks):.0f}, p95 {_p95(looks)}, most {max(looks)}." + _crowding(run)
    )


def _crowding(run: _Run) -> str:
    crowd = run.crowded_looks
    if not crowd["ticks"]:
        return ""
    looks = crowd["inside the notice"] + crowd["offered"] + crowd["nobody offered"]
    notice = _hours(run.dead_band - SHORTEST_OFFER)
    return (
        f" The {crowd['ticks']} ticks that passed over a new opening spent their {looks} looks: "
        f"{crowd['inside the notice']} on openings starting within the {notice:g} h notice and "
        f"{SHORTEST_OFFER.seconds // 60} minutes, which nobody can be offered any more; {crowd['offered']} made an "
        f"offer; {crowd['nobody offered']} found nobody to offer. Here a tick comes every "
        f"{TICK.seconds // 60} minutes, as often as an opening nobody fitted is due a look again "
        f"(WAITLIST_RECHECK_MINUTES), so the same soonest {OPENINGS_PER_TICK} take every tick's looks; the "
        f"deployed tick (REMINDER_TICK_SECONDS {settings.REMINDER_TICK_SECONDS:g}) gets "
        f"{settings.WAITLIST_RECHECK_MINUTES * 60 / settings.REMINDER_TICK_SECONDS:.0f} ticks between two looks "
        "at one opening, across every clinic's openings."
    )


_BANDS = ("1 tick", "2–4", "5–96 (a day)", "more")


def _band(ticks: int) -> str:
    return _BANDS[0] if ticks <= 1 else _BANDS[1] if ticks <= 4 else _BANDS[2] if ticks <= 96 else _BANDS[3]


def _waitlist_note(bench: BenchClinic, plan: _Plan, run: _Run, out: _Outcome) -> str:
    by_status = Counter(WaitlistEntry.objects.filter(clinic=bench.clinic).values_list("status", flat=True))
    rests = [o for o in out.openings if o.reason == "the rest of a freed time"]
    filled = {o.freed_by_id: timedelta() for o in out.openings if o.pk in out.refilled}
    for o in out.openings:
        if o.pk in out.refilled:
            filled[o.freed_by_id] += out.refilled[o.pk]
    left = [out.freed[pk] - taken for pk, taken in filled.items() if taken < out.freed[pk]]
    return (
        f"Waitlist: {run.joins.total()} patients joined it over the {LEAD_DAYS + MONTH_DAYS} simulated days, "
        + ", ".join(f"{n} {why}" for why, n in run.joins.most_common())
        + (f"; joins refused: {'; '.join(run.joins_refused)}" if run.joins_refused else "")
        + ". At the end: "
        + ", ".join(f"{name} {n}" for name, n in by_status.most_common())
        + f" (removed: their window ended). {len(rests)} openings were the rest of a cancelled session's time "
        f"that a shorter visit left (`_opening_rest`), {sum(o.pk in out.refilled for o in rests)} of them filled. "
        f"{len(left)} cancelled sessions were refilled only in part: {_hours(sum(left, timedelta())):.0f} "
        "chair-hours of them stay free (each piece shorter than REST_WORTH_OFFERING, or its rest not filled)."
    )


def _describe(bench: BenchClinic, plan: _Plan, run: _Run, build_seconds: float, simulate_seconds: float) -> str:
    every_tick = math.ceil((LEAD_DAYS + MONTH_DAYS) * timedelta(days=1) / TICK)
    return (
        f"A month ({MONTH_DAYS} days) of a clinic of {CHAIRS} chairs open {OPENS:%H:%M}–{CLOSES:%H:%M} every day "
        f"(the bench clinic, {bench.chair_fill:.0%} of its chair time booked: {plan.month_sessions:,} sessions in "
        f"the month), in simulated time: every service is called with `now` set to the simulated moment. "
        f"{CANCEL_SHARE:.0%} of the month's sessions ({len(plan.cancels)}) are cancelled through "
        f"`session_cancel`, each at a random moment from the clock's start ({LEAD_DAYS} days before the month) "
        f"to 48 h before its start; {NO_SHOW_SHARE:.0%} ({len(plan.no_shows)}) are marked no-show 15 minutes "
        f"after theirs. The waitlist stands at {WAITLIST} patients waiting at every moment: {WAITLIST} join "
        f"through `waitlist_join` at the clock's start ({_wishes(bench)}), and whenever one is booked from it, "
        f"or reaches the end of their window (and leaves it), a new patient joins at that moment, wishing for "
        f"either in the same proportions ({run.joins.total() - WAITLIST} joined so; see the notes). Each can come "
        f"on {WINDOW_DAYS[0]}–{WINDOW_DAYS[1]} days from the day they join; a third keep to some weekdays, a "
        f"quarter to mornings or afternoons, a quarter need the visit by a date. Every patient has a phone and an "
        f"email, so an offer reaches them at any hour. `offers_tick` runs on a {TICK.seconds // 60}-minute grid "
        f"with the settings as deployed (WAITLIST_OFFER_BATCH {settings.WAITLIST_OFFER_BATCH}, WAITLIST_OFFER_MINUTES "
        f"{settings.WAITLIST_OFFER_MINUTES}, WAITLIST_RECHECK_MINUTES {settings.WAITLIST_RECHECK_MINUTES}; "
        f"{OPENINGS_PER_TICK} openings a tick; the clinic's minimum notice "
        f"{_hours(run.dead_band - SHORTEST_OFFER):g} h); "
        f"a tick that could do nothing (it would only look again, with nothing changed since, at openings "
        f"nobody was offered) is skipped: {len(run.tick_ms):,} of the {every_tick:,} ticks ran (a run of "
        f"every tick made the same offers when last checked, before the standing waitlist and the tick's "
        f"least-recently-looked-at order). Each offer is accepted with probability {ACCEPT_RATE:.0%} (seeded), "
        f"else declined ({DECLINE_SHARE:.0%} of the rest) or left to run out; an answer comes 1–"
        f"{ANSWER_WITHIN.seconds // 60} minutes after its offer, inside its validity. Texts and emails are "
        f"planned, not sent. Every row but the last is a count, not a time: the median and p95 columns hold "
        f"its number in the unit the row names. Built in {build_seconds:.1f} s, simulated in "
        f"{simulate_seconds:.1f} s."
    )


def _wishes(bench: BenchClinic) -> str:
    return ", ".join(
        f"{n} for {bench.protocols[key].name} ({bench.protocols[key].session_count} "
        f"session{'s' if bench.protocols[key].session_count > 1 else ''})"
        for key, n in WISHES
    )


def _length(sessions: list[Session]) -> timedelta:
    return sum((s.ends_at - s.starts_at for s in sessions), timedelta())


def _p95(values: list[int]) -> int:
    return sorted(values)[math.ceil(0.95 * len(values)) - 1]


def _hours(span: timedelta) -> float:
    return span.total_seconds() / 3600
