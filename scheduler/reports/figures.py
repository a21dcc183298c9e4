"""The reports page's figures: each rate with its numerator and denominator, and the rows behind it.

A report reads one clinic's visits that start on the chosen days (clinic dates), of one protocol
or all, and optionally of one weekday and one start hour (clinic time). The database counts them
once, grouped into cells of visits alike in everything a table cuts by (weekday, start hour,
protocol, status, and the flags below, each an SQL expression), and every table and headline is
a sum over those cells, so the tables, their totals, the charts and the CSV downloads cannot
disagree. The CSV of every visit reads the same expressions row by row. Counting in the database
keeps a year of a busy clinic (20,000 visits) to one grouped read: reading the visits themselves
into Python took about a second.

Definitions, as the page states them:
- no-show rate: no-shows of the visits that were marked (arrived, completed or no-show);
- late cancel: cancelled inside the clinic's cancellation notice, of every visit booked for those days;
- confirmed by 24 h before: confirmed at least 24 h before the start, of the visits that were
  booked by then and not cancelled before then, once that moment has passed;
- chair use: chair time of the visits not cancelled (scheduled) and time between recorded
  chair-in and chair-out (actual), of the chairs' open hours (active chairs × opening hours,
  closed dates left out). With an hour chosen, it counts minutes inside that hour;
- series on protocol: series finished on those days that completed every session with every gap
  inside the protocol's minimum and maximum;
- booking lead time: whole days from booking the visit to its start.
"""

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from statistics import median
from zoneinfo import ZoneInfo

from django.db import connection, transaction
from django.db.models import Case, Count, F, FloatField, Func, IntegerField, Q, QuerySet, Sum, Value, When, Window
from django.db.models.functions import ExtractHour, ExtractIsoWeekDay, Floor, Lag, TruncDate
from django.utils import timezone

from notifications.metrics import reason_group
from notifications.models import Channel, Message, Purpose
from sessions.clock import dates_between, day_bounds, wall_clock
from sessions.models import WEEKDAY_NAMES, Clinic, Protocol, Series, Session

Status = Session.Status
MARKED = (Status.ARRIVED, Status.COMPLETED, Status.NO_SHOW)
CONFIRM_BY = timedelta(hours=24)
DAY_SECONDS = 24 * 3600
LEAD_BUCKETS = ((1, "same day"), (3, "1–2 days"), (8, "3–7 days"), (15, "8–14 days"), (31, "15–30 days"))
LEAD_LAST = "over 30 days"
WEEKDAYS = WEEKDAY_NAMES
# The `confirm` flag: whether a visit counts for "confirmed by 24 h before", and how.
NOT_COUNTED, UNCONFIRMED, CONFIRMED = 0, 1, 2
# Hours a visit may run past its start hour beyond its protocol's chair time (a late chair-out).
OVERRUN_HOURS = 2


@dataclass(frozen=True)
class Scope:
    clinic: Clinic
    first: date
    last: date
    protocol: Protocol | None = None
    weekday: int | None = None  # 0 is Monday, as Weekday
    hour: int | None = None  # a start hour, clinic time


@dataclass(frozen=True)
class Rate:
    numerator: int
    denominator: int

    @property
    def value(self) -> float | None:
        return self.numerator / self.denominator if self.denominator else None

    @property
    def percent(self) -> str:
        value = self.value
        return "–" if value is None else f"{value * 100:.1f}%"


@dataclass(frozen=True)
class Cell:
    """`visits` visits alike in everything the tables cut by, counted by the database."""

    weekday: int  # 0 is Monday
    hour: int
    protocol: str
    status: str
    late_cancel: bool
    confirm: int  # NOT_COUNTED, UNCONFIRMED or CONFIRMED by 24 h before
    confirmed: bool  # confirmed at all before the start
    visits: int
    scheduled_minutes: float
    actual_minutes: float


@dataclass(frozen=True)
class Table:
    """A table of the page: its CSV is these rows, nothing else."""

    name: str
    title: str
    columns: list[str]
    rows: list[list[object]]


