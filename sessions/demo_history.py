"""The demo clinic's past four weeks, so that the Reports page has figures and the month view
shades the days behind: booster visits of some thirty patients and four depression inductions,
with what became of each visit as a clinic's records would hold it.

The rows are written directly: the booking services refuse a time in the past. What booking
would check is kept here by construction. Each chair works in turns of one visit and the
turnover buffer, inside the day's opening hours, never two at once (the demo's nurses can watch
every chair), and the chairs' turns start in different slots, so no slot gets more starts than
the stagger cap; a patient comes at most once a day (boosters a week apart at least). Everyone
here is new to the demo, so rule 10's look back at a patient's visits never meets the demo's
future bookings. Drawn from a seeded Random: the same visits on every run of a day.
"""

import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from random import Random

from django.contrib.auth.base_user import AbstractBaseUser

from scheduler.bulk import rows_create

from .clock import dates_between, local_date, wall_clock
from .models import Chair, Clinic, OpeningHours, Patient, Protocol, Series, Session

Status = Session.Status

SEED = 20260105
# The days before today that, with today, make the Reports page's default four weeks.
DAYS = 27
VISITS_A_DAY = (4, 7)
BOOSTER_WEEKS_APART = timedelta(days=7)
NEW_PATIENT_SHARE = 0.35  # of the boosters that a returning patient could take: a new patient's
NO_SHOW_SHARE = 0.05
CANCELLED_SHARE = 0.08
LATE_CANCEL_SHARE = 1 / 3  # of the cancellations: inside the clinic's notice
CONFIRMED_SHARE = 0.70
LEAD_DAYS = (2, 30, 6)  # a visit is booked this many days ahead: least, most, most often
FRONT_DESK = (time(9), time(17, 30))  # when the front desk books, clinic time
CANCEL_REASONS = ("Patient called: unwell", "No driver that day", "Work conflict", "Travelling",
                  "Patient asked by link", "Family emergency")  # fmt: skip

# (first name, last name, language): the booster patients, then the four inductions'.
_BOOSTER_PATIENTS = (
    ("Harold", "Jensen", "en"), ("Maribel", "Soto", "es"), ("Kevin", "O'Brien", "en"), ("Priya", "Raman", "en"),
    ("Dolores", "Castillo", "es"), ("Marcus", "Bell", "en"), ("Hannah", "Lindqvist", "en"),
    ("Tomás", "Aguilar", "es"), ("Grace", "Yazzie", "en"), ("Wendell", "Price", "en"), ("Mei", "Chen", "en"),
    ("Rosa", "Delgado", "es"), ("Brian", "Hughes", "en"), ("Fatima", "Haddad", "en"), ("Victor", "Ramírez", "es"),
    ("Shannon", "Murphy", "en"), ("Darnell", "Washington", "en"), ("Ingrid", "Olsen", "en"),
    ("Héctor", "Villanueva", "es"), ("Naomi", "Begay", "en"), ("Gregory", "Sloan", "en"),
    ("Lorraine", "Dubois", "en"), ("Ahmed", "Karimi", "en"), ("Carmen", "Ibarra", "es"), ("Ethan", "Caldwell", "en"),
    ("Yolanda", "Pierce", "en"), ("Daniel", "Okonkwo", "en"), ("Beatriz", "Fuentes", "es"),
    ("Walter", "Nakamura", "en"), ("Ruth", "Feldman", "en"), ("Isaac", "Tsosie", "en"), ("Joanne", "Vance", "en"),
    ("Luis", "Camacho", "es"), ("Megan", "Stroud", "en"),
)  # fmt: skip
_INDUCTION_PATIENTS = (("Eleanor", "Whitfield", "en"), ("Gabriel", "Montoya", "es"), ("Trevor", "Hale", "en"),
                       ("Sofia", "Marchetti", "en"))  # fmt: skip
# MRNs and phones apart from the demo's own (DB-1xxx, +1602555010x/011x); 555-01xx numbers are fictional.
MRN_FIRST, PHONE_FIRST = 3001, 120


@dataclass(frozen=True)
class _Induction:
    start: int  # the first visit's open day, counted from the history's first
    off_protocol_gap: int | None = None  # a gap this many days long, outside the protocol's
    missed: int | None = None  # the number of the session the patient did not come to


# Four inductions that finished in the four weeks: two on protocol, one with a gap too long
# (the patient travelled) and one with a visit missed.
_INDUCTIONS = (_Induction(0, off_protocol_gap=6), _Induction(2, missed=3), _Induction(4), _Induction(6))


