"""The day board of one clinic: its sessions of one day on a chairs × hours grid, each with its
badges, and a summary of the day (sessions, confirmed share, chairs in use, staffing headroom).

Built from a fixed number of queries whatever the day holds: the clinic's chairs, hours, closed
date, staffing blocks, one query for the sessions with everything their badges need, and the
gap watch of their series (rule 12) in one or two more.
"""

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.utils import timezone

from sessions.clock import day_bounds, wall_clock
from sessions.models import Chair, Clinic, Session

from .selectors import GapNotice, Marks, board_sessions, series_gap_notices, session_marks, sessions_per_day

DAY_MINUTES = 24 * 60
# A day with no opening hours (closed, or not configured) still shows working hours.
DEFAULT_HOURS = (8, 18)
SOON = timedelta(hours=24)


@dataclass(frozen=True)
class Badge:
    kind: str
    label: str
    title: str = ""


@dataclass
class Card:
    session: Session
    starts: datetime
    ends: datetime
    count: int
    badges: list[Badge]
    started: bool
    marks: Marks
    # Why the session's series is off its protocol, if it is.
    gaps: list[GapNotice] = field(default_factory=list)
    # Where the card sits on its chair's row, as percentages of the day's grid.
    left: float = 0.0
    width: float = 0.0

    # Strings rather than numbers: the template would run each number through localisation.
    @property
    def sid(self) -> str:
        return str(self.session.pk)

    @property
    def style(self) -> str:
        return f"left: {self.left:g}%; width: {self.width:g}%"

    @property
    def start_time(self) -> str:
        return f"{self.starts:%H:%M}"

    @property
    def time_range(self) -> str:
        return f"{self.starts:%H:%M}–{self.ends:%H:%M}"

    @property
    def tone(self) -> str:
        """The card's colour: its status, or "soon" for an unconfirmed session within 24 hours."""
        return "soon" if any(b.kind == "unconfirmed" for b in self.badges) else self.session.status

    @property
    def has_problem(self) -> bool:
        return any(b.kind in ("failed", "optout", "offprotocol") for b in self.badges)

    @property
    def is_upcoming(self) -> bool:
        return self.session.status in Session.UPCOMING

    # A cancelled session still to come whose chair time no other session has taken since: it may
    # go to the waitlist (set by board_build, which sees the day's other cards).
    frees_chair_time: bool = False

    @property
    def gap_to_act_on(self) -> GapNotice | None:
        """The series' first gap that a re-flow or a make-up can still put right."""
        return next((gap for gap in self.gaps if gap.session_id is not None), None)


@dataclass
class ChairRow:
    chair: Chair
    cards: list[Card] = field(default_factory=list)


@dataclass(frozen=True)
class Summary:
    # The day's sessions that are not cancelled: a no-show was still expected.
    sessions: int
    cancelled: int
    confirmed: int
    chairs_in_use: int
    chairs: int
    # Most patients in chairs at once, when, and how many the nurses on shift can take then.
    peak: int
    peak_at: datetime | None
    capacity_at_peak: int | None
    # The fewest free places at any moment with patients in chairs; None when unstaffed.
    headroom: int | None
    headroom_at: datetime | None

    @property
    def confirmed_percent(self) -> int | None:
        return round(100 * self.confirmed / self.sessions) if self.sessions else None


@dataclass(frozen=True)
class Board:
    clinic: Clinic
    day: date
    today: date
    closed_reason: str | None
    opens: datetime | None
    closes: datetime | None
    hours: list[int]
    rows: list[ChairRow]
    cards: list[Card]
    summary: Summary

    @property
    def previous_day(self) -> date:
        return self.day - timedelta(days=1)

    @property
    def next_day(self) -> date:
        return self.day + timedelta(days=1)

    @property
    def next_week(self) -> date:
        return self.day + timedelta(days=7)

    @property
    def hour_width(self) -> str:
        return f"{100 / len(self.hours):.4g}"

    @property
    def hour_marks(self) -> list[tuple[str, str]]:
        return [(f"{hour:02d}:00", f"{i * 100 / len(self.hours):.4g}") for i, hour in enumerate(self.hours)]

    @property
    def shades(self) -> list[tuple[str, str]]:
        """Parts of the grid outside opening hours, as (left, width) percentages."""
        if self.closed_reason is not None or self.opens is None or self.closes is None:
            return [("0", "100")]
        span = len(self.hours) * 60
        zone = self.clinic.zone
        opens, closes = self.opens.astimezone(zone), self.closes.astimezone(zone)
        before = opens.hour * 60 + opens.minute - self.hours[0] * 60
        after = closes.hour * 60 + closes.minute - self.hours[0] * 60
        shades = [("0", f"{100 * before / span:.4g}")] if before > 0 else []
        if after < span:
            shades.append((f"{100 * after / span:.4g}", f"{100 * (span - after) / span:.4g}"))
        return shades


