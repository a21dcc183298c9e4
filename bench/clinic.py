"""The bench clinic and its calendar: 24 chairs in Phoenix, open 07:00–19:00 every day, the
spec's three protocols and 20,000 sessions booked from tomorrow on, taking about 70% of the
chair time (turnover included).

The sessions are laid out here in memory on the clinic's 15-minute grid, keeping the rules the
service enforces (hours, chair with turnover, patient, staffing, stagger cap, series gaps, and
across a patient's series: each protocol's minimum gap between any two of their infusions, one
active series per protocol), and written with bulk_create: booking them one by one through the
service would take minutes. Series are laid out from a few weeks back, so the coming days are as
full as later ones; the sessions of theirs that are over are written as completed, and a series
with none still to come as completed too.
"""

import time as clock
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from random import Random

from django.utils import timezone

from sessions.clock import local_date, wall_clock
from sessions.models import Chair, Clinic, OpeningHours, Patient, Protocol, Series, Session, StaffingBlock

ZONE = "America/Phoenix"
OPENS, CLOSES = time(7), time(19)
CHAIRS = 24
NURSES, PATIENTS_PER_NURSE = 8, 3
STAGGER_CAP = 4
# One grid cell is the clinic's slot, which is also its turnover buffer.
CELL_MINUTES = 15
BUFFER_CELLS = 1
DAY_CELLS = (CLOSES.hour - OPENS.hour) * 60 // CELL_MINUTES


@dataclass(frozen=True)
class Preset:
    key: str
    name: str
    session_count: int
    chair_minutes: int
    min_gap_days: int
    max_gap_days: int
    # Share of the series booked, and the gaps a front desk usually picks.
    weight: float
    usual_gaps: tuple[int, ...]

    @property
    def cells(self) -> int:
        return self.chair_minutes // CELL_MINUTES

    @property
    def longest_days(self) -> int:
        return self.max_gap_days * (self.session_count - 1)


PRESETS = (
    Preset("induction", "Depression induction", 6, 120, 1, 4, 0.65, (2, 2, 3, 3, 4, 1)),
    Preset("pain", "Pain course", 5, 300, 1, 1, 0.05, (1,)),
    Preset("booster", "Booster", 1, 120, 1, 1, 0.30, (1,)),
)
INDUCTION = PRESETS[0]
# Days a series may take at most, first session to last.
SERIES_DAYS = max(p.longest_days for p in PRESETS)
# The shortest session with its turnover, in cells: free chair time shorter than this is lost.
SHORTEST_BLOCK = min(p.cells for p in PRESETS) + BUFFER_CELLS
# Day -1 is today (day 0 is tomorrow): a series with a session from today on may still be active,
# and a patient has one active series of a protocol at most (rule 10).
STILL_ACTIVE_FROM = -1


@dataclass(frozen=True)
class BenchClinic:
    clinic: Clinic
    protocols: dict[str, Protocol]
    # Day 0 is tomorrow (clinic date) when the clinic was built; `days` from it are filled.
    first_date: date
    days: int
    sessions: int
    past_sessions: int
    series: int
    completed_series: int
    patients: int
    chair_fill: float
    seconds: float
    # (day, start cell) pairs where an induction series' first session fitted, as built.
    open_starts: list[tuple[int, int]]

    def day(self, index: int) -> date:
        return self.first_date + timedelta(days=index)


def bench_clinic_build(
    *, seed: int, sessions: int = 20_000, patients: int = 4_000, fill: float = 0.70, name: str = "Bench Clinic"
) -> BenchClinic:
    began = clock.perf_counter()
    clinic = clinic_create(name)
    protocols = protocols_create(clinic)
    chair_ids = list(clinic.chairs.order_by("name").values_list("pk", flat=True))
    patient_ids = [p.pk for p in Patient.objects.bulk_create(patient_new(clinic, n) for n in range(patients))]
    layout = Layout(days=_days_for(sessions, fill), patients=patients)
    layout.fill(Random(seed), sessions)
    first_date = local_date(timezone.now(), clinic.zone) + timedelta(days=1)
    _sessions_create(clinic, protocols, layout, first_date, chair_ids, patient_ids, Random(seed + 1))
    open_starts = layout.open_starts(INDUCTION.cells, range(1, layout.days - SERIES_DAYS))
    return BenchClinic(
        clinic=clinic,
        protocols=protocols,
        first_date=first_date,
        days=layout.days,
        sessions=sessions,
        past_sessions=layout.past_sessions(),
        series=len(layout.series),
        completed_series=Series.objects.filter(clinic=clinic, status=Series.Status.COMPLETED).count(),
        patients=patients,
        chair_fill=layout.chair_fill(),
        seconds=clock.perf_counter() - began,
        open_starts=open_starts,
    )


