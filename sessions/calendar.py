"""Booking rules 1–5 checked in memory against a clinic's calendar.

`ClinicCalendar` loads what the rules need for the days a booking touches (hours, closed dates,
staffing, the sessions already holding chairs) in a few queries, then answers "what rule would
this session break?" without another query. The booking services hold the clinic's row lock
while they use it, so what it loaded cannot change underneath them; PostgreSQL's exclusion
constraints back rules 2 and 3 for any code that skips the services.
"""

from bisect import bisect_left, bisect_right, insort
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import NamedTuple

import psycopg
from django.db import connection, models
from django.db.models import F, IntegerField, Q, Value

from .clock import day_bounds, local_date, wall_clock
from .models import Chair, Clinic, ClosedDate, OpeningHours, Protocol, Series, Session, StaffingBlock

# Protocols cap chair time at 12 hours (a check constraint), so a session that overlaps an
# instant started at most this long before it.
MAX_SESSION = timedelta(minutes=720)
# Protocols cap their gaps at a year (the model's validators), so rule 10 looks back no further.
MAX_GAP_DAYS = 365
# Bookings further ahead than this are typing mistakes, not plans.
BOOKING_HORIZON = timedelta(days=730)
# The clock's resolution: the first moment after another.
_INSTANT = timedelta(microseconds=1)

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
    "waitlist_closed": (0, "only a waitlist entry still waiting is booked from the waitlist"),
    "offer_not_made": (0, "a freed time is offered once to a waiting patient, by a channel that reaches them now"),
}


class BookingConflict(Exception):
    """A booking rule refuses the change. `code` is machine-readable, `rule` the spec's number."""

    def __init__(
        self, code: str, detail: str, *, session_number: int | None = None, slot: "Slot | None" = None
    ) -> None:
        self.code = code
        self.rule, self.rule_text = RULES[code]
        self.detail = detail
        self.session_number = session_number
        # The chair time refused (turnover included), where another booking holds it: staff pages
        # and the API name that booking (selectors.conflict_holder), a query only a refusal
        # shown to a person pays for.
        self.slot = slot
        super().__init__(detail)

    def for_session(self, number: int) -> "BookingConflict":
        prefix = "" if self.detail.startswith("Session ") else f"Session {number}: "
        return BookingConflict(self.code, prefix + self.detail, session_number=number, slot=self.slot)

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
    # The starts and, apart, the ends of every holding session of the day, each sorted: the
    # sessions running at a moment are those started by then less those ended by then (staffing),
    # and the starts give the stagger cap.
    starts: list[datetime] = field(default_factory=list)
    ends: list[datetime] = field(default_factory=list)
    # The moments the load can rise (a start, a shift's edge), sorted, and how many of those
    # before each are over capacity with one more session: worked out on first use, and again
    # after a tentative booking.
    overloads: tuple[list[datetime], list[int]] | None = None

    def load(self, moment: datetime) -> int:
        """Sessions running at `moment`: those started by then less those ended by then."""
        return bisect_right(self.starts, moment) - bisect_right(self.ends, moment)

    def capacity(self, moment: datetime) -> int:
        return sum(c for s, e, c in self.staffing if s <= moment < e)

    def overloaded_between(self, begins: datetime, ends: datetime) -> bool:
        """Whether one more session would take the load over capacity at a moment strictly
        between `begins` and `ends` where a session starts or a shift changes."""
        if self.overloads is None:
            moments = sorted({*self.starts, *(edge for b in self.staffing for edge in b[:2])})
            counts, over = [0], 0
            for moment in moments:
                over += self.load(moment) + 1 > self.capacity(moment)
                counts.append(over)
            self.overloads = moments, counts
        moments, counts = self.overloads
        return counts[bisect_left(moments, ends)] > counts[bisect_right(moments, begins)]

    def add(self, chair_id: int, starts_at: datetime, ends_at: datetime, free_at: datetime) -> None:
        """Hold a session anywhere in the day's order (a tentative booking)."""
        starts = self.chair_starts.setdefault(chair_id, [])
        at = bisect_left(starts, starts_at)
        starts.insert(at, starts_at)
        self.chair_frees.setdefault(chair_id, []).insert(at, free_at)
        insort(self.starts, starts_at)
        insort(self.ends, ends_at)
        self.overloads = None


