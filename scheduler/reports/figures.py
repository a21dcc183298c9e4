"""The reports page's figures: each rate with its numerator and denominator, and the rows behind it.

A report reads one clinic's visits that start on the chosen days (clinic dates), of one protocol
or all, and optionally of one weekday and one start hour (clinic time). The visits are read once,
as a compact row each, and every table is a count over those rows, so the tables, their totals,
the charts and the CSV downloads cannot disagree.

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
- booking lead time: days from booking the visit to its start.
"""

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import cached_property
from statistics import median

from django.db.models import Count, FloatField, Func, Q
from django.db.models.functions import ExtractHour, ExtractIsoWeekDay, TruncDate
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


# Not frozen: a frozen dataclass sets each field through object.__setattr__, which made a year's
# 20,000 visits cost some 50 ms more to build. Nothing changes a visit once read.
@dataclass
class Visit:
    """One session of the report, with what each figure needs to know of it."""

    id: int
    series_id: int
    number: int
    protocol: str
    chair: str
    starts: datetime  # clinic time
    ends: datetime
    status: str
    weekday: int
    hour: int
    lead_days: int
    late_cancel: bool
    # None: not counted for confirmations (booked inside 24 h, cancelled before, or still ahead).
    confirmed_by_24h: bool | None
    confirmed: bool
    chair_in: datetime | None  # recorded attendance, clinic time
    chair_out: datetime | None

    @property
    def scheduled_minutes(self) -> float:
        return 0.0 if self.status == Status.CANCELLED else _minutes(self.starts, self.ends)

    @property
    def actual_minutes(self) -> float | None:
        return _minutes(self.chair_in, self.chair_out) if self.chair_in and self.chair_out else None


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
    visits: list[Visit]
    available: dict[tuple[int, int], float]  # (weekday, hour) → open chair-minutes
    series: list["SeriesOutcome"]
    funnel: list["FunnelRow"]
    tables: dict[str, Table] = field(default_factory=dict)

    @property
    def counted(self) -> list[Visit]:
        """The visits the rates count: those of the chosen start hour, when one is chosen."""
        hour = self.scope.hour
        return self.visits if hour is None else [v for v in self.visits if v.hour == hour]

    @cached_property
    def chair_minutes(self) -> tuple[Counter, Counter]:
        """Scheduled and actual chair-minutes by weekday: counted once, for the tile and the table."""
        return _chair_minutes(self)


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
    report = Report(
        scope=scope,
        visits=_visits(scope, now),
        available=_open_chair_minutes(scope),
        series=_series_outcomes(scope),
        funnel=_funnel(scope),
    )
    for build in (_by_weekday, _by_hour, _by_protocol, _chair_use, _confirmations, _lead_times, _series_table):
        table = build(report)
        report.tables[table.name] = table
    for table in _funnel_tables(report):
        report.tables[table.name] = table
    report.tables["visits"] = _visit_rows(report)
    return report


# Headline figures -------------------------------------------------------------------------------


def no_show_rate(visits: Iterable[Visit]) -> Rate:
    marked = [v for v in visits if v.status in MARKED]
    return Rate(sum(v.status == Status.NO_SHOW for v in marked), len(marked))


def late_cancel_rate(visits: Iterable[Visit]) -> Rate:
    visits = list(visits)
    return Rate(sum(v.late_cancel for v in visits), len(visits))


def confirmed_rate(visits: Iterable[Visit]) -> Rate:
    counted = [v.confirmed_by_24h for v in visits if v.confirmed_by_24h is not None]
    return Rate(sum(counted), len(counted))


def chair_use(report: Report) -> tuple[Rate, Rate]:
    """Scheduled and actual chair-minutes of the open chair-minutes (rounded to whole minutes)."""
    open_minutes = round(sum(report.available.values()))
    scheduled, actual = (sum(by_weekday.values()) for by_weekday in report.chair_minutes)
    return Rate(round(scheduled), open_minutes), Rate(round(actual), open_minutes)