def patient_new(clinic: Clinic, n: int, *, prefix: str = "B") -> Patient:
    return Patient(
        clinic=clinic,
        first_name="Pat",
        last_name=f"Bench{n}",
        external_id=f"{prefix}{n:06d}",
        phone=f"+1602{n % 10_000_000:07d}",
        email=f"pat{n}@example.com",
    )


def naive_start(bench: BenchClinic, day: int, cell: int) -> datetime:
    """Clinic wall-clock time of `cell` on day `day`, as a scheduler would type it."""
    return datetime.combine(bench.day(day), OPENS) + timedelta(minutes=cell * CELL_MINUTES)


def _days_for(sessions: int, fill: float) -> int:
    """Days over which `sessions` of the preset mix take `fill` of the chair time, turnover included."""
    sessions_per_series = sum(p.weight * p.session_count for p in PRESETS)
    cells_per_series = sum(p.weight * p.session_count * (p.cells + BUFFER_CELLS) for p in PRESETS)
    cells_per_day = CHAIRS * (DAY_CELLS + BUFFER_CELLS)
    return round(sessions * cells_per_series / sessions_per_series / (fill * cells_per_day))


def clinic_create(name: str, *, chairs: int = CHAIRS) -> Clinic:
    """The bench clinic's hours, staffing and `chairs` chairs (its reminder rules are the defaults)."""
    clinic = Clinic.objects.create(
        name=name,
        time_zone=ZONE,
        phone="+16025550100",
        address="1 Bench Way, Phoenix AZ",
        sender_name="Desert Wellness",
        turnover_buffer_minutes=BUFFER_CELLS * CELL_MINUTES,
        slot_minutes=CELL_MINUTES,
        max_starts_per_slot=STAGGER_CAP,
    )
    for weekday in range(7):
        OpeningHours.objects.create(clinic=clinic, weekday=weekday, opens=OPENS, closes=CLOSES)
        StaffingBlock.objects.create(
            clinic=clinic,
            weekday=weekday,
            starts=OPENS,
            ends=CLOSES,
            nurses=NURSES,
            patients_per_nurse=PATIENTS_PER_NURSE,
        )
    Chair.objects.bulk_create(Chair(clinic=clinic, name=f"Chair {n:02d}") for n in range(1, chairs + 1))
    return clinic


def protocols_create(clinic: Clinic) -> dict[str, Protocol]:
    return {preset.key: _protocol_create(clinic, preset) for preset in PRESETS}


def _protocol_create(clinic: Clinic, preset: Preset) -> Protocol:
    return Protocol.objects.create(
        clinic=clinic,
        name=preset.name,
        patient_name="Wellness visit",
        session_count=preset.session_count,
        chair_minutes=preset.chair_minutes,
        min_gap_days=preset.min_gap_days,
        max_gap_days=preset.max_gap_days,
    )


def _sessions_create(
    clinic: Clinic,
    protocols: dict[str, Protocol],
    layout: "Layout",
    first_date: date,
    chair_ids: list[int],
    patient_ids: list[int],
    rng: Random,
) -> None:
    opens = [wall_clock(first_date + timedelta(days=day), OPENS, clinic.zone) for day in layout.day_range]
    now = timezone.now()
    # (start, status) of each session, series by series: a series' status follows its sessions'.
    timed = []
    for planned in layout.series:
        starts = [opens[day - layout.day_range.start] + timedelta(minutes=cell * CELL_MINUTES)
                  for day, _, cell in planned.sessions]  # fmt: skip
        length = timedelta(minutes=planned.preset.chair_minutes)
        timed.append([(starts_at, _status(rng, starts_at, starts_at + length, now)) for starts_at in starts])
    series = Series.objects.bulk_create(
        Series(
            patient_id=patient_ids[planned.patient],
            protocol=protocols[planned.preset.key],
            clinic=clinic,
            status=Series.Status.ACTIVE
            if any(status != Session.Status.COMPLETED for _, status in times)
            else Series.Status.COMPLETED,
        )
        for planned, times in zip(layout.series, timed, strict=True)
    )
    buffer = timedelta(minutes=BUFFER_CELLS * CELL_MINUTES)
    rows = []
    for saved, planned, times in zip(series, layout.series, timed, strict=True):
        length = timedelta(minutes=planned.preset.chair_minutes)
        for number, ((_, chair, _), (starts_at, status)) in enumerate(zip(planned.sessions, times, strict=True), 1):
            rows.append(
                Session(
                    series=saved,
                    patient_id=saved.patient_id,
                    clinic=clinic,
                    chair_id=chair_ids[chair],
                    number=number,
                    starts_at=starts_at,
                    ends_at=starts_at + length,
                    chair_free_at=starts_at + length + buffer,
                    status=status,
                    confirmed_at=now if status != Session.Status.BOOKED else None,
                    confirmed_via=Session.Channel.SMS if status != Session.Status.BOOKED else "",
                    # Attendance as the nurses marked it (rule 15): in and out on time.
                    chair_in_at=starts_at if status in _ATTENDED else None,
                    chair_out_at=starts_at + length if status == Session.Status.COMPLETED else None,
                )
            )
    Session.objects.bulk_create(rows, batch_size=2_000)