@dataclass
class _Visit:
    starts: datetime
    ends: datetime
    chair: Chair
    patient: int  # index in the plan's patients
    series: int  # index in the plan's series
    number: int = 1
    status: str = Status.COMPLETED
    late: bool = False  # cancelled inside the clinic's notice


@dataclass
class _Plan:
    """Where every visit goes; what became of it is drawn afterwards."""

    visits: list[_Visit] = field(default_factory=list)
    series: list[tuple[Protocol, int]] = field(default_factory=list)  # each series' protocol and patient
    patients: list[tuple[str, str, str]] = field(default_factory=list)

    def series_add(self, protocol: Protocol, patient: int) -> int:
        self.series.append((protocol, patient))
        return len(self.series) - 1

    def patient_add(self, person: tuple[str, str, str]) -> int:
        self.patients.append(person)
        return len(self.patients) - 1


def _history_exists(clinic: Clinic, now: datetime) -> bool:
    """Any visit before today: the history was seeded on an earlier run (or the clinic is in use)."""
    today_starts = wall_clock(local_date(now, clinic.zone), time(0), clinic.zone)
    return clinic.sessions.filter(starts_at__lt=today_starts).exists()


def demo_history_seed(
    *, clinic: Clinic, protocols: dict[str, Protocol], user: AbstractBaseUser, now: datetime
) -> list[Session]:
    """The past four weeks' visits, in start order, each with its series and patient loaded (for
    `notifications.demo`, which writes their messages). Nothing when there is history already."""
    if _history_exists(clinic, now):
        return []
    rng = Random(SEED)
    plan = _Plan()
    hours = {h.weekday: h for h in clinic.opening_hours.all()}
    days = _open_days(clinic, set(hours), local_date(now, clinic.zone))
    chairs = list(clinic.chairs.filter(is_active=True).order_by("name"))
    turns = {day: _turns(clinic, hours[day.weekday()], chairs, day, protocols["Booster"]) for day in days}
    _inductions_place(plan, clinic, days, turns, protocols["Depression induction"], rng)
    _boosters_place(plan, days, turns, protocols["Booster"], rng)
    _outcomes_draw(plan, rng)
    return _write(plan, clinic, set(hours), user, rng)


# Where the visits go -------------------------------------------------------------------------------


def _open_days(clinic: Clinic, weekdays: set[int], today: date) -> list[date]:
    first = today - timedelta(days=DAYS)
    closed = set(clinic.closed_dates.filter(date__gte=first).values_list("date", flat=True))
    return [d for d in dates_between(first, today - timedelta(days=1)) if d.weekday() in weekdays and d not in closed]