def board_build(*, clinic: Clinic, day: date, now: datetime | None = None) -> Board:
    now = now or timezone.now()
    zone = clinic.zone
    # The configuration models order by clinic name: `order_by()` spares those queries the join.
    hours = clinic.opening_hours.filter(weekday=day.weekday()).order_by().first()
    closed = clinic.closed_dates.filter(date=day).order_by().values_list("reason", flat=True).first()
    blocks = list(clinic.staffing_blocks.order_by())
    sessions = board_sessions(clinic=clinic, day=day)
    gaps = series_gap_notices(series_ids={s.series_id for s in sessions}, now=now)
    cards = [_card(s, zone, now, gaps.get(s.series_id, [])) for s in sessions]
    on_grid = [c for c in cards if c.session.status in Session.HOLDING or c.session.status == Session.Status.NO_SHOW]
    used_chairs = {c.session.chair_id for c in on_grid}
    chairs = sorted(
        (chair for chair in clinic.chairs.order_by() if chair.is_active or chair.pk in used_chairs),
        key=lambda chair: _natural(chair.name),
    )
    opens = wall_clock(day, hours.opens, zone) if hours else None
    closes = wall_clock(day, hours.closes, zone) if hours else None
    first_hour, last_hour = _grid_hours(opens, closes, on_grid, zone)
    for card in on_grid:
        _place(card, first_hour, last_hour)
    for card in cards:
        card.frees_chair_time = _frees_chair_time(card, on_grid)
    rows = {chair.pk: ChairRow(chair) for chair in chairs}
    for card in on_grid:
        rows[card.session.chair_id].cards.append(card)
    capacity = [
        (wall_clock(day, b.starts, zone), wall_clock(day, b.ends, zone), b.capacity)
        for b in blocks
        if b.weekday == day.weekday()
    ]
    return Board(
        clinic=clinic,
        day=day,
        today=now.astimezone(zone).date(),
        closed_reason=closed,
        opens=opens,
        closes=closes,
        hours=list(range(first_hour, last_hour)),
        rows=list(rows.values()),
        cards=cards,
        summary=_summary(sessions, chairs, capacity, staffed=bool(blocks)),
    )


def _natural(name: str) -> list[tuple[int, int | str]]:
    """Sort key that puts "Chair 2" before "Chair 10"."""
    return [(0, int(part)) if part.isdigit() else (1, part.lower()) for part in re.split(r"(\d+)", name) if part]


def _card(session: Session, zone, now: datetime, gaps: list[GapNotice]) -> Card:
    return Card(
        session=session,
        starts=session.starts_at.astimezone(zone),
        ends=session.ends_at.astimezone(zone),
        count=session.series.protocol.session_count,
        badges=_badges(session, now, gaps),
        started=session.starts_at <= now,
        marks=session_marks(session=session, zone=zone, now=now, number_held=session.number_held),
        gaps=gaps,
    )


def _frees_chair_time(card: Card, on_grid: list[Card]) -> bool:
    session = card.session
    if session.status != Session.Status.CANCELLED or card.started:
        return False
    return not any(
        other.session.chair_id == session.chair_id and other.session.status in Session.HOLDING
        and other.session.starts_at < session.chair_free_at and other.session.chair_free_at > session.starts_at
        for other in on_grid
    )  # fmt: skip


