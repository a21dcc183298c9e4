"""What a patient may do through their link: see their session and the series' other visits,
confirm it, move it (re-spacing the later visits where the clinic allows), cancel it, or ask to
be told of an earlier time (the clinic's waitlist).

The token alone decides the session. Every write goes through the booking services with
via=LINK, and they record the audit trail. Each action is safe to repeat: a second confirm,
the same move or re-flow again or a second cancel changes nothing and records nothing. No time
sooner than the clinic's minimum notice is offered or taken (rule 13).
"""

import functools
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import NamedTuple

from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models.expressions import Col

from sessions.calendar import BookingConflict, ClinicCalendar, Slot
from sessions.clock import dates_between, local_date
from sessions.models import Chair, Session, WaitlistEntry
from sessions.selectors import self_service_earliest, session_neighbours, session_slots
from sessions.services import (
    ReflowStep,
    series_reflow,
    series_reflow_plan,
    session_cancel,
    session_confirm,
    session_reschedule,
)
from sessions.waitlist import waitlist_join

from .links import link_session

SLOT_DAYS = 14
# A phone screen holds about this many choices a day before the list stops being a choice.
SLOTS_PER_DAY = 8
MOVE_REASON = "Moved by the patient on the link"
REFLOW_REASON = "Moved by the patient on the link, later visits re-spaced"
CANCEL_REASON = "Cancelled by the patient on the link"

# Conflicts that mean the time itself is gone (someone took it meanwhile), as opposed to the
# session no longer being movable at all.
_TAKEN = {"chair_overlap", "patient_overlap", "staffing_capacity", "stagger_cap", "chair_inactive"}


class Visit(NamedTuple):
    number: int
    starts_at: datetime


class LinkRefused(Exception):
    """The request cannot be done on the link; `reason` names the phrase that tells the patient why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def link_page_session(*, token: str, now: datetime) -> Session | None:
    """The session a token opens; None for an unknown token or a session that is over."""
    found = link_session(token=token)
    if found is None or found.ends_at <= now:
        return None
    return found


def link_may_act(*, session: Session, now: datetime) -> bool:
    return session.is_upcoming and session.starts_at > now


def link_may_cancel(*, session: Session, now: datetime) -> bool:
    """Inside the clinic's cancellation policy: at least its notice before the start."""
    notice = timedelta(hours=session.clinic.cancellation_notice_hours)
    return link_may_act(session=session, now=now) and now <= session.starts_at - notice


def link_slots_by_day(*, session: Session, now: datetime) -> list[tuple[date, list[Slot]]]:
    """The slots the session may move to alone, by day in the clinic's calendar."""
    return _by_day(session, session_slots(session=session, days=SLOT_DAYS, now=now, self_service=True))


def link_reflow_slots_by_day(*, session: Session, now: datetime) -> list[tuple[date, list[Slot]]]:
    """Where the clinic lets patients re-flow (rule 11): the further times that keep the gap from
    the visit before but not from the one after, which a re-flow makes good by re-spacing the
    later visits. The re-flow's own plan checks each later visit when the patient picks one."""
    if not session.clinic.patients_may_reflow or not link_may_act(session=session, now=now):
        return []
    return _by_day(session, _reflow_slots(session, now))


def link_series_visits(*, session: Session, now: datetime) -> list[Visit]:
    """The series' other visits still to come, so a patient sees every time a re-flow changed."""
    sql, column, converters = _visits_statement()
    with connection.cursor() as cursor:
        cursor.execute(
            sql, [session.series_id, session.pk, *Session.UPCOMING, connection.ops.adapt_datetimefield_value(now)]
        )
        rows = cursor.fetchall()
    visits = []
    for number, starts_at in rows:
        for convert in converters:
            starts_at = convert(starts_at, column, connection)
        visits.append(Visit(number, starts_at))
    return visits


# The link page's second statement, on every default view of it: as fixed text it skips the
# ORM's compiling, which took several times as long as running it, and PostgreSQL keeps its plan
# prepared.
@functools.cache
def _visits_statement() -> tuple[str, Col, list[Callable]]:
    """The SQL, its start column and the converters that column needs (SQLite hands back
    timestamps as text)."""
    quote, meta = connection.ops.quote_name, Session._meta
    name = {field: quote(meta.get_field(field).column) for field in ("id", "series", "number", "status", "starts_at")}
    statuses = ", ".join(["%s"] * len(Session.UPCOMING))
    sql = (
        f"SELECT {name['number']}, {name['starts_at']} FROM {quote(meta.db_table)} "
        f"WHERE {name['series']} = %s AND {name['id']} <> %s AND {name['status']} IN ({statuses}) "
        f"AND {name['starts_at']} > %s ORDER BY {name['starts_at']}"
    )
    starts_at = meta.get_field("starts_at")
    column = starts_at.get_col(meta.db_table)
    return sql, column, connection.ops.get_db_converters(column) + starts_at.get_db_converters(connection)