@dataclass
class Report:
    scope: Scope
    cells: list[Cell]  # of the chosen start hour, when one is chosen
    leads: Counter  # whole days booked ahead → visits
    available: dict[tuple[int, int], float]  # (weekday, hour) → open chair-minutes
    chair_minutes: tuple[Counter, Counter]  # scheduled and actual chair-minutes by weekday
    series: list["SeriesOutcome"]
    funnel: list["FunnelRow"]
    tables: dict[str, Table] = field(default_factory=dict)


@dataclass(frozen=True)
class SeriesOutcome:
    series_id: int
    protocol: str
    finished: date
    sessions_needed: int
    sessions_completed: int
    gaps_outside: int

    @property
    def on_protocol(self) -> bool:
        return self.sessions_completed >= self.sessions_needed and self.gaps_outside == 0


@dataclass(frozen=True)
class FunnelRow:
    channel: str
    status: str
    reason: str
    count: int
    went_out: int


def report_build(*, scope: Scope, now: datetime | None = None) -> Report:
    now = now or timezone.now()
    with _one_snapshot():
        protocols = _protocols_of(scope.clinic)
        cells = _cells(scope, now, protocols)
        report = Report(
            scope=scope,
            cells=cells,
            leads=_lead_days(scope),
            available=_open_chair_minutes(scope),
            chair_minutes=_chair_minutes(scope, cells, protocols),
            series=_series_outcomes(scope, protocols),
            funnel=_funnel(scope),
        )
    for build in (_by_weekday, _by_hour, _by_protocol, _chair_use, _confirmations, _lead_times, _series_table):
        table = build(report)
        report.tables[table.name] = table
    for table in _funnel_tables(report):
        report.tables[table.name] = table
    return report


# Headline figures -------------------------------------------------------------------------------


def visits_of(cells: Iterable[Cell]) -> int:
    return sum(cell.visits for cell in cells)


def no_show_rate(cells: Iterable[Cell]) -> Rate:
    marked = [cell for cell in cells if cell.status in MARKED]
    return Rate(visits_of(c for c in marked if c.status == Status.NO_SHOW), visits_of(marked))


def late_cancel_rate(cells: Iterable[Cell]) -> Rate:
    cells = list(cells)
    return Rate(visits_of(c for c in cells if c.late_cancel), visits_of(cells))


def confirmed_rate(cells: Iterable[Cell]) -> Rate:
    counted = [cell for cell in cells if cell.confirm != NOT_COUNTED]
    return Rate(visits_of(c for c in counted if c.confirm == CONFIRMED), visits_of(counted))


def chair_use(report: Report) -> tuple[Rate, Rate]:
    """Scheduled and actual chair-minutes of the open chair-minutes (rounded to whole minutes)."""
    open_minutes = round(sum(report.available.values()))
    scheduled, actual = (sum(by_weekday.values()) for by_weekday in report.chair_minutes)
    return Rate(round(scheduled), open_minutes), Rate(round(actual), open_minutes)


def series_rate(outcomes: Iterable[SeriesOutcome]) -> Rate:
    outcomes = list(outcomes)
    return Rate(sum(o.on_protocol for o in outcomes), len(outcomes))


def median_lead_days(leads: Counter) -> float | None:
    return median(leads.elements()) if leads else None


def reminders_delivered(report: Report) -> Rate:
    """Texts delivered of the reminder texts planned."""
    texts = [row for row in report.funnel if row.channel == Channel.SMS]
    delivered = sum(row.count for row in texts if row.status == Message.Status.DELIVERED)
    return Rate(delivered, sum(row.count for row in texts))


# Reading the database ----------------------------------------------------------------------------