def _badges(session: Session, now: datetime, gaps: list[GapNotice]) -> list[Badge]:
    badges = []
    if gaps:
        badges.append(Badge("offprotocol", "Off protocol", "; ".join(gap.text for gap in gaps)))
    if session.confirmed_at is not None and session.status != Session.Status.CANCELLED:
        badges.append(Badge("confirmed", "Confirmed", f"via {session.get_confirmed_via_display()}"))
    elif session.status == Session.Status.BOOKED and now < session.starts_at <= now + SOON:
        badges.append(Badge("unconfirmed", "Unconfirmed", "Starts within 24 hours and not confirmed"))
    if session.driver_confirmed:
        badges.append(Badge("driver", "Driver", "Driver confirmed"))
    if session.message_failed:
        badges.append(Badge("failed", "Text failed", "A message to this patient failed or was not delivered"))
    patient = session.patient
    contact = getattr(patient, "contact_status", None)
    if patient.sms_opted_out_at is not None:
        badges.append(Badge("optout", "Opted out", "The patient replied STOP: no texts"))
    elif contact is not None and contact.sms_problem:
        badges.append(Badge("optout", "No texts", contact.get_sms_problem_display()))
    return badges


def _grid_hours(opens: datetime | None, closes: datetime | None, cards: list[Card], zone) -> tuple[int, int]:
    """The local hours the grid spans: opening hours, widened to any session outside them."""
    first, last = DEFAULT_HOURS
    if opens is not None and closes is not None:
        local_opens, local_closes = opens.astimezone(zone), closes.astimezone(zone)
        first, last = local_opens.hour, local_closes.hour + (1 if local_closes.minute else 0)
    for card in cards:
        first = min(first, card.starts.hour)
        last = max(last, 24 if card.ends.date() > card.starts.date() else card.ends.hour + bool(card.ends.minute))
    return first, max(last, first + 1)


def _place(card: Card, first_hour: int, last_hour: int) -> None:
    span = (last_hour - first_hour) * 60
    start = card.starts.hour * 60 + card.starts.minute - first_hour * 60
    end = DAY_MINUTES if card.ends.date() > card.starts.date() else card.ends.hour * 60 + card.ends.minute
    end = min(end - first_hour * 60, span)
    card.left = round(100 * start / span, 3)
    card.width = round(100 * max(end - start, 1) / span, 3)


def _summary(
    sessions: list[Session], chairs: list[Chair], capacity: list[tuple[datetime, datetime, int]], *, staffed: bool
) -> Summary:
    held = [s for s in sessions if s.status != Session.Status.CANCELLED]
    holding = [s for s in held if s.status in Session.HOLDING]
    spans = [(s.starts_at, s.ends_at) for s in holding]
    checkpoints = sorted({start for start, _ in spans} | {edge for b in capacity for edge in b[:2]})
    peak, peak_at, capacity_at_peak = 0, None, None
    headroom, headroom_at = None, None
    for moment in checkpoints:
        load = sum(1 for start, end in spans if start <= moment < end)
        if not load:
            continue
        places = sum(c for start, end, c in capacity if start <= moment < end)
        if load > peak:
            peak, peak_at, capacity_at_peak = load, moment, places if staffed else None
        if staffed and (headroom is None or places - load < headroom):
            headroom, headroom_at = places - load, moment
    return Summary(
        sessions=len(held),
        cancelled=len(sessions) - len(held),
        confirmed=sum(1 for s in held if s.confirmed_at is not None),
        chairs_in_use=len({s.chair_id for s in holding}),
        chairs=sum(1 for chair in chairs if chair.is_active),
        peak=peak,
        peak_at=peak_at,
        capacity_at_peak=capacity_at_peak,
        headroom=headroom,
        headroom_at=headroom_at,
    )


@dataclass(frozen=True)
class WeekItem:
    """A session as the week view lists it: a week holds hundreds, so plain values, not models."""

    starts_at: datetime
    status: str
    number: int
    count: int
    patient_id: int
    patient: str
    chair: str

    @property
    def status_label(self) -> str:
        return Session.Status(self.status).label