def series_rate(outcomes: Iterable[SeriesOutcome]) -> Rate:
    outcomes = list(outcomes)
    return Rate(sum(o.on_protocol for o in outcomes), len(outcomes))


def median_lead_days(visits: Iterable[Visit]) -> float | None:
    leads = [v.lead_days for v in visits]
    return median(leads) if leads else None


def reminders_delivered(report: Report) -> Rate:
    """Texts delivered of the reminder texts planned."""
    texts = [row for row in report.funnel if row.channel == Channel.SMS]
    delivered = sum(row.count for row in texts if row.status == Message.Status.DELIVERED)
    return Rate(delivered, sum(row.count for row in texts))


# Reading the database ----------------------------------------------------------------------------


def _bounds(scope: Scope) -> tuple[datetime, datetime]:
    zone = scope.clinic.zone
    return day_bounds(scope.first, zone)[0], day_bounds(scope.last, zone)[1]


def _sessions(scope: Scope):
    start, end = _bounds(scope)
    sessions = Session.objects.filter(clinic=scope.clinic, starts_at__gte=start, starts_at__lt=end)
    if scope.protocol is not None:
        sessions = sessions.filter(series__protocol=scope.protocol)
    if scope.weekday is not None:
        # ISO weekdays run 1 (Monday) to 7.
        zone = scope.clinic.zone
        sessions = sessions.annotate(iso_day=ExtractIsoWeekDay("starts_at", tzinfo=zone)).filter(
            iso_day=scope.weekday + 1
        )
    return sessions


class _Epoch(Func):
    """A moment as seconds since 1970, a float. A year's visits hold some 140,000 moments: read as
    datetimes, each went through Django's timestamptz loader, written in Python, which took most of
    the report's time; a float is read in C, and the clinic-time datetimes are made from it."""

    output_field = FloatField()
    template = "EXTRACT(EPOCH FROM %(expressions)s)::double precision"

    def get_db_converters(self, connection) -> list:
        # Either database answers a float already: a float() of each costs a year's report 30 ms.
        return []

    def as_sqlite(self, compiler, connection, **extra_context):
        # julianday's float is good to some 50 µs: rounded to the millisecond.
        template = "ROUND((julianday(%(expressions)s) - 2440587.5) * 86400.0, 3)"
        return self.as_sql(compiler, connection, template=template, **extra_context)


_MOMENTS = ("starts_at", "ends_at", "status_changed_at", "confirmed_at", "created_at", "chair_in_at", "chair_out_at")