_ATTENDED = (Session.Status.ARRIVED, Session.Status.COMPLETED)


def _status(rng: Random, starts_at: datetime, ends_at: datetime, now: datetime) -> str:
    if ends_at <= now:
        return Session.Status.COMPLETED
    if starts_at < now:
        return Session.Status.ARRIVED
    return Session.Status.CONFIRMED if rng.random() < 0.35 else Session.Status.BOOKED


@dataclass(frozen=True)
class PlannedSeries:
    preset: Preset
    patient: int
    # (day, chair index, start cell) of each session.
    sessions: list[tuple[int, int, int]]


class Layout:
    """Chairs × 15-minute cells for each day, filled series by series as a front desk would:
    a patient's usual time when a chair is free then, else the nearest free time that day.

    `today` is the index of today's date, from which a series may still be active; `fill` counts
    the sessions on `counted` days (by default day 0 and every later one)."""

    def __init__(
        self,
        *,
        days: int,
        patients: int,
        chairs: int = CHAIRS,
        today: int = STILL_ACTIVE_FROM,
        counted: range | None = None,
    ) -> None:
        self.days = days
        self.chairs = chairs
        self.today = today
        # Series begin up to SERIES_DAYS before day 0 and run on up to SERIES_DAYS after the last day.
        self.day_range = range(-SERIES_DAYS, days + SERIES_DAYS)
        span = len(self.day_range)
        # Per day and chair, the (start, end) cells held, turnover included, sorted.
        self._chairs: list[list[list[tuple[int, int]]]] = [[[] for _ in range(chairs)] for _ in range(span)]
        self._starts = [[0] * DAY_CELLS for _ in range(span)]
        self._running = [[0] * DAY_CELLS for _ in range(span)]
        # Per patient, the (day, protocol's minimum gap) of each visit, and per protocol the
        # (first, last) days of each of their series.
        self._patient_visits: list[list[tuple[int, int]]] = [[] for _ in range(patients)]
        self._patient_series: list[dict[str, list[tuple[int, int]]]] = [{} for _ in range(patients)]
        self.series: list[PlannedSeries] = []
        self.counted = counted if counted is not None else range(0, self.day_range.stop)

    def fill(self, rng: Random, sessions: int) -> None:
        """Lay out series until exactly `sessions` sessions fall on the counted days."""
        placed = 0
        for _ in range(sessions * 50):
            if placed == sessions:
                return
            preset = rng.choices(PRESETS, weights=[p.weight for p in PRESETS])[0]
            planned = self._series_place(rng, preset)
            if planned is None:
                continue
            counted = sum(1 for day, _, _ in planned.sessions if day in self.counted)
            if placed + counted <= sessions:
                self._hold(planned)
                placed += counted
        raise RuntimeError(f"Only {placed} of {sessions} sessions fit in {self.days} days.")

    def chair_fill(self) -> float:
        """Share of the chair time of days 0 to `days` held by sessions and their turnover."""
        held = sum(end - start for day in range(self.days) for chair in self._day(day) for start, end in chair)
        return held / (self.days * self.chairs * (DAY_CELLS + BUFFER_CELLS))

    def past_sessions(self) -> int:
        return sum(1 for planned in self.series for day, _, _ in planned.sessions if day < 0)

    def open_starts(self, cells: int, days: range) -> list[tuple[int, int]]:
        """(day, start cell) pairs where a session of `cells` can be booked as the layout stands."""
        return [
            (day, cell)
            for day in days
            for cell in range(DAY_CELLS - cells + 1)
            if self._time_allowed(day, cell, cells)
            and any(self._chair_free(day, c, cell, cells) for c in range(self.chairs))
        ]

    def _day(self, day: int) -> list[list[tuple[int, int]]]:
        return self._chairs[day - self.day_range.start]

    def _series_place(self, rng: Random, preset: Preset) -> PlannedSeries | None:
        usual = rng.randrange(DAY_CELLS - preset.cells + 1)
        chair = rng.randrange(self.chairs)
        days = [rng.randrange(-preset.longest_days, self.days)]
        sessions: list[tuple[int, int, int]] = []
        for number in range(preset.session_count):
            if number:
                days = self._gap_days(rng, preset, sessions[-1][0])
            placed = next(
                ((day, *found) for day in days if (found := self._slot(day, usual, preset.cells, chair))), None
            )
            if placed is None:
                return None
            sessions.append(placed)
            chair = placed[1]
        days = [day for day, _, _ in sessions]
        for _ in range(30):
            patient = rng.randrange(len(self._patient_visits))
            if self._patient_fits(patient, preset, days):
                return PlannedSeries(preset, patient, sessions)
        return None

    def _patient_fits(self, patient: int, preset: Preset, days: list[int]) -> bool:
        """Rule 10 across the patient's series: each of their visits keeps the larger of the two
        protocols' minimum gaps from every other, and their series of one protocol follow one
        another, at most one of them not over yet (the active one)."""
        for day in days:
            for other, gap in self._patient_visits[patient]:
                if abs(day - other) < max(gap, preset.min_gap_days):
                    return False
        first, last = days[0], days[-1]
        for other_first, other_last in self._patient_series[patient].get(preset.key, []):
            if first <= other_last and other_first <= last:
                return False
            if min(last, other_last) >= self.today:
                return False
        return True

    def _gap_days(self, rng: Random, preset: Preset, previous: int) -> list[int]:
        """Days the next session may take, the front desk's usual gap first."""
        preferred = rng.choice(preset.usual_gaps)
        gaps = sorted(range(preset.min_gap_days, preset.max_gap_days + 1), key=lambda g: (abs(g - preferred), g))
        return [previous + gap for gap in gaps if previous + gap in self.day_range]

    def _slot(self, day: int, usual: int, cells: int, preferred: int) -> tuple[int, int] | None:
        """(chair, start cell) nearest the usual time, on the preferred chair when it is free there.

        Like a front desk, it does not leave a piece of free chair time too short for any session
        where it could book next to a neighbour instead: the free time left stays bookable.
        """
        block = cells + BUFFER_CELLS
        candidates = []
        for chair, held in enumerate(self._day(day)):
            free_from = 0
            for start, end in [*held, (DAY_CELLS + BUFFER_CELLS, 0)]:
                for cell in _starts_in_gap(free_from, start, block, usual):
                    candidates.append((abs(cell - usual), chair != preferred, cell, chair))
                free_from = end
        for _, _, cell, chair in sorted(candidates):
            if self._time_allowed(day, cell, cells):
                return chair, cell
        return None

    def _chair_free(self, day: int, chair: int, cell: int, cells: int) -> bool:
        end = cell + cells + BUFFER_CELLS
        return all(start >= end or held_end <= cell for start, held_end in self._day(day)[chair])

    def _time_allowed(self, day: int, cell: int, cells: int) -> bool:
        at = day - self.day_range.start
        if self._starts[at][cell] >= STAGGER_CAP:
            return False
        capacity = NURSES * PATIENTS_PER_NURSE
        return all(running < capacity for running in self._running[at][cell : cell + cells])

    def _hold(self, planned: PlannedSeries) -> None:
        cells = planned.preset.cells
        for day, chair, cell in planned.sessions:
            held = self._day(day)[chair]
            held.append((cell, cell + cells + BUFFER_CELLS))
            held.sort()
            at = day - self.day_range.start
            self._starts[at][cell] += 1
            for running in range(cell, cell + cells):
                self._running[at][running] += 1
            self._patient_visits[planned.patient].append((day, planned.preset.min_gap_days))
        days = [day for day, _, _ in planned.sessions]
        self._patient_series[planned.patient].setdefault(planned.preset.key, []).append((days[0], days[-1]))
        self.series.append(planned)


def _starts_in_gap(free_from: int, free_until: int, block: int, usual: int) -> list[int]:
    """Start cells for `block` cells in free time [free_from, free_until): against either edge, or
    nearest `usual` while both leftovers stay long enough for the shortest session."""
    last = free_until - block
    if last < free_from:
        return []
    if free_until - free_from < block + SHORTEST_BLOCK:
        return [min(max(usual, free_from), last)]
    low, high = free_from + SHORTEST_BLOCK, last - SHORTEST_BLOCK
    middle = [min(max(usual, low), high)] if low <= high else []
    return [free_from, last, *middle]
