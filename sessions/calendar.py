"""Booking rules 1–5 checked in memory against a clinic's calendar.

`ClinicCalendar` loads what the rules need for the days a booking touches (hours, closed dates,
staffing, the sessions already holding chairs) in a few queries, then answers "what rule would
this session break?" without another query. The booking services hold the clinic's row lock
while they use it, so what it loaded cannot change underneath them; PostgreSQL's exclusion
constraints back rules 2 and 3 for any code that skips the services.
"""

from bisect import bisect_left, bisect_right
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import psycopg
from django.db import connection
from django.db.models import Q

from .clock import day_bounds, local_date, wall_clock
from .models import Clinic, Protocol, Session

# Protocols cap chair time at 12 hours (a check constraint), so a session that overlaps an
# instant started at most this long before it.
MAX_SESSION = timedelta(minutes=720)
# Protocols cap their gaps at a year (the model's validators), so rule 10 looks back no further.
MAX_GAP_DAYS = 365
# Bookings further ahead than this are typing mistakes, not plans.
BOOKING_HORIZON = timedelta(days=730)

_TIMESTAMPTZ_LOADER = psycopg.adapters.get_loader(psycopg.adapters.types["timestamptz"].oid, psycopg.pq.Format.TEXT)

RULES: dict[str, tuple[int, str]] = {
    "starts_in_past": (0, "a session must start in the future"),
    "invalid_status": (0, "only a booked or confirmed session can change this way"),
    "closed_date": (1, "sessions are not booked on a day the clinic is closed"),
    "outside_opening_hours": (1, "a session starts and ends inside opening hours"),
    "chair_inactive": (2, "sessions are booked on active chairs of the clinic"),
    "chair_overlap": (2, "no two sessions overlap on a chair, turnover buffer included"),
    "patient_overlap": (3, "a patient never has two overlapping sessions"),
    "staffing_capacity": (4, "concurrent sessions never exceed staffing capacity"),
    "stagger_cap": (4, "starts per slot never exceed the stagger cap"),
    "series_gap": (5, "consecutive sessions keep the protocol's minimum and maximum gap"),
    "no_valid_slot": (7, "every session of a series needs a valid slot"),
    "patient_gap": (10, "a patient's infusions keep each protocol's minimum gap from every other infusion of theirs"),
    "series_duplicate": (10, "one active series per protocol per patient, unless staff override with a reason"),
    "reflow_not_needed": (11, "a re-flow starts at an upcoming session, or makes good a cancelled or missed one"),
    "makeup_taken": (11, "a cancelled or missed session is made good once"),
    "short_notice": (13, "self-service never offers a time sooner than the clinic's minimum notice"),
    "attendance_times": (15, "chair-out follows chair-in, and neither is in the future"),
}


class BookingConflict(Exception):
    """A booking rule refuses the change. `code` is machine-readable, `rule` the spec's number."""

    def __init__(self, code: str, detail: str, *, session_number: int | None = None) -> None:
        self.code = code
        self.rule, self.rule_text = RULES[code]
        self.detail = detail
        self.session_number = session_number
        super().__init__(detail)

    def for_session(self, number: int) -> "BookingConflict":
        prefix = "" if self.detail.startswith("Session ") else f"Session {number}: "
        return BookingConflict(self.code, prefix + self.detail, session_number=number)

    def as_dict(self) -> dict[str, object]:
        return {
            "code": self.code,
            "rule": self.rule,
            "rule_text": self.rule_text,
            "detail": self.detail,
            "session": self.session_number,
        }


@dataclass(frozen=True, slots=True)
class Slot:
    chair_id: int
    starts_at: datetime
    ends_at: datetime


@dataclass(slots=True)
class _Day:
    closed_reason: str | None
    opens: datetime | None
    closes: datetime | None
    # (start, end, capacity) of each staffing block, in UTC.
    staffing: list[tuple[datetime, datetime, int]]
    # Per chair, parallel sorted lists of starts and chair-free times. Sessions on one chair never
    # overlap, so both lists are sorted and one bisect finds the only possible neighbour.
    chair_starts: dict[int, list[datetime]] = field(default_factory=dict)
    chair_frees: dict[int, list[datetime]] = field(default_factory=dict)
    # Every holding session of the day, sorted by start, for staffing and the stagger cap.
    starts: list[datetime] = field(default_factory=list)
    spans: list[tuple[datetime, datetime]] = field(default_factory=list)

    def add(self, chair_id: int, starts_at: datetime, ends_at: datetime, free_at: datetime) -> None:
        starts = self.chair_starts.setdefault(chair_id, [])
        at = bisect_left(starts, starts_at)
        starts.insert(at, starts_at)
        self.chair_frees.setdefault(chair_id, []).insert(at, free_at)
        at = bisect_left(self.starts, starts_at)
        self.starts.insert(at, starts_at)
        self.spans.insert(at, (starts_at, ends_at))