@contextmanager
def _one_snapshot() -> Iterator[None]:
    """The report's reads, on PostgreSQL: one read-only snapshot, so that its tables, the funnel
    and the series count the same visits while bookings go on, and each read planned for its own
    days. A connection prepares a statement it has run five times (settings: prepare_threshold)
    and PostgreSQL then tries a plan made without the values, which guesses a hundred visits
    for any range: for a year's 20,000 it sorted instead of hashing and took the page from about
    200 ms to 350 ms after a worker's tenth report. SQLite (development) reads as it is: its
    transactions here begin IMMEDIATE, which would hold off writers while a report reads."""
    if connection.vendor != "postgresql":
        yield
        return
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        with connection.cursor() as cursor:
            if outermost:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            cursor.execute("SET LOCAL plan_cache_mode = force_custom_plan")
        yield


def _bounds(scope: Scope) -> tuple[datetime, datetime]:
    zone = scope.clinic.zone
    return day_bounds(scope.first, zone)[0], day_bounds(scope.last, zone)[1]


def _sessions(scope: Scope, *, of_the_hour: bool = True) -> QuerySet[Session]:
    """The report's sessions, with their start's weekday (ISO: 1 is Monday) and hour in clinic
    time: every read of the report narrows through here. `of_the_hour` false keeps every start
    hour, for the chair minutes of visits that began before the chosen hour."""
    start, end = _bounds(scope)
    zone = scope.clinic.zone
    sessions = Session.objects.filter(clinic=scope.clinic, starts_at__gte=start, starts_at__lt=end).annotate(
        start_day=_Local("isodow", "starts_at", zone), start_hour=_Local("hour", "starts_at", zone)
    )
    if scope.protocol is not None:
        sessions = sessions.filter(series__protocol=scope.protocol)
    if scope.weekday is not None:
        sessions = sessions.filter(start_day=scope.weekday + 1)
    if scope.hour is not None and of_the_hour:
        sessions = sessions.filter(start_hour=scope.hour)
    return sessions


class _Local(Func):
    """A part of a moment in clinic time, a whole number: "isodow" (1 is Monday) or "hour".

    On PostgreSQL it is date_part, which answers double precision: EXTRACT, which Django's
    Extract functions write, answers numeric since PostgreSQL 14, and numeric arithmetic on a
    year's visits was a quarter of the report's main read. SQLite reads Django's own."""

    output_field = IntegerField()
    _DJANGO = {"isodow": ExtractIsoWeekDay, "hour": ExtractHour}

    def __init__(self, part: str, expression: str, zone: ZoneInfo) -> None:
        if part not in self._DJANGO:
            raise ValueError(f"not a part _Local reads: {part!r}")
        self.part, self.zone = part, zone
        super().__init__(F(expression))

    def as_sql(self, compiler, connection, **extra_context):
        sql, params = compiler.compile(self.source_expressions[0])
        return f"date_part('{self.part}', {sql} AT TIME ZONE %s)::integer", (*params, self.zone.key)

    def as_sqlite(self, compiler, connection, **extra_context):
        return compiler.compile(self._DJANGO[self.part](self.source_expressions[0], tzinfo=self.zone))


class _Epoch(Func):
    """A moment as seconds since 1970, a float. Differences of moments (chair minutes, days booked
    ahead) are then plain arithmetic on either database, and the rows read one by one (the
    visits' CSV, an hour's split) come back as floats, read in C: as datetimes each went through
    Django's timestamptz loader, written in Python, which cost a year's visits most of a second.
    date_part, not EXTRACT, for the reason _Local gives."""

    output_field = FloatField()
    template = "date_part('epoch', %(expressions)s)"

    def get_db_converters(self, connection) -> list:
        # Either database answers a float already: a float() of each costs a year's report 30 ms.
        return []

    def as_sqlite(self, compiler, connection, **extra_context):
        # julianday's float is good to some 50 µs: rounded to the millisecond.
        template = "ROUND((julianday(%(expressions)s) - 2440587.5) * 86400.0, 3)"
        return self.as_sql(compiler, connection, template=template, **extra_context)