def _by_day(session: Session, slots: list[Slot]) -> list[tuple[date, list[Slot]]]:
    """Slots by day in the clinic's calendar, each day capped to the ones nearest the session's
    present time of day: patients mostly keep their usual hour."""
    zone = session.clinic.zone
    usual = session.starts_at.astimezone(zone)

    def distance(slot: Slot) -> int:
        local = slot.starts_at.astimezone(zone)
        return abs((local.hour - usual.hour) * 60 + local.minute - usual.minute)

    def nearest(slots: list[Slot]) -> list[Slot]:
        kept = sorted(slots, key=lambda s: (distance(s), s.starts_at))[:SLOTS_PER_DAY]
        return sorted(kept, key=lambda s: s.starts_at)

    days: dict[date, list[Slot]] = {}
    for slot in slots:
        days.setdefault(local_date(slot.starts_at, zone), []).append(slot)
    return [(day, nearest(slots)) for day, slots in days.items()]


def _reflow_slots(session: Session, now: datetime) -> list[Slot]:
    """Free times on the days past the next visit's reach, as the re-flow's calendar sees them:
    without this session and the later ones it would move."""
    previous, following = session_neighbours(session=session)
    if following is None:
        return []  # nothing after it to re-space: the ordinary list holds every time
    protocol, zone = session.series.protocol, session.clinic.zone
    earliest = self_service_earliest(session=session, now=now)
    first, last = local_date(earliest, zone), local_date(now, zone) + timedelta(days=SLOT_DAYS - 1)
    if previous is not None:
        first = max(first, local_date(previous, zone) + timedelta(days=protocol.min_gap_days))
        last = min(last, local_date(previous, zone) + timedelta(days=protocol.max_gap_days))
    next_day = local_date(following, zone)
    days = [
        day
        for day in dates_between(first, last)
        if not protocol.min_gap_days <= (next_day - day).days <= protocol.max_gap_days
    ]
    if not days:
        return []
    later = Session.objects.filter(
        series_id=session.series_id, number__gt=session.number, status__in=Session.UPCOMING
    ).values_list("pk", flat=True)
    calendar = ClinicCalendar(
        session.clinic, patient_id=session.patient_id, now=now, ignore_session_ids=[session.pk, *later],
        series_id=session.series_id, min_gap_days=protocol.min_gap_days,
    )  # fmt: skip
    calendar.load(days)
    length = session.ends_at - session.starts_at
    return [slot for day in days for slot in calendar.free_slots(day, length, session.chair_id, since=earliest)]


def link_confirm(*, session: Session, driver: bool, now: datetime) -> bool:
    """Confirm (with the driver, where the protocol needs one). False when already confirmed."""
    needs_driver = session.series.protocol.driver_required
    if needs_driver and not driver:
        raise LinkRefused("driver_missing")
    try:
        return session_confirm(session=session, via=Session.Channel.LINK, driver_confirmed=needs_driver, now=now)
    except BookingConflict as exc:
        raise LinkRefused("not_possible") from exc


def link_move(*, session: Session, starts_at: str, now: datetime) -> Session:
    """Move to one of the slots offered now. The chair is the offered slot's: patients pick a
    time, and a form field must not be able to choose a chair the list did not offer."""
    wanted = _wanted(starts_at)
    if wanted == session.starts_at and session.is_upcoming:
        return session  # the same move posted again
    _require_notice(session, wanted, now)
    offered = {
        slot.starts_at: slot for slot in session_slots(session=session, days=SLOT_DAYS, now=now, self_service=True)
    }
    if wanted not in offered:
        raise LinkRefused("move_taken" if link_may_act(session=session, now=now) else "not_possible")
    slot = offered[wanted]
    try:
        return session_reschedule(
            session=session,
            starts_at=slot.starts_at,
            chair=Chair.objects.get(pk=slot.chair_id),
            reason=MOVE_REASON,
            via=Session.Channel.LINK,
            now=now,
        )
    except BookingConflict as exc:
        raise LinkRefused(_refusal(exc)) from exc


def link_reflow_preview(*, session: Session, starts_at: str, now: datetime) -> list[ReflowStep]:
    """Where the session and each later visit would go if the patient moved it to `starts_at`
    and re-spaced the rest; writes nothing (a GET shows it)."""
    slot = _reflow_slot(session, starts_at, now)
    chair = Chair.objects.get(pk=slot.chair_id)  # the commit's chair, so the preview is what it will do
    steps = series_reflow_plan(
        session=session, starts_at=slot.starts_at, chair=chair, via=Session.Channel.LINK, now=now
    )
    if any(step.conflict is not None or step.slot is None for step in steps):
        raise LinkRefused("reflow_failed")
    return steps