# The series a booking creates has no id yet: its tentative sessions carry this one.
NEW_SERIES = -1


@dataclass(frozen=True, slots=True)
class _PatientVisit:
    starts_at: datetime
    ends_at: datetime
    series_id: int
    min_gap_days: int


class ClinicCalendar:
    """`series_id` and `min_gap_days` describe the series being booked or changed: its own sessions
    are spaced by rule 5, and every other infusion of the patient by rule 10."""

    def __init__(
        self,
        clinic: Clinic,
        *,
        patient_id: int,
        now: datetime,
        ignore_session_ids: Collection[int] = (),
        series_id: int = NEW_SERIES,
        min_gap_days: int = 0,
    ) -> None:
        self.clinic = clinic
        self.zone = clinic.zone
        self.now = now
        self.buffer = timedelta(minutes=clinic.turnover_buffer_minutes)
        self.slot = timedelta(minutes=clinic.slot_minutes)
        self.patient_id = patient_id
        self.ignore_session_ids = list(ignore_session_ids)
        self.series_id = series_id
        self.min_gap_days = min_gap_days
        self.active_chairs: dict[int, str] = dict(clinic.chairs.filter(is_active=True).values_list("id", "name"))
        self.chairs_by_name: list[int] = sorted(self.active_chairs, key=lambda pk: (self.active_chairs[pk], pk))
        self._hours = {w: (o, c) for w, o, c in clinic.opening_hours.values_list("weekday", "opens", "closes")}
        self._blocks: dict[int, list[tuple]] = {}
        for weekday, starts, ends, capacity in (
            (b.weekday, b.starts, b.ends, b.capacity) for b in clinic.staffing_blocks.all()
        ):
            self._blocks.setdefault(weekday, []).append((starts, ends, capacity))
        self._staffed = bool(self._blocks)
        self._orders: dict[int | None, list[int]] = {}
        self._days: dict[date, _Day] = {}
        self._patient_visits: list[_PatientVisit] | None = None
        self._closed: dict[date, str] = {}
        self._closed_since: date | None = None

    # Loading

    def load(self, dates: Iterable[date]) -> None:
        """Load the given local dates that are not loaded yet, in one query."""
        missing = sorted(set(dates) - self._days.keys())
        if not missing:
            return
        closed = self._closed_from(missing[0])
        for day in missing:
            self._days[day] = self._empty_day(day, closed)
        spans = Q()
        for first, last in _runs(missing):
            spans |= Q(starts_at__gte=day_bounds(first, self.zone)[0], starts_at__lt=day_bounds(last, self.zone)[1])
        rows = (
            Session.objects.filter(spans, clinic=self.clinic, status__in=Session.HOLDING)
            .exclude(pk__in=self.ignore_session_ids)
            .values_list("chair_id", "starts_at", "ends_at", "chair_free_at")
        )
        for chair_id, starts_at, ends_at, free_at in _fetch(rows):
            self._days[local_date(starts_at, self.zone)].add(chair_id, starts_at, ends_at, free_at)

    def _closed_from(self, first: date) -> dict[date, str]:
        # Closed dates are few: one query for all of them from `first` on serves every later load.
        if self._closed_since is None or first < self._closed_since:
            self._closed = dict(self.clinic.closed_dates.filter(date__gte=first).values_list("date", "reason"))
            self._closed_since = first
        return self._closed

    def _empty_day(self, day: date, closed: dict[date, str]) -> _Day:
        hours = self._hours.get(day.weekday())
        blocks = [
            (wall_clock(day, starts, self.zone), wall_clock(day, ends, self.zone), capacity)
            for starts, ends, capacity in self._blocks.get(day.weekday(), [])
        ]
        return _Day(
            closed_reason=closed.get(day),
            opens=wall_clock(day, hours[0], self.zone) if hours else None,
            closes=wall_clock(day, hours[1], self.zone) if hours else None,
            staffing=blocks,
        )

    def _day(self, day: date) -> _Day:
        if day not in self._days:
            self.load([day])
        return self._days[day]

    def _patient(self) -> list[_PatientVisit]:
        # The patient's holding sessions in any clinic, from far enough back that the longest
        # minimum gap still reaches today: few rows, one query.
        if self._patient_visits is None:
            rows = (
                Session.objects.filter(
                    patient_id=self.patient_id,
                    status__in=Session.HOLDING,
                    ends_at__gt=self.now - MAX_SESSION - timedelta(days=MAX_GAP_DAYS),
                )
                .exclude(pk__in=self.ignore_session_ids)
                .values_list("starts_at", "ends_at", "series_id", "series__protocol__min_gap_days")
            )
            self._patient_visits = [_PatientVisit(*row) for row in rows]
        return self._patient_visits

    # Questions

    def opening(self, day: date) -> tuple[datetime, datetime] | None:
        found = self._day(day)
        if found.closed_reason is not None or found.opens is None or found.closes is None:
            return None
        return found.opens, found.closes

    def start_times(self, day: date, length: timedelta) -> list[datetime]:
        """Start times on the clinic's slot grid that fit a session of `length` inside the day's hours."""
        opening = self.opening(day)
        if opening is None:
            return []
        opens, closes = opening
        count = int((closes - length - opens) / self.slot) + 1
        return [opens + n * self.slot for n in range(max(count, 0))]

    def first_free(self, starts_at: datetime, length: timedelta, preferred_chair: int | None) -> Slot | BookingConflict:
        """A slot at `starts_at` on the preferred chair if it is free, else on the first free chair
        by name; when none is free, the conflict on the preferred (or first) chair."""
        order = self._chair_order(preferred_chair)
        if not order:
            return BookingConflict("chair_inactive", "The clinic has no active chair.")
        # Rules 1, 3 and 4 do not depend on the chair: check them once, not once per chair.
        ends_at = starts_at + length
        refused = self._hours_conflict(Slot(order[0], starts_at, ends_at))
        if refused is not None:
            return refused
        day = self._day(local_date(starts_at, self.zone))
        free_until = ends_at + self.buffer
        for chair_id in order:
            if chair_id in self.active_chairs and self._chair_free(day, chair_id, starts_at, free_until):
                slot = Slot(chair_id, starts_at, ends_at)
                return self._patient_conflict(slot) or self._staffing_conflict(slot, day) or slot
        return self._chair_conflict(Slot(order[0], starts_at, ends_at)) or BookingConflict(
            "chair_inactive", "The clinic has no active chair."
        )

    def conflict(self, slot: Slot) -> BookingConflict | None:
        """The first booking rule (in the spec's order) that `slot` would break, or None."""
        return (
            self._hours_conflict(slot)
            or self._chair_conflict(slot)
            or self._patient_conflict(slot)
            or self._staffing_conflict(slot)
        )

    def add(self, slot: Slot) -> None:
        """Hold `slot` in memory, as a tentative booking later sessions of a series must respect."""
        self._day(local_date(slot.starts_at, self.zone)).add(
            slot.chair_id, slot.starts_at, slot.ends_at, slot.ends_at + self.buffer
        )
        self._patient().append(_PatientVisit(slot.starts_at, slot.ends_at, self.series_id, self.min_gap_days))

    def _hours_conflict(self, slot: Slot) -> BookingConflict | None:
        if slot.starts_at <= self.now:
            return BookingConflict("starts_in_past", f"{self._show(slot.starts_at)} has already passed.")
        day = local_date(slot.starts_at, self.zone)
        found = self._day(day)
        if found.closed_reason is not None:
            reason = f" ({found.closed_reason})" if found.closed_reason else ""
            return BookingConflict("closed_date", f"The clinic is closed on {day:%a %d %b %Y}{reason}.")
        if found.opens is None or found.closes is None:
            return BookingConflict("outside_opening_hours", f"The clinic is not open on {day:%A}s.")
        if slot.starts_at < found.opens or slot.ends_at > found.closes:
            return BookingConflict(
                "outside_opening_hours",
                f"{self._show(slot.starts_at)}–{self._show(slot.ends_at, time_only=True)} is outside opening "
                f"hours {self._show(found.opens, time_only=True)}–{self._show(found.closes, time_only=True)}.",
            )
        return None

    def _chair_conflict(self, slot: Slot) -> BookingConflict | None:
        name = self.active_chairs.get(slot.chair_id)
        if name is None:
            return BookingConflict("chair_inactive", "That chair is not an active chair of this clinic.")
        day = self._day(local_date(slot.starts_at, self.zone))
        if not self._chair_free(day, slot.chair_id, slot.starts_at, slot.ends_at + self.buffer):
            return BookingConflict(
                "chair_overlap",
                f"{name} is taken at {self._show(slot.starts_at)} (a session there, with the "
                f"{self.clinic.turnover_buffer_minutes}-minute turnover).",
            )
        return None

    def _chair_order(self, preferred_chair: int | None) -> list[int]:
        """Active chairs by name, the preferred one first."""
        if preferred_chair not in self._orders:
            rest = [pk for pk in self.chairs_by_name if pk != preferred_chair]
            self._orders[preferred_chair] = rest if preferred_chair is None else [preferred_chair, *rest]
        return self._orders[preferred_chair]

    def _chair_free(self, day: "_Day", chair_id: int, starts_at: datetime, free_until: datetime) -> bool:
        """Whether the chair is free from `starts_at` until `free_until` (the end plus the buffer)."""
        starts = day.chair_starts.get(chair_id)
        if not starts:
            return True
        at = bisect_left(starts, free_until)
        return not (at and day.chair_frees[chair_id][at - 1] > starts_at)

    def _patient_conflict(self, slot: Slot) -> BookingConflict | None:
        visits = self._patient()
        for visit in visits:
            if visit.starts_at < slot.ends_at and visit.ends_at > slot.starts_at:
                return BookingConflict(
                    "patient_overlap", f"The patient already has a session at {self._show(visit.starts_at)}."
                )
        day = local_date(slot.starts_at, self.zone)
        for visit in visits:
            if visit.series_id == self.series_id:
                continue  # the series' own spacing is rule 5's
            needed = max(self.min_gap_days, visit.min_gap_days)
            apart = abs((local_date(visit.starts_at, self.zone) - day).days)
            if apart < needed:
                return BookingConflict(
                    "patient_gap",
                    f"The patient has a visit of another series on {self._show(visit.starts_at)}; "
                    f"infusions need at least {needed} day{'s' if needed != 1 else ''} between them.",
                )
        return None

    def _staffing_conflict(self, slot: Slot, found: "_Day | None" = None) -> BookingConflict | None:
        found = found if found is not None else self._day(local_date(slot.starts_at, self.zone))
        first = bisect_left(found.starts, slot.starts_at - MAX_SESSION)
        last = bisect_left(found.starts, slot.ends_at)
        running = [span for span in found.spans[first:last] if span[1] > slot.starts_at]
        if self.clinic.max_starts_per_slot is not None:
            bucket = self._slot_start(slot.starts_at)
            same_slot = bisect_left(found.starts, bucket + self.slot) - bisect_left(found.starts, bucket)
            if same_slot >= self.clinic.max_starts_per_slot:
                return BookingConflict(
                    "stagger_cap",
                    f"{same_slot} sessions already start in the {self.clinic.slot_minutes}-minute slot at "
                    f"{self._show(bucket)} (cap {self.clinic.max_starts_per_slot}).",
                )
        if not self._staffed:
            return None
        # The load only rises where a session starts or a shift changes: check those moments.
        # Sessions running at a moment: those started by then less those ended by then.
        starts = [s for s, _ in running]  # sorted, as the day's spans are
        ends = sorted(e for _, e in running)
        checkpoints = {slot.starts_at}
        checkpoints.update(s for s in starts if s > slot.starts_at)
        checkpoints.update(edge for b in found.staffing for edge in b[:2] if slot.starts_at < edge < slot.ends_at)
        for moment in sorted(checkpoints):
            capacity = sum(c for s, e, c in found.staffing if s <= moment < e)
            load = 1 + bisect_right(starts, moment) - bisect_right(ends, moment)
            if load > capacity:
                return BookingConflict(
                    "staffing_capacity",
                    f"At {self._show(moment)} the nurses on shift can take {capacity} patients at once "
                    f"and {load - 1} are already in chairs.",
                )
        return None

    def _slot_start(self, moment: datetime) -> datetime:
        local = moment.astimezone(self.zone)
        into = timedelta(
            minutes=(local.hour * 60 + local.minute) % self.clinic.slot_minutes,
            seconds=local.second,
            microseconds=local.microsecond,
        )
        return moment - into

    def _show(self, moment: datetime, *, time_only: bool = False) -> str:
        local = moment.astimezone(self.zone)
        return f"{local:%H:%M}" if time_only else f"{local:%a %d %b %Y %H:%M}"