def _annotated(scope: Scope, now: datetime) -> QuerySet[Session]:
    """The report's sessions with what each figure asks of a visit, as SQL expressions: the
    grouped counts and the row-by-row CSV read the same ones."""
    clinic = scope.clinic
    notice = timedelta(hours=clinic.cancellation_notice_hours)
    deadline = F("starts_at") - CONFIRM_BY
    cancelled = Q(status=Status.CANCELLED)
    return _sessions(scope).annotate(
        protocol_ref=F("series__protocol_id"),
        late=Case(When(cancelled & Q(status_changed_at__gt=F("starts_at") - notice), then=Value(True)), default=False),
        confirm=Case(
            # Not counted: 24 h before has not come yet, the visit was booked after it, or it
            # was cancelled by then.
            When(
                Q(starts_at__gt=now + CONFIRM_BY)
                | Q(created_at__gt=deadline)
                | (cancelled & (Q(status_changed_at=None) | Q(status_changed_at__lte=deadline))),
                then=Value(NOT_COUNTED),
            ),
            When(confirmed_at__lte=deadline, then=Value(CONFIRMED)),
            default=Value(UNCONFIRMED),
        ),
        confirmed=Case(When(confirmed_at__lt=F("starts_at"), then=Value(True)), default=False),
    )


def _days_ahead() -> Floor:
    """Whole days from booking a visit to its start, negative for one booked after it began."""
    return Floor((_Epoch("starts_at") - _Epoch("created_at")) / DAY_SECONDS)


def _protocols_of(clinic: Clinic) -> dict[int, Protocol]:
    return {protocol.pk: protocol for protocol in Protocol.objects.filter(clinic=clinic)}


def _name(protocols: dict[int, Protocol], pk: int) -> str:
    protocol = protocols.get(pk)
    return protocol.name if protocol is not None else ""


def _cells(scope: Scope, now: datetime, protocols: dict[int, Protocol]) -> list[Cell]:
    minutes = (_Epoch("ends_at") - _Epoch("starts_at")) / 60
    rows = (
        _annotated(scope, now)
        .values_list("start_day", "start_hour", "protocol_ref", "status", "late", "confirm", "confirmed")
        .annotate(
            visits=Count("pk"),
            scheduled=Sum(minutes, filter=~Q(status=Status.CANCELLED), output_field=FloatField()),
            # NULL where either time is missing: left out of the sum.
            actual=Sum((_Epoch("chair_out_at") - _Epoch("chair_in_at")) / 60, output_field=FloatField()),
        )
        .order_by()
    )
    return [
        Cell(day - 1, hour, _name(protocols, protocol), status, late, confirm, confirmed, visits,
             scheduled or 0.0, actual or 0.0)
        for day, hour, protocol, status, late, confirm, confirmed, visits, scheduled, actual in rows
    ]  # fmt: skip


def _lead_days(scope: Scope) -> Counter:
    """Visits by whole days from booking to start (a visit booked after its start counts 0).
    Read from the sessions alone: the flags' join to the series would double the read's time."""
    rows = _sessions(scope).annotate(days=_days_ahead()).values_list("days").annotate(n=Count("pk")).order_by()
    leads: Counter = Counter()
    for ahead, visits in rows:
        leads[max(int(ahead), 0)] += visits
    return leads


def _chair_minutes(scope: Scope, cells: list[Cell], protocols: dict[int, Protocol]) -> tuple[Counter, Counter]:
    """Scheduled and actual chair-minutes by weekday. For every hour they are the cells' sums;
    for one hour, the minutes inside it of every visit that reaches into it, wherever it
    started, split in Python (a few thousand visits at most)."""
    scheduled: Counter = Counter()
    actual: Counter = Counter()
    if scope.hour is None:
        for cell in cells:
            scheduled[cell.weekday] += cell.scheduled_minutes
            actual[cell.weekday] += cell.actual_minutes
        return scheduled, actual
    zone = scope.clinic.zone
    for starts, ends, status, chair_in, chair_out in _reaching_into(scope, protocols):
        weekday = datetime.fromtimestamp(starts, zone).weekday()
        if status != Status.CANCELLED:
            scheduled[weekday] += _minutes_in_hour(starts, ends, scope.hour, zone)
        if chair_in is not None and chair_out is not None:
            actual[weekday] += _minutes_in_hour(chair_in, chair_out, scope.hour, zone)
    return scheduled, actual