def link_reflow(*, session: Session, starts_at: str, now: datetime) -> Session:
    """Move the session to one of the re-flow times offered now and re-space the later visits,
    all or nothing (rule 11); the session as it now is."""
    wanted = _wanted(starts_at)
    if wanted == session.starts_at and session.is_upcoming:
        return session  # the same re-flow posted again
    slot = _reflow_slot(session, starts_at, now)
    try:
        changed = series_reflow(
            session=session,
            starts_at=slot.starts_at,
            chair=Chair.objects.get(pk=slot.chair_id),
            reason=REFLOW_REASON,
            via=Session.Channel.LINK,
            now=now,
        )
    except BookingConflict as exc:
        raise LinkRefused(_refusal(exc, otherwise="reflow_failed")) from exc
    return next(moved for moved in changed if moved.pk == session.pk)


def _reflow_slot(session: Session, starts_at: str, now: datetime) -> Slot:
    wanted = _wanted(starts_at)
    if not session.clinic.patients_may_reflow or not link_may_act(session=session, now=now):
        raise LinkRefused("not_possible")
    _require_notice(session, wanted, now)
    offered = {
        slot.starts_at: slot for _, slots in link_reflow_slots_by_day(session=session, now=now) for slot in slots
    }
    if wanted not in offered:
        raise LinkRefused("move_taken")
    return offered[wanted]


def _wanted(starts_at: str) -> datetime:
    """The posted time, which the page always writes with the clinic's offset."""
    try:
        wanted = datetime.fromisoformat(starts_at)
    except ValueError:
        raise LinkRefused("move_pick") from None
    if wanted.tzinfo is None:
        raise LinkRefused("move_pick")
    return wanted


def _require_notice(session: Session, wanted: datetime, now: datetime) -> None:
    """Rule 13, said as such: a time too soon is not one someone else just took."""
    if link_may_act(session=session, now=now) and wanted < self_service_earliest(session=session, now=now):
        raise LinkRefused("move_too_soon")


def _refusal(exc: BookingConflict, *, otherwise: str = "not_possible") -> str:
    if exc.code in _TAKEN:
        return "move_taken"
    return "move_too_soon" if exc.code == "short_notice" else otherwise


def link_cancel(*, session: Session, now: datetime) -> Session:
    """Cancel inside the clinic's policy; outside it the patient is asked to call."""
    if session.status == Session.Status.CANCELLED:
        return session  # the same cancel posted again
    if not link_may_cancel(session=session, now=now):
        raise LinkRefused("cancel_call")
    try:
        return session_cancel(session=session, reason=CANCEL_REASON, via=Session.Channel.LINK, now=now)
    except BookingConflict as exc:
        raise LinkRefused("not_possible") from exc


def link_on_waitlist(*, session: Session) -> bool:
    """Whether the patient waits for an earlier time for this visit, asked before a write (the
    page reads it from the link's own query: links.link_session)."""
    return WaitlistEntry.objects.filter(session=session, status=WaitlistEntry.Status.WAITING).exists()


def link_may_wait(*, session: Session, now: datetime) -> bool:
    """Whether a day earlier than the visit's is still one the patient could take alone."""
    earliest, latest = _earlier_days(session, now)
    return link_may_act(session=session, now=now) and earliest <= latest


def _earlier_days(session: Session, now: datetime) -> tuple[date, date]:
    zone = session.clinic.zone
    earliest = local_date(self_service_earliest(session=session, now=now), zone)
    return earliest, local_date(session.starts_at, zone) - timedelta(days=1)


def link_waitlist_join(*, session: Session, now: datetime) -> bool:
    """Put the patient on the waitlist for an earlier time for this visit: from the soonest a
    patient may take alone (rule 13) to the day before it. False when already waiting."""
    if not link_may_act(session=session, now=now):
        raise LinkRefused("not_possible")
    if link_on_waitlist(session=session):
        return False
    earliest, latest = _earlier_days(session, now)
    if earliest > latest:
        raise LinkRefused("waitlist_none")
    try:
        waitlist_join(patient=session.patient, session=session, earliest=earliest, latest=latest,
                      via=Session.Channel.LINK, now=now)  # fmt: skip
    except ValidationError as exc:  # joined in another tab meanwhile
        if link_on_waitlist(session=session):
            return False
        raise LinkRefused("not_possible") from exc
    return True