# The series a booking creates has no id yet: its tentative sessions carry this one.
NEW_SERIES = -1


@dataclass(frozen=True, slots=True)
class _PatientVisit:
    starts_at: datetime
    ends_at: datetime
    series_id: int
    min_gap_days: int
    # The clinic's date of the start, for rule 10's days apart.
    day: date


class _Refusal(NamedTuple):
    """A staffing rule a slot breaks, before it is put in words (which only a booking needs)."""

    code: str
    moment: datetime
    count: int
    limit: int


class ClinicCalendar:
    """`series_id` and `min_gap_days` describe the series being booked or changed: its own sessions
    are spaced by rule 5, and every other infusion of the patient by rule 10. For a new series,
    `protocol_id` names its protocol: the patient's active series of it are read with their
    visits, in the same query (rule 10's one active series per protocol)."""

    def __init__(
        self,
        clinic: Clinic,
        *,
        patient_id: int,
        now: datetime,
        ignore_session_ids: Collection[int] = (),
        series_id: int = NEW_SERIES,
        min_gap_days: int = 0,
        protocol_id: int | None = None,
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
        self.protocol_id = protocol_id
        setup = _clinic_setup(clinic, since=local_date(now, self.zone) - timedelta(days=MAX_GAP_DAYS))
        self.active_chairs: dict[int, str] = dict(setup.chairs)
        self.chairs_by_name: list[int] = sorted(self.active_chairs, key=lambda pk: (self.active_chairs[pk], pk))
        self._hours = {weekday: (opens, closes) for weekday, opens, closes in setup.hours}
        self._blocks: dict[int, list[tuple]] = {}
        for weekday, starts, ends, capacity in sorted(setup.blocks):
            self._blocks.setdefault(weekday, []).append((starts, ends, capacity))
        self._staffed = bool(self._blocks)
        self._orders: dict[int | None, list[int]] = {}
        self._days: dict[date, _Day] = {}
        self._patient_visits: list[_PatientVisit] | None = None
        self._active_series: list[datetime] = []
        self._closed: dict[date, str] = dict(setup.closed)
        self._closed_since: date | None = setup.since

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
            .order_by("starts_at")
            .values_list("chair_id", "starts_at", "ends_at", "chair_free_at")
        )
        # In start order, each session goes to the end of its day's lists, with no search and no
        # shifting (the ends are sorted once the day is loaded), and a row's day is worked out
        # only where a new day begins. A listing of slots loads a thousand rows this way.
        found, next_day = None, None
        for chair_id, starts_at, ends_at, free_at in _fetch(rows):
            if found is None or starts_at >= next_day:
                day = local_date(starts_at, self.zone)
                found, next_day = self._days[day], day_bounds(day, self.zone)[1]
            found.chair_starts.setdefault(chair_id, []).append(starts_at)
            found.chair_frees.setdefault(chair_id, []).append(free_at)
            found.starts.append(starts_at)
            found.ends.append(ends_at)
        for day in missing:
            self._days[day].ends.sort()

    def _closed_from(self, first: date) -> dict[date, str]:
        # Closed dates are few: one query for all of them from `first` on serves every later load.
        if self._closed_since is None or first < self._closed_since:
            closed = self.clinic.closed_dates.filter(date__gte=first).order_by()
            self._closed = dict(closed.values_list("date", "reason"))
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

    def active_series_booked_at(self) -> datetime | None:
        """When the patient's oldest active series of `protocol_id` was booked; None when they
        have none (rule 10)."""
        self._patient()
        return min(self._active_series, default=None)

    def _patient(self) -> list[_PatientVisit]:
        # The patient's holding sessions in any clinic, from far enough back that the longest
        # minimum gap still reaches today: few rows, one query. With `protocol_id`, the patient's
        # active series of it come in the same query, as rows with no gap (their booking time).
        if self._patient_visits is None:
            rows = (
                Session.objects.filter(
                    patient_id=self.patient_id,
                    status__in=Session.HOLDING,
                    ends_at__gt=self.now - MAX_SESSION - timedelta(days=MAX_GAP_DAYS),
                )
                .exclude(pk__in=self.ignore_session_ids)
                .order_by()
                .values_list("starts_at", "ends_at", "series_id", "series__protocol__min_gap_days")
            )
            if self.protocol_id is not None:
                active = Series.objects.filter(
                    patient_id=self.patient_id, protocol_id=self.protocol_id, status=Series.Status.ACTIVE
                )
                # The visits' four columns: booked at (as start and end), the series, no gap.
                no_gap = Value(None, output_field=IntegerField())
                rows = rows.union(active.order_by().values_list("created_at", F("created_at"), "pk", no_gap), all=True)
            visits = []
            for starts_at, ends_at, series_id, min_gap_days in _fetch(rows):
                if min_gap_days is None:
                    self._active_series.append(starts_at)
                else:
                    day = local_date(starts_at, self.zone)
                    visits.append(_PatientVisit(starts_at, ends_at, series_id, min_gap_days, day))
            # In start order: a conflict names the earliest visit it meets.
            self._patient_visits = sorted(visits, key=lambda visit: visit.starts_at)
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
        day = local_date(starts_at, self.zone)
        refused = self._hours_conflict(Slot(order[0], starts_at, ends_at), day)
        if refused is not None:
            return refused
        found = self._days[day]  # loaded by _hours_conflict
        free_until = ends_at + self.buffer
        for chair_id in order:
            if chair_id in self.active_chairs and self._chair_free(found, chair_id, starts_at, free_until):
                slot = Slot(chair_id, starts_at, ends_at)
                return self._patient_conflict(slot, day) or self._staffing_conflict(slot, found) or slot
        return self._chair_conflict(Slot(order[0], starts_at, ends_at)) or BookingConflict(
            "chair_inactive", "The clinic has no active chair."
        )

    def free_slots(self, day: date, length: timedelta, preferred_chair: int | None, *, since: datetime) -> list[Slot]:
        """first_free's slot at each of the day's start times from `since` on, where it has one:
        for a listing, which needs no reasons. Each chair's sessions are swept once for all the
        start times, instead of each start time looking at every chair in turn."""
        starts = self.start_times(day, length)
        # Rule 10 holds for the whole day or not at all.
        if not starts or self._visit_too_close(day) is not None:
            return []
        found = self._days[day]  # loaded by start_times
        opens, span = starts[0], length + self.buffer
        # Bit k of a chair's mask: the chair is free for a session starting at starts[k] (its
        # turnover included), as _chair_free would say.
        # The start times still to place: from `since` on, and after now (rule 1's starts_in_past).
        too_soon = bisect_left(starts, max(since, self.now + _INSTANT))
        unplaced = ((1 << len(starts)) - 1) & ~((1 << too_soon) - 1)
        chosen: dict[int, int] = {}
        for chair_id in self._chair_order(preferred_chair):
            if not unplaced:
                break
            if chair_id not in self.active_chairs:
                continue
            taken = 0
            for held_from, held_until in zip(
                found.chair_starts.get(chair_id, ()), found.chair_frees.get(chair_id, ()), strict=True
            ):
                # Start times k with starts[k] < held_until and starts[k] + span > held_from.
                first = max((held_from - span - opens) // self.slot + 1, 0)
                last = min(-((opens - held_until) // self.slot), len(starts))
                if first < last:
                    taken |= ((1 << (last - first)) - 1) << first
            placed = unplaced & ~taken
            unplaced &= ~placed
            while placed:
                k = (placed & -placed).bit_length() - 1
                chosen[k] = chair_id
                placed &= placed - 1
        slots = []
        for k in sorted(chosen):
            slot = Slot(chosen[k], starts[k], starts[k] + length)
            if self._overlapping_visit(slot) is None and self._staffing_allows(slot, found):
                slots.append(slot)
        return slots

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
        day = local_date(slot.starts_at, self.zone)
        self._day(day).add(slot.chair_id, slot.starts_at, slot.ends_at, slot.ends_at + self.buffer)
        visit = _PatientVisit(slot.starts_at, slot.ends_at, self.series_id, self.min_gap_days, day)
        self._patient().append(visit)

    def _hours_conflict(self, slot: Slot, day: date | None = None) -> BookingConflict | None:
        """`day`: the clinic's date of the slot's start, where the caller has it already."""
        if slot.starts_at <= self.now:
            return BookingConflict("starts_in_past", f"{self._show(slot.starts_at)} has already passed.")
        day = day or local_date(slot.starts_at, self.zone)
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
                f"{name} is taken at {self._show(slot.starts_at)}: a session there holds it until "
                f"{self._show(self._chair_held_until(day, slot), time_only=True)}, "
                f"{self.clinic.turnover_buffer_minutes}-minute turnover included.",
                slot=Slot(slot.chair_id, slot.starts_at, slot.ends_at + self.buffer),
            )
        return None

    def _chair_held_until(self, day: "_Day", slot: Slot) -> datetime:
        """When the last session overlapping `slot` on its chair lets the chair go."""
        starts, frees = day.chair_starts.get(slot.chair_id, []), day.chair_frees.get(slot.chair_id, [])
        overlapping = [
            free for start, free in zip(starts, frees, strict=True)
            if start < slot.ends_at + self.buffer and free > slot.starts_at
        ]  # fmt: skip
        return max(overlapping, default=slot.starts_at)

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

    def _patient_conflict(self, slot: Slot, day: date | None = None) -> BookingConflict | None:
        """`day`: the clinic's date of the slot's start, where the caller has it already."""
        visit = self._overlapping_visit(slot)
        if visit is not None:
            return BookingConflict(
                "patient_overlap", f"The patient already has a session at {self._show(visit.starts_at)}."
            )
        visit = self._visit_too_close(day or local_date(slot.starts_at, self.zone))
        if visit is not None:
            needed = max(self.min_gap_days, visit.min_gap_days)
            return BookingConflict(
                "patient_gap",
                f"The patient has a visit of another series on {self._show(visit.starts_at)}; "
                f"infusions need at least {needed} day{'s' if needed != 1 else ''} between them.",
            )
        return None

    def _overlapping_visit(self, slot: Slot) -> _PatientVisit | None:
        """Rule 3: the patient's first visit that overlaps `slot`."""
        for visit in self._patient():
            if visit.starts_at < slot.ends_at and visit.ends_at > slot.starts_at:
                return visit
        return None

    def _visit_too_close(self, day: date) -> _PatientVisit | None:
        """Rule 10: the patient's first visit of another series too few days from `day`."""
        for visit in self._patient():
            if visit.series_id == self.series_id:
                continue  # the series' own spacing is rule 5's
            if abs((visit.day - day).days) < max(self.min_gap_days, visit.min_gap_days):
                return visit
        return None

    def _staffing_conflict(self, slot: Slot, found: "_Day | None" = None) -> BookingConflict | None:
        found = found if found is not None else self._day(local_date(slot.starts_at, self.zone))
        refusal = self._staffing_refusal(slot, found)
        return None if refusal is None else self._in_words(refusal)

    def _staffing_refusal(self, slot: Slot, found: "_Day") -> _Refusal | None:
        refusal = self._stagger_refusal(slot, found)
        if refusal is not None or not self._staffed:
            return refusal
        # The load only rises where a session starts or a shift changes: check those moments.
        begins, ends, starts = slot.starts_at, slot.ends_at, found.starts
        checkpoints = {begins, *starts[bisect_right(starts, begins) : bisect_left(starts, ends)]}
        checkpoints.update(edge for b in found.staffing for edge in b[:2] if begins < edge < ends)
        for moment in sorted(checkpoints):
            capacity, load = found.capacity(moment), found.load(moment) + 1
            if load > capacity:
                return _Refusal("staffing_capacity", moment, load - 1, capacity)
        return None

    def _staffing_allows(self, slot: Slot, found: "_Day") -> bool:
        """Whether _staffing_refusal finds nothing, answered from the day's overloaded moments
        (_Day.overloaded_between) rather than moment by moment: for a listing of slots."""
        if self._stagger_refusal(slot, found) is not None:
            return False
        if not self._staffed:
            return True
        begins = slot.starts_at
        return found.load(begins) + 1 <= found.capacity(begins) and not found.overloaded_between(begins, slot.ends_at)

    def _stagger_refusal(self, slot: Slot, found: "_Day") -> _Refusal | None:
        cap = self.clinic.max_starts_per_slot
        if cap is None:
            return None
        bucket = self._slot_start(slot.starts_at)
        same_slot = bisect_left(found.starts, bucket + self.slot) - bisect_left(found.starts, bucket)
        return _Refusal("stagger_cap", bucket, same_slot, cap) if same_slot >= cap else None

    def _in_words(self, refusal: _Refusal) -> BookingConflict:
        if refusal.code == "stagger_cap":
            return BookingConflict(
                "stagger_cap",
                f"{refusal.count} sessions already start in the {self.clinic.slot_minutes}-minute slot at "
                f"{self._show(refusal.moment)} (cap {refusal.limit}).",
            )
        return BookingConflict(
            "staffing_capacity",
            f"At {self._show(refusal.moment)} the nurses on shift can take {refusal.limit} patients at once "
            f"and {refusal.count} are already in chairs.",
        )

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


class _Setup(NamedTuple):
    """How a clinic is set up for booking: its active chairs (id, name), opening hours (weekday,
    opens, closes), staffing blocks (weekday, starts, ends, patients at once) and closed dates
    (date, reason) from `since` on."""

    chairs: list[tuple[int, str]]
    hours: list[tuple[int, time, time]]
    blocks: list[tuple[int, time, time, int]]
    closed: list[tuple[date, str]]
    since: date


def _clinic_setup(clinic: Clinic, *, since: date) -> _Setup:
    """Every calendar reads these first: on PostgreSQL in one query rather than four (a booking
    makes a dozen queries, and each costs the ORM more than the database)."""
    if connection.vendor != "postgresql":
        # The models' default orderings join the clinic (to sort by its name): these reads skip them.
        return _Setup(
            chairs=list(clinic.chairs.filter(is_active=True).order_by().values_list("id", "name")),
            hours=list(clinic.opening_hours.order_by().values_list("weekday", "opens", "closes")),
            blocks=[
                (weekday, starts, ends, nurses * per_nurse)
                for weekday, starts, ends, nurses, per_nurse in clinic.staffing_blocks.order_by().values_list(
                    "weekday", "starts", "ends", "nurses", "patients_per_nurse"
                )
            ],
            closed=list(clinic.closed_dates.filter(date__gte=since).order_by().values_list("date", "reason")),
            since=since,
        )
    with connection.cursor() as cursor:
        cursor.execute(_SETUP_SQL, {"clinic": clinic.pk, "since": since})
        chairs, hours, blocks, closed = cursor.fetchone()
    return _Setup(
        chairs=[(pk, name) for pk, name in chairs],
        hours=[(weekday, time.fromisoformat(opens), time.fromisoformat(closes)) for weekday, opens, closes in hours],
        blocks=[(w, time.fromisoformat(s), time.fromisoformat(e), capacity) for w, s, e, capacity in blocks],
        closed=[(date.fromisoformat(day), reason) for day, reason in closed],
        since=since,
    )


def _setup_sql() -> str:
    def rows(model: type[models.Model], columns: str, where: str = "") -> str:
        found = f"SELECT json_build_array({columns}) FROM {model._meta.db_table} WHERE clinic_id = %(clinic)s {where}"
        return f"ARRAY({found})"

    return "SELECT " + ", ".join(
        [
            rows(Chair, "id, name", "AND is_active"),
            rows(OpeningHours, "weekday, opens, closes"),
            rows(StaffingBlock, "weekday, starts, ends, nurses * patients_per_nurse"),
            rows(ClosedDate, "date, reason", "AND date >= %(since)s"),
        ]
    )


_SETUP_SQL = _setup_sql()


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