def _reaching_into(scope: Scope, protocols: dict[int, Protocol]) -> QuerySet:
    """(start, end, status, chair-in, chair-out) in epoch seconds of the visits that may reach
    into the chosen hour: those starting in it or in the hours before it that the clinic's
    longest protocol (and an overrun) spans."""
    longest = max((protocol.chair_minutes for protocol in protocols.values()), default=60)
    reach = -(-longest // 60) + OVERRUN_HOURS
    return (
        _sessions(scope, of_the_hour=False)
        .filter(start_hour__gte=scope.hour - reach, start_hour__lte=scope.hour)
        .values_list(_Epoch("starts_at"), _Epoch("ends_at"), "status", _Epoch("chair_in_at"), _Epoch("chair_out_at"))
        .order_by()
    )


def _minutes_in_hour(start: float, end: float, hour: int, zone) -> float:
    begins = datetime.fromtimestamp(start, zone)
    return sum(minutes for at, minutes in _split_by_hour(begins, datetime.fromtimestamp(end, zone)) if at == hour)


def _open_chair_minutes(scope: Scope) -> dict[tuple[int, int], float]:
    """Open chair-minutes per (weekday, hour) over the report's days: every active chair for
    every opening hour, closed dates left out; split at the hour so that a chosen hour counts
    only its own minutes."""
    clinic = scope.clinic
    zone = clinic.zone
    chairs = clinic.chairs.filter(is_active=True).count()
    hours: dict[int, list[tuple[time, time]]] = defaultdict(list)
    for weekday, opens, closes in clinic.opening_hours.values_list("weekday", "opens", "closes"):
        hours[weekday].append((opens, closes))
    closed = set(clinic.closed_dates.filter(date__range=(scope.first, scope.last)).values_list("date", flat=True))
    available: dict[tuple[int, int], float] = Counter()
    for day in dates_between(scope.first, scope.last):
        weekday = day.weekday()
        if day in closed or (scope.weekday is not None and weekday != scope.weekday):
            continue
        for opens, closes in hours.get(weekday, ()):
            start = wall_clock(day, opens, zone).astimezone(zone)
            end = wall_clock(day, closes, zone).astimezone(zone)
            for hour, minutes in _split_by_hour(start, end):
                available[weekday, hour] += minutes * chairs
    if scope.hour is not None:
        available = {key: value for key, value in available.items() if key[1] == scope.hour}
    return dict(available)


def _series_outcomes(scope: Scope, protocols: dict[int, Protocol]) -> list[SeriesOutcome]:
    """Series that finished on the report's days (their last visit that took place), each with
    the sessions it completed and the gaps between them that fell outside the protocol's.

    The database gives each completed visit the day of the one before it (a window) and sums
    them per series, so a year's 17,000 visits come back as one row per series."""
    zone = scope.clinic.zone
    start, _ = _bounds(scope)
    # A series that finished on the report's days began at most its protocol's longest span before.
    span = max(((p.session_count - 1) * p.max_gap_days for p in protocols.values()), default=0)
    completed = Session.objects.filter(
        clinic=scope.clinic, status=Status.COMPLETED, series__status=Series.Status.COMPLETED,
        starts_at__gte=start - timedelta(days=span + 1),
    )  # fmt: skip
    if scope.protocol is not None:
        completed = completed.filter(series__protocol=scope.protocol)
    day = TruncDate("starts_at", tzinfo=zone)
    visits = (
        completed.annotate(
            day=day,
            prior_day=Window(Lag(day), partition_by=[F("series_id")], order_by=[F("starts_at").asc()]),
            gap_min=F("series__protocol__min_gap_days"),
            gap_max=F("series__protocol__max_gap_days"),
        )
        .values("series_id", "series__protocol_id", "day", "prior_day", "gap_min", "gap_max")
        .order_by()
    )
    inner, params = visits.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(_SERIES_SQL.format(visits=inner, gap=_days_between("day", "prior_day")), params)
        rows = cursor.fetchall()
    outcomes = []
    for series_id, protocol_id, last, done, outside in rows:
        last = _as_date(last)
        if scope.first <= last <= scope.last:
            protocol = protocols[protocol_id]
            outcomes.append(SeriesOutcome(series_id, protocol.name, last, protocol.session_count, done, int(outside)))
    return sorted(outcomes, key=lambda o: (o.finished, o.series_id))


_SERIES_SQL = """
    SELECT series_id, series__protocol_id, MAX(day), COUNT(*),
           SUM(CASE WHEN prior_day IS NOT NULL AND ({gap} < gap_min OR {gap} > gap_max) THEN 1 ELSE 0 END)
    FROM ({visits}) AS visits GROUP BY series_id, series__protocol_id
"""


def _days_between(later: str, earlier: str) -> str:
    """Whole days between two date columns: PostgreSQL subtracts dates to days; SQLite keeps
    them as text."""
    if connection.vendor == "sqlite":
        return f"CAST(julianday({later}) - julianday({earlier}) AS INTEGER)"
    return f"({later} - {earlier})"


def _as_date(value: date | str) -> date:
    # SQLite answers a raw query's dates as text.
    return value if isinstance(value, date) else date.fromisoformat(value)


def _funnel(scope: Scope) -> list[FunnelRow]:
    """The reminders planned for the report's visits, counted by channel, status and reason."""
    messages = Message.objects.filter(
        clinic=scope.clinic, purpose=Purpose.REMINDER, session__in=_sessions(scope).values("pk")
    )
    counted = (
        messages.values_list("channel", "status", "reason")
        .annotate(count=Count("pk"), went_out=Count("pk", filter=Q(sent_at__isnull=False)))
        .order_by()
    )
    rows: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    for channel, status, reason, count, went_out in counted:
        # Only skips are told apart by reason; a retrying row's reason is a passing state.
        group = reason_group(reason) if status == Message.Status.SKIPPED else ""
        rows[channel, status, group][0] += count
        rows[channel, status, group][1] += went_out
    return [FunnelRow(*key, count, went_out) for key, (count, went_out) in sorted(rows.items())]


# Tables ------------------------------------------------------------------------------------------

_ATTENDANCE = ["visits", "marked", "no-shows", "no-show rate", "late cancels", "late-cancel rate"]


def _attendance_row(label: object, cells: list[Cell]) -> list[object]:
    shows, cancels = no_show_rate(cells), late_cancel_rate(cells)
    return [label, visits_of(cells), shows.denominator, shows.numerator, shows.percent, cancels.numerator,
            cancels.percent]  # fmt: skip


def _grouped(cells: Iterable[Cell], key: Callable[[Cell], object]) -> dict[object, list[Cell]]:
    groups: dict[object, list[Cell]] = defaultdict(list)
    for cell in cells:
        groups[key(cell)].append(cell)
    return groups


def _by_weekday(report: Report) -> Table:
    groups = _grouped(report.cells, lambda c: c.weekday)
    rows = [_attendance_row(WEEKDAYS[day], groups[day]) for day in range(7) if day in groups]
    return Table("weekday", "Attendance by weekday", ["weekday", *_ATTENDANCE], rows)


def _by_hour(report: Report) -> Table:
    groups = _grouped(report.cells, lambda c: c.hour)
    rows = [_attendance_row(f"{hour:02d}:00", groups[hour]) for hour in sorted(groups)]
    return Table("hour", "Attendance by start hour", ["start hour", *_ATTENDANCE], rows)


def _by_protocol(report: Report) -> Table:
    groups = _grouped(report.cells, lambda c: c.protocol)
    rows = []
    for name in sorted(groups):
        confirmed = confirmed_rate(groups[name])
        counts = [confirmed.numerator, confirmed.denominator, confirmed.percent]
        rows.append([*_attendance_row(name, groups[name]), *counts])
    columns = ["protocol", *_ATTENDANCE, "confirmed by 24 h", "could confirm", "confirmation rate"]
    return Table("protocol", "Attendance by protocol", columns, rows)


def _chair_use(report: Report) -> Table:
    scheduled, actual = report.chair_minutes
    available: Counter = Counter()
    for (weekday, _), minutes in report.available.items():
        available[weekday] += minutes
    rows = []
    for day in range(7):
        if not (available[day] or scheduled[day] or actual[day]):
            continue
        open_minutes = round(available[day])
        used, sat = Rate(round(scheduled[day]), open_minutes), Rate(round(actual[day]), open_minutes)
        rows.append([WEEKDAYS[day], _hours(open_minutes), _hours(used.numerator), used.percent,
                     _hours(sat.numerator), sat.percent])  # fmt: skip
    columns = ["weekday", "open chair-hours", "scheduled hours", "scheduled use", "actual hours", "actual use"]
    return Table("chair_use", "Chair use by weekday", columns, rows)


def _confirmations(report: Report) -> Table:
    rows = []
    for label, confirmed in (("confirmed", True), ("not confirmed", False)):
        rate = no_show_rate(c for c in report.cells if c.confirmed == confirmed)
        rows.append([label, rate.denominator, rate.numerator, rate.percent])
    return Table("confirmations", "No-shows of confirmed and unconfirmed visits",
                 ["patient", "marked", "no-shows", "no-show rate"], rows)  # fmt: skip


def _lead_bucket(days: int) -> str:
    for below, label in LEAD_BUCKETS:
        if days < below:
            return label
    return LEAD_LAST


def _lead_times(report: Report) -> Table:
    counts: Counter = Counter()
    for days, visits in report.leads.items():
        counts[_lead_bucket(days)] += visits
    total = sum(counts.values())
    labels = [label for _, label in LEAD_BUCKETS] + [LEAD_LAST]
    rows = [[label, counts[label], Rate(counts[label], total).percent] for label in labels]
    return Table("lead_time", "Booking lead time", ["booked ahead", "visits", "share"], rows)


def _series_table(report: Report) -> Table:
    rows = []
    for name, outcomes in sorted(_grouped(report.series, lambda o: o.protocol).items()):
        rate = series_rate(outcomes)
        every = sum(o.sessions_completed >= o.sessions_needed for o in outcomes)
        rows.append([name, rate.denominator, every, rate.numerator, rate.percent])
    columns = ["protocol", "series finished", "every session completed", "on protocol", "on-protocol rate"]
    return Table("series", "Series finished on protocol", columns, rows)


_FUNNEL_STAGES = (
    ("planned", None),
    ("sent", "went_out"),
    ("delivered", (Message.Status.DELIVERED,)),
    ("failed", (Message.Status.FAILED, Message.Status.UNDELIVERED)),
    ("skipped", (Message.Status.SKIPPED,)),
    ("withdrawn", (Message.Status.CANCELLED,)),
    ("expired", (Message.Status.EXPIRED,)),
    ("waiting", (Message.Status.PLANNED, Message.Status.CLAIMED, Message.Status.SENDING)),
)


def _funnel_tables(report: Report) -> list[Table]:
    columns = ["stage", *(label for _, label in Channel.choices)]
    stages = []
    for stage, statuses in _FUNNEL_STAGES:
        row: list[object] = [stage]
        for channel, _ in Channel.choices:
            rows = [r for r in report.funnel if r.channel == channel]
            if statuses is None:
                row.append(sum(r.count for r in rows))
            elif statuses == "went_out":
                row.append(sum(r.went_out for r in rows))
            else:
                row.append(sum(r.count for r in rows if r.status in statuses))
        stages.append(row)
    skipped: Counter = Counter()
    for r in report.funnel:
        if r.status == Message.Status.SKIPPED:
            skipped[r.channel, r.reason] += r.count
    most_first = sorted(skipped.items(), key=lambda item: (-item[1], item[0]))
    reasons = [[reason, dict(Channel.choices)[channel], count] for (channel, reason), count in most_first]
    return [
        Table("funnel", "Reminder funnel", columns, stages),
        Table("skipped", "Reminders skipped, by reason", ["reason", "channel", "reminders"], reasons),
    ]


VISITS_TABLE = "visits"


def visits_table(*, scope: Scope, now: datetime | None = None) -> Table:
    """Every visit the report counts, one row each, by session and series number (never a
    patient's name): the rows behind every table, with the same flags the counts group by."""
    now = now or timezone.now()
    zone = scope.clinic.zone
    with _one_snapshot():
        protocols = _protocols_of(scope.clinic)
        chairs = dict(scope.clinic.chairs.values_list("id", "name"))
        rows = list(
            _annotated(scope, now)
            .annotate(ahead=_days_ahead())
            .values_list("id", "series_id", "number", "protocol_ref", "chair_id", "status", "late", "confirm",
                         "ahead", _Epoch("starts_at"), _Epoch("ends_at"), _Epoch("chair_in_at"), _Epoch("chair_out_at"))
            .order_by("starts_at", "id")
        )  # fmt: skip
    confirm_text = {NOT_COUNTED: "", UNCONFIRMED: "no", CONFIRMED: "yes"}
    table = []
    for pk, series, number, protocol, chair, status, late, confirm, ahead, starts, ends, c_in, c_out in rows:
        local = datetime.fromtimestamp(starts, zone)
        scheduled = 0 if status == Status.CANCELLED else round((ends - starts) / 60)
        table.append([
            pk, series, number, _name(protocols, protocol), chairs.get(chair, ""), local.date().isoformat(),
            _clock(local), status, _yes_no(late), confirm_text[confirm], max(int(ahead), 0), scheduled,
            _clock(datetime.fromtimestamp(c_in, zone)) if c_in is not None else "",
            _clock(datetime.fromtimestamp(c_out, zone)) if c_out is not None else "",
        ])  # fmt: skip
    columns = [
        "session", "series", "session number", "protocol", "chair", "date", "start", "status", "late cancel",
        "confirmed by 24 h", "booked days ahead", "scheduled minutes", "chair-in", "chair-out",
    ]  # fmt: skip
    return Table(VISITS_TABLE, "Every visit counted", columns, table)


# Small helpers -----------------------------------------------------------------------------------


def _split_by_hour(start: datetime, end: datetime) -> Iterator[tuple[int, float]]:
    """(hour, minutes) pieces of [start, end) at each local hour; the times are in clinic time.

    Worked in seconds since 1970, which cost a year's report far less than datetime arithmetic: a
    clinic hour ends as many seconds on as remain of it on the clock. Zones change their offset
    on the hour, so with the same offset at both ends the hours simply follow one another; across
    a change, the clock is read again at each hour."""
    at, until = start.timestamp(), end.timestamp()
    steady = start.utcoffset() == end.utcoffset()
    hour, into = start.hour, _seconds_into_hour(start)
    while at < until:
        piece_end = min(at + 3600 - into, until)
        yield hour, (piece_end - at) / 60
        at = piece_end
        if steady:
            hour, into = (hour + 1) % 24, 0
        elif at < until:
            local = datetime.fromtimestamp(at, start.tzinfo)
            hour, into = local.hour, _seconds_into_hour(local)


def _seconds_into_hour(moment: datetime) -> float:
    return moment.minute * 60 + moment.second + moment.microsecond / 1_000_000


def _clock(moment: datetime) -> str:
    """As f"{moment:%H:%M}" ("09:05"), five times faster: a year's CSV has some 40,000 of them."""
    return f"{moment.hour:02d}:{moment.minute:02d}"


def _hours(minutes: float) -> str:
    return f"{minutes / 60:.1f}"


def _yes_no(value: bool) -> str:
    return "yes" if value else "no"