def _visits(scope: Scope, now: datetime) -> list[Visit]:
    clinic = scope.clinic
    zone, notice = clinic.zone, clinic.cancellation_notice_hours * 3600
    protocols = dict(Protocol.objects.filter(clinic=clinic).values_list("id", "name"))
    chairs = dict(clinic.chairs.values_list("id", "name"))
    seconds = {f"{name}_seconds": _Epoch(name) for name in _MOMENTS}
    rows = (
        _sessions(scope)
        .annotate(**seconds)
        .values_list("id", "series_id", "number", "series__protocol_id", "chair_id", "status", *seconds)
    )
    now_seconds = now.timestamp()
    visits = []
    for row in rows.order_by("starts_at", "id"):
        pk, series_id, number, protocol_id, chair_id, status, starts, ends, changed, confirmed, created, c_in, c_out = (
            row
        )
        local = datetime.fromtimestamp(starts, zone)
        cancelled = status == Status.CANCELLED
        visits.append(
            Visit(
                id=pk,
                series_id=series_id,
                number=number,
                protocol=protocols.get(protocol_id, ""),
                chair=chairs.get(chair_id, ""),
                starts=local,
                ends=datetime.fromtimestamp(ends, zone),
                status=status,
                weekday=local.weekday(),
                hour=local.hour,
                lead_days=max(int((starts - created) // DAY_SECONDS), 0),
                late_cancel=cancelled and changed is not None and changed > starts - notice,
                confirmed_by_24h=_confirmed_by(starts, status, changed, confirmed, created, now_seconds),
                confirmed=confirmed is not None and confirmed < starts,
                chair_in=datetime.fromtimestamp(c_in, zone) if c_in is not None else None,
                chair_out=datetime.fromtimestamp(c_out, zone) if c_out is not None else None,
            )
        )
    return visits


def _confirmed_by(
    starts: float,
    status: str,
    changed: float | None,
    confirmed: float | None,
    created: float,
    now: float,
) -> bool | None:
    """Seconds since 1970, as _visits reads them."""
    deadline = starts - CONFIRM_BY.total_seconds()
    if deadline > now or created > deadline:
        return None
    if status == Status.CANCELLED and (changed is None or changed <= deadline):
        return None
    return confirmed is not None and confirmed <= deadline


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


def _series_outcomes(scope: Scope) -> list[SeriesOutcome]:
    """Series that finished on the report's days (their last visit that took place), each with
    the sessions it completed and the gaps between them that fell outside the protocol's."""
    zone = scope.clinic.zone
    start, end = _bounds(scope)
    finished = Series.objects.filter(
        clinic=scope.clinic, status=Series.Status.COMPLETED, sessions__starts_at__gte=start,
        sessions__starts_at__lt=end,
    )  # fmt: skip
    if scope.protocol is not None:
        finished = finished.filter(protocol=scope.protocol)
    # The clinic date of each visit, from the database: a date is read faster than a moment (_Epoch).
    rows = (
        Session.objects.filter(series__in=finished.values("pk"), status=Status.COMPLETED)
        .order_by("series_id", "starts_at")
        .annotate(day=TruncDate("starts_at", tzinfo=zone))
        .values_list(
            "series_id", "day", "series__protocol__name", "series__protocol__session_count",
            "series__protocol__min_gap_days", "series__protocol__max_gap_days",
        )
    )  # fmt: skip
    by_series: dict[int, list[tuple]] = defaultdict(list)
    for row in rows:
        by_series[row[0]].append(row)
    outcomes = []
    for series_id, visits in by_series.items():
        days = [day for _, day, *_ in visits]
        _, _, name, needed, least, most = visits[0]
        if not scope.first <= days[-1] <= scope.last:
            continue
        outside = sum(not least <= (b - a).days <= most for a, b in zip(days, days[1:], strict=False))
        outcomes.append(SeriesOutcome(series_id, name, days[-1], needed, len(days), outside))
    return sorted(outcomes, key=lambda o: (o.finished, o.series_id))


def _funnel(scope: Scope) -> list[FunnelRow]:
    """The reminders planned for the report's visits, counted by channel, status and reason."""
    start, end = _bounds(scope)
    messages = Message.objects.filter(
        clinic=scope.clinic, purpose=Purpose.REMINDER, session__starts_at__gte=start, session__starts_at__lt=end
    )
    if scope.protocol is not None:
        messages = messages.filter(session__series__protocol=scope.protocol)
    zone = scope.clinic.zone
    if scope.weekday is not None:
        messages = messages.annotate(iso_day=ExtractIsoWeekDay("session__starts_at", tzinfo=zone)).filter(
            iso_day=scope.weekday + 1
        )
    if scope.hour is not None:
        messages = messages.annotate(start_hour=ExtractHour("session__starts_at", tzinfo=zone)).filter(
            start_hour=scope.hour
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


def _attendance_row(label: object, visits: list[Visit]) -> list[object]:
    shows, cancels = no_show_rate(visits), late_cancel_rate(visits)
    return [label, len(visits), shows.denominator, shows.numerator, shows.percent, cancels.numerator, cancels.percent]


def _grouped(visits: Iterable[Visit], key: Callable[[Visit], object]) -> dict[object, list[Visit]]:
    groups: dict[object, list[Visit]] = defaultdict(list)
    for visit in visits:
        groups[key(visit)].append(visit)
    return groups


def _by_weekday(report: Report) -> Table:
    groups = _grouped(report.counted, lambda v: v.weekday)
    rows = [_attendance_row(WEEKDAYS[day], groups[day]) for day in range(7) if day in groups]
    return Table("weekday", "Attendance by weekday", ["weekday", *_ATTENDANCE], rows)


def _by_hour(report: Report) -> Table:
    groups = _grouped(report.counted, lambda v: v.hour)
    rows = [_attendance_row(f"{hour:02d}:00", groups[hour]) for hour in sorted(groups)]
    return Table("hour", "Attendance by start hour", ["start hour", *_ATTENDANCE], rows)


def _by_protocol(report: Report) -> Table:
    groups = _grouped(report.counted, lambda v: v.protocol)
    rows = []
    for name in sorted(groups):
        confirmed = confirmed_rate(groups[name])
        counts = [confirmed.numerator, confirmed.denominator, confirmed.percent]
        rows.append([*_attendance_row(name, groups[name]), *counts])
    columns = ["protocol", *_ATTENDANCE, "confirmed by 24 h", "could confirm", "confirmation rate"]
    return Table("protocol", "Attendance by protocol", columns, rows)


def _chair_minutes(report: Report) -> tuple[Counter, Counter]:
    """Scheduled and actual chair-minutes by weekday of every visit, split at the hour: with an
    hour chosen, only the minutes inside it."""
    chosen = report.scope.hour
    scheduled: Counter = Counter()
    actual: Counter = Counter()
    for visit in report.visits:
        if visit.status != Status.CANCELLED:
            for hour, minutes in _split_by_hour(visit.starts, visit.ends):
                if chosen is None or hour == chosen:
                    scheduled[visit.weekday] += minutes
        if visit.chair_in is not None and visit.chair_out is not None:
            for hour, minutes in _split_by_hour(visit.chair_in, visit.chair_out):
                if chosen is None or hour == chosen:
                    actual[visit.chair_in.weekday()] += minutes
    return scheduled, actual


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
    visits = report.counted
    marked = [v for v in visits if v.status in MARKED]
    rows = []
    for label, group in (("confirmed", [v for v in marked if v.confirmed]),
                         ("not confirmed", [v for v in marked if not v.confirmed])):  # fmt: skip
        rate = no_show_rate(group)
        rows.append([label, rate.denominator, rate.numerator, rate.percent])
    return Table("confirmations", "No-shows of confirmed and unconfirmed visits",
                 ["patient", "marked", "no-shows", "no-show rate"], rows)  # fmt: skip


def _lead_bucket(days: int) -> str:
    for below, label in LEAD_BUCKETS:
        if days < below:
            return label
    return LEAD_LAST


def _lead_times(report: Report) -> Table:
    counts = Counter(_lead_bucket(v.lead_days) for v in report.counted)
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


def _visit_rows(report: Report) -> Table:
    columns = [
        "session", "series", "session number", "protocol", "chair", "date", "start", "status", "late cancel",
        "confirmed by 24 h", "booked days ahead", "scheduled minutes", "chair-in", "chair-out",
    ]  # fmt: skip
    rows = [
        [v.id, v.series_id, v.number, v.protocol, v.chair, v.starts.date().isoformat(), _clock(v.starts),
         v.status, _yes_no(v.late_cancel), "" if v.confirmed_by_24h is None else _yes_no(v.confirmed_by_24h),
         v.lead_days, round(v.scheduled_minutes), _clock(v.chair_in) if v.chair_in else "",
         _clock(v.chair_out) if v.chair_out else ""]
        for v in report.counted
    ]  # fmt: skip
    return Table("visits", "Every visit counted", columns, rows)


# Small helpers -----------------------------------------------------------------------------------


def _minutes(start: datetime, end: datetime) -> float:
    return (end.timestamp() - start.timestamp()) / 60


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