def _turns(
    clinic: Clinic, hours: OpeningHours, chairs: list[Chair], day: date, protocol: Protocol
) -> list[tuple[Chair, datetime]]:
    """Each chair's visits of the day end to end, with the turnover buffer, inside opening hours.
    The chairs start one slot after another, as many at a time as the stagger cap allows: with the
    demo's six chairs the last starts well before the first chair's next turn, so no slot holds
    more starts than the cap."""
    slot = timedelta(minutes=clinic.slot_minutes)
    length = timedelta(minutes=protocol.chair_minutes)
    step = _on_grid(length + timedelta(minutes=clinic.turnover_buffer_minutes), slot)
    opens, closes = (wall_clock(day, at, clinic.zone) for at in (hours.opens, hours.closes))
    together = clinic.max_starts_per_slot or len(chairs)
    found = []
    for n, chair in enumerate(chairs):
        starts = opens + (n // together) * slot
        while starts + length <= closes:
            found.append((chair, starts))
            starts += step
    return sorted(found, key=lambda turn: (turn[1], turn[0].name))


def _on_grid(span: timedelta, slot: timedelta) -> timedelta:
    return -(-span // slot) * slot


def _inductions_place(plan: _Plan, clinic: Clinic, days: list[date], turns: dict, protocol: Protocol,
                      rng: Random) -> None:  # fmt: skip
    """Each induction keeps one chair and time of day, as booking places a series (rule 7): the
    n-th takes the 5n-th turn of its days, a chair of its own."""
    open_days = set(days)
    for n, spec in enumerate(_INDUCTIONS):
        if spec.start >= len(days):
            continue
        dates = _series_days(days[spec.start], spec, protocol, open_days, rng)
        if dates[-1] > days[-1]:
            continue
        chair, at = turns[dates[0]][5 * n % len(turns[dates[0]])]
        clock = at.astimezone(clinic.zone).time()
        patient = plan.patient_add(_INDUCTION_PATIENTS[n])
        series = plan.series_add(protocol, patient)
        for number, day in enumerate(dates, 1):
            starts = wall_clock(day, clock, clinic.zone)
            ends = starts + timedelta(minutes=protocol.chair_minutes)
            status = Status.NO_SHOW if number == spec.missed else Status.COMPLETED
            plan.visits.append(_Visit(starts, ends, chair, patient, series, number, status))


def _series_days(first: date, spec: _Induction, protocol: Protocol, open_days: set[date], rng: Random) -> list[date]:
    """The days of an induction, 1 to 3 days apart; the spec's long gap after a drawn session."""
    dates = [first]
    long_gap_after = rng.randrange(2, protocol.session_count - 1)
    last_open = max(open_days)
    while len(dates) < protocol.session_count:
        gap = rng.choice((1, 2, 2, 3))
        if spec.off_protocol_gap and len(dates) == long_gap_after:
            gap = spec.off_protocol_gap
        day = dates[-1] + timedelta(days=gap)
        # A closed day (a Sunday) moves the visit to the next open one: a gap of 4 at most.
        while day not in open_days and day <= last_open:
            day += timedelta(days=1)
        dates.append(day)
    return dates


def _boosters_place(plan: _Plan, days: list[date], turns: dict, protocol: Protocol, rng: Random) -> None:
    """Each day gets 4 to 7 visits: the inductions', then boosters in free turns. A booster goes to
    a patient whose last one is a week back or more, or to a new patient."""
    held = {(v.chair.pk, v.starts) for v in plan.visits}
    last_visit: dict[int, date] = {}
    waiting = list(_BOOSTER_PATIENTS)
    for day in days:
        free = [(chair, at) for chair, at in turns[day] if (chair.pk, at) not in held]
        inductions = len(turns[day]) - len(free)
        count = min(max(rng.randint(*VISITS_A_DAY) - inductions, 0), len(free))
        for chair, starts in sorted(rng.sample(free, count), key=lambda turn: turn[1]):
            due = [p for p, last in last_visit.items() if day - last >= BOOSTER_WEEKS_APART]
            if waiting and (not due or rng.random() < NEW_PATIENT_SHARE):
                patient = plan.patient_add(waiting.pop(0))
            elif due:
                patient = rng.choice(due)
            else:
                continue
            last_visit[patient] = day
            ends = starts + timedelta(minutes=protocol.chair_minutes)
            plan.visits.append(_Visit(starts, ends, chair, patient, plan.series_add(protocol, patient)))
    plan.visits.sort(key=lambda v: (v.starts, v.chair.name))


def _outcomes_draw(plan: _Plan, rng: Random) -> None:
    """No-shows and cancellations in their shares of all visits, drawn among the boosters (the
    inductions' outcomes are their specs'); a third of the cancellations late."""
    boosters = [v for v in plan.visits if plan.series[v.series][0].session_count == 1]
    missed = sum(v.status == Status.NO_SHOW for v in plan.visits)
    no_shows = max(round(NO_SHOW_SHARE * len(plan.visits)) - missed, 0)
    cancels = round(CANCELLED_SHARE * len(plan.visits))
    drawn = rng.sample(boosters, no_shows + cancels)
    for visit in drawn[:no_shows]:
        visit.status = Status.NO_SHOW
    for n, visit in enumerate(drawn[no_shows:]):
        visit.status = Status.CANCELLED
        visit.late = n < max(round(LATE_CANCEL_SHARE * cancels), 2)


# What became of them ----------------------------------------------------------------------------


@dataclass
class _Moments:
    confirmed: datetime | None = None
    changed: datetime | None = None
    chair_in: datetime | None = None
    chair_out: datetime | None = None


def _write(plan: _Plan, clinic: Clinic, open_weekdays: set[int], user: AbstractBaseUser, rng: Random) -> list[Session]:
    patients = _patients(plan, clinic)
    visits: dict[int, list[_Visit]] = defaultdict(list)
    for visit in plan.visits:
        visits[visit.series].append(visit)
    series = [
        Series(patient=patients[patient], protocol=protocol, clinic=clinic, created_by=user,
               status=_series_status(visits[n]))
        for n, (protocol, patient) in enumerate(plan.series)
    ]  # fmt: skip
    rows_create(series)
    for n, row in enumerate(series):
        row.created_at = _booking_moment(clinic, visits[n][0].starts, open_weekdays, rng)
    sessions = []
    for visit in plan.visits:
        row = series[visit.series]
        moments = _moments(clinic, visit, row.created_at, rng)
        sessions.append(_session(clinic, visit, row, patients[visit.patient], moments, rng))
    rows_create(sessions)
    # Django stamps created_at at the insert: each row gets back when it was booked, each patient
    # when they were registered (with their consent to texts), before their first booking.
    for session in sessions:
        session.created_at = session.series.created_at
    for patient in patients:
        registered = min(s.created_at for s in series if s.patient is patient) - timedelta(minutes=15)
        patient.created_at = patient.sms_consent_at = registered
    Series.objects.bulk_update(series, ["created_at"])
    Session.objects.bulk_update(sessions, ["created_at"])
    Patient.objects.bulk_update(patients, ["created_at", "sms_consent_at"])
    return sessions


def _patients(plan: _Plan, clinic: Clinic) -> list[Patient]:
    rows = [
        Patient(
            clinic=clinic, first_name=first, last_name=last, external_id=f"DB-{MRN_FIRST + n}",
            phone=f"+1602555{PHONE_FIRST + n:04d}", email=_email(first, last), language=language,
            sms_consent_source="Intake form (demo)",
        )
        for n, (first, last, language) in enumerate(plan.patients)
    ]  # fmt: skip
    rows_create(rows)
    return rows


def _email(first: str, last: str) -> str:
    """ "tomas.aguilar@example.com" for Tomás Aguilar, "kevin.obrien@…" for Kevin O'Brien."""
    plain = unicodedata.normalize("NFKD", f"{first}.{last}").encode("ascii", "ignore").decode()
    return f"{plain.lower().replace(chr(39), '')}@example.com"


def _series_status(visits: list[_Visit]) -> str:
    """As the service leaves a series whose visits are all behind it."""
    if all(v.status == Status.CANCELLED for v in visits):
        return Series.Status.CANCELLED
    return Series.Status.COMPLETED


def _booking_moment(clinic: Clinic, first_start: datetime, open_weekdays: set[int], rng: Random) -> datetime:
    """When the front desk booked the series: days ahead of its first visit, in desk hours."""
    day = local_date(first_start, clinic.zone) - timedelta(days=round(rng.triangular(*LEAD_DAYS)))
    while day.weekday() not in open_weekdays:
        day -= timedelta(days=1)
    opens, closes = (wall_clock(day, at, clinic.zone) for at in FRONT_DESK)
    return (opens + (closes - opens) * rng.random()).replace(second=0, microsecond=0)


def _moments(clinic: Clinic, visit: _Visit, booked: datetime, rng: Random) -> _Moments:
    """When the visit was cancelled, marked and confirmed; attendance a few minutes off the booked times."""
    moments = _Moments()
    notice = timedelta(hours=clinic.cancellation_notice_hours)
    if visit.status == Status.CANCELLED and visit.late:
        moments.changed = visit.starts - notice * rng.uniform(0.1, 0.9)
    elif visit.status == Status.CANCELLED:
        moments.changed = booked + (visit.starts - notice - booked) * rng.uniform(0.2, 0.9)
    elif visit.status == Status.NO_SHOW:
        moments.changed = visit.starts + timedelta(minutes=rng.randint(30, 60))
    else:
        moments.chair_in = visit.starts + timedelta(minutes=rng.randint(-8, 12))
        moments.chair_out = moments.chair_in + (visit.ends - visit.starts) + timedelta(minutes=rng.randint(-10, 15))
        moments.changed = moments.chair_out
    if rng.random() < CONFIRMED_SHARE:
        confirmed = visit.starts - timedelta(minutes=rng.randint(25 * 60, 72 * 60))
        if confirmed > booked and confirmed < moments.changed:
            moments.confirmed = confirmed
    return moments


def _session(
    clinic: Clinic, visit: _Visit, series: Series, patient: Patient, moments: _Moments, rng: Random
) -> Session:
    confirmed = moments.confirmed is not None
    via = rng.choice((Session.Channel.SMS, Session.Channel.SMS, Session.Channel.LINK))
    return Session(
        series=series, patient=patient, clinic=clinic, chair=visit.chair, number=visit.number,
        starts_at=visit.starts, ends_at=visit.ends,
        chair_free_at=visit.ends + timedelta(minutes=clinic.turnover_buffer_minutes), status=visit.status,
        confirmed_at=moments.confirmed, confirmed_via=via if confirmed else "", driver_confirmed=confirmed,
        status_changed_at=moments.changed, chair_in_at=moments.chair_in, chair_out_at=moments.chair_out,
        cancellation_reason=rng.choice(CANCEL_REASONS) if visit.status == Status.CANCELLED else "",
    )  # fmt: skip