def _runs(days: list[date]) -> list[tuple[date, date]]:
    """Sorted dates as (first, last) runs of consecutive days."""
    runs: list[tuple[date, date]] = []
    for day in days:
        if runs and runs[-1][1] + timedelta(days=1) == day:
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


def _fetch(queryset) -> list[tuple]:
    """The rows of a values_list queryset. On PostgreSQL, psycopg's C loader parses timestamps:
    Django's own loader is pure Python (Django ticket #36960) and costs ~3 µs a value."""
    if connection.vendor != "postgresql":
        return list(queryset)
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.cursor.adapters.register_loader("timestamptz", _TIMESTAMPTZ_LOADER)
        cursor.execute(sql, params)
        return cursor.fetchall()


def series_gap_conflict(
    protocol: Protocol, zone, *, previous: datetime | None, starts_at: datetime, following: datetime | None
) -> BookingConflict | None:
    """Rule 5: days between consecutive sessions, counted on the clinic's calendar."""
    day = local_date(starts_at, zone)
    low, high = protocol.min_gap_days, protocol.max_gap_days
    for before, after in ((previous, starts_at), (starts_at, following)):
        if before is None or after is None:
            continue
        gap = (local_date(after, zone) - local_date(before, zone)).days
        if not low <= gap <= high:
            return BookingConflict(
                "series_gap",
                f"{day:%a %d %b} would put {gap} days between sessions; this protocol needs {low} to {high}.",
            )
    return None