@dataclass(frozen=True)
class WeekDay:
    day: date
    closed_reason: str | None
    open: bool
    sessions: list[WeekItem]

    @property
    def held(self) -> list[WeekItem]:
        return [s for s in self.sessions if s.status in Session.HOLDING or s.status == Session.Status.NO_SHOW]

    @property
    def confirmed(self) -> int:
        return sum(s.status == Session.Status.CONFIRMED for s in self.sessions)


@dataclass(frozen=True)
class Week:
    """Seven days from a Monday, each with its sessions in start order: where the schedule is
    full and where it is free, at a glance."""

    clinic: Clinic
    monday: date
    today: date
    days: list[WeekDay]

    @property
    def previous_week(self) -> date:
        return self.monday - timedelta(days=7)

    @property
    def next_week(self) -> date:
        return self.monday + timedelta(days=7)

    @property
    def sunday(self) -> date:
        return self.monday + timedelta(days=6)


def week_build(*, clinic: Clinic, day: date, now: datetime | None = None) -> Week:
    """The week (Monday to Sunday, in the clinic's calendar) holding `day`: one query for its sessions."""
    zone = clinic.zone
    monday = day - timedelta(days=day.weekday())
    sunday = monday + timedelta(days=6)
    begins, ends = day_bounds(monday, zone)[0], day_bounds(sunday, zone)[1]
    rows = (
        Session.objects.filter(clinic=clinic, starts_at__gte=begins, starts_at__lt=ends)
        .order_by("starts_at", "chair__name")
        .values_list(
            "starts_at", "status", "number", "series__protocol__session_count", "patient_id", "patient__first_name",
            "patient__last_name", "chair__name",
        )
    )  # fmt: skip
    by_day: dict[date, list[WeekItem]] = {}
    for starts_at, status, number, count, patient_id, first, last, chair in rows:
        local = starts_at.astimezone(zone)
        item = WeekItem(local, status, number, count, patient_id, f"{first} {last}", chair)
        by_day.setdefault(local.date(), []).append(item)
    closed = dict(clinic.closed_dates.filter(date__range=(monday, sunday)).values_list("date", "reason"))
    open_weekdays = set(clinic.opening_hours.values_list("weekday", flat=True))
    days = [monday + timedelta(days=n) for n in range(7)]
    return Week(
        clinic=clinic,
        monday=monday,
        today=(now or timezone.now()).astimezone(zone).date(),
        days=[
            WeekDay(day=d, closed_reason=closed.get(d), open=d.weekday() in open_weekdays and d not in closed,
                    sessions=by_day.get(d, []))
            for d in days
        ],
    )  # fmt: skip


@dataclass(frozen=True)
class MonthDay:
    day: date
    sessions: int
    in_month: bool
    is_today: bool
    is_chosen: bool

    @property
    def load(self) -> str:
        """How busy the day is, for its shade: none, some, busy (40 or more sessions)."""
        return "none" if not self.sessions else "busy" if self.sessions >= 40 else "some"


@dataclass(frozen=True)
class Month:
    """A month around the board's day, Monday first, each day with its sessions still held."""

    first: date
    weeks: list[list[MonthDay]]

    @property
    def previous(self) -> date:
        return (self.first - timedelta(days=1)).replace(day=1)

    @property
    def next(self) -> date:
        return (self.first + timedelta(days=31)).replace(day=1)


def month_build(*, clinic: Clinic, day: date, today: date) -> Month:
    """One query: the held sessions of the weeks the month spans, counted per day in the clinic's zone."""
    first = day.replace(day=1)
    start = first - timedelta(days=first.weekday())
    last = (first + timedelta(days=31)).replace(day=1) - timedelta(days=1)
    end = last + timedelta(days=6 - last.weekday())
    counts = sessions_per_day(clinic=clinic, first=start, last=end)
    days = [start + timedelta(days=n) for n in range((end - start).days + 1)]
    cells = [
        MonthDay(d, counts.get(d, 0), in_month=d.month == first.month, is_today=d == today, is_chosen=d == day)
        for d in days
    ]
    return Month(first=first, weeks=[cells[n : n + 7] for n in range(0, len(cells), 7)])
