"""Every write of the booking domain: book a series, move, confirm, cancel, mark attendance.

Locks follow the code base's one order (sessions/locking.py): clinic → patient → series →
session. Bookings and moves lock the clinic's row, so checks and insert see one consistent
calendar: bookings of one clinic are serialised, which is cheap at clinic scale and makes staffing
capacity and the stagger cap, which no constraint can express, exact. Every other write to a
session locks its patient first. PostgreSQL's exclusion constraints stand behind rules 2 and 3
regardless.
"""

from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from scheduler.bulk import rows_create, rows_insert, rows_update

from . import signals
from .calendar import BOOKING_HORIZON, BookingConflict, ClinicCalendar, Slot, series_gap_conflict
from .clock import LocalTimeError, local_date, to_utc, wall_clock
from .locking import lock_clinic_and_patient, lock_patients
from .models import (
    AuditEvent,
    Chair,
    Clinic,
    Patient,
    PatientNote,
    Protocol,
    Recall,
    Series,
    Session,
    SessionMove,
    weekdays_text,
)
from .selectors import self_service_earliest, session_neighbours

# A series may take any day of the week unless the scheduler names some (e.g. Mon/Wed/Fri).
ALL_WEEKDAYS = frozenset(range(7))

# A constraint's name → the conflict the checks would have given (code, detail, session number).
_CONSTRAINT_CONFLICTS: dict[str, tuple[str, str, int | None]] = {
    "session_chair_no_overlap": ("chair_overlap", "That chair was taken by another booking at the same moment.", None),
    "session_patient_no_overlap": (
        "patient_overlap",
        "The patient was booked elsewhere at that time at the same moment.",
        None,
    ),
    "series_one_active_per_protocol": (
        "series_duplicate",
        "The patient already has an active series of this protocol: give a reason to book another.",
        1,
    ),
    "session_number_unique_in_series": ("makeup_taken", "That session of the series is already booked.", None),
}
# Channels through which a patient acts alone: the clinic's minimum notice binds them (rule 13).
SELF_SERVICE = (Session.Channel.LINK, Session.Channel.SMS)


@dataclass(frozen=True)
class PlannedSession:
    number: int
    slot: Slot | None
    conflict: BookingConflict | None


def series_plan(
    *,
    patient: Patient,
    protocol: Protocol,
    starts: Sequence[datetime] | None = None,
    first_start: datetime | None = None,
    chair: Chair | None = None,
    override_reason: str = "",
    weekdays: Collection[int] | None = None,
    now: datetime | None = None,
) -> list[PlannedSession]:
    """Where each session of a series would go and the rule it would break; writes nothing.

    Either `starts` gives every start, or `first_start` anchors auto-placement: each next session
    takes the earliest day its gap allows, at the first session's time of day and chair if free,
    else another chair, else the nearest other time that day (rule 7); with `weekdays` (0 Monday
    … 6 Sunday, the first start's among them) only on those days, e.g. Mon/Wed/Fri. Another active
    series of the same protocol refuses the first session unless staff give a reason (rule 10).
    """
    clinic = protocol.clinic
    _check_request(
        patient=patient, protocol=protocol, starts=starts, first_start=first_start, chair=chair, weekdays=weekdays
    )
    overridden = bool(override_reason.strip())
    calendar = ClinicCalendar(
        clinic, patient_id=patient.pk, now=now or timezone.now(), min_gap_days=protocol.min_gap_days,
        protocol_id=None if overridden else protocol.pk,
    )  # fmt: skip
    length = timedelta(minutes=protocol.chair_minutes)
    if starts is not None:
        utc_starts = [_utc(value, clinic, field="starts", now=calendar.now) for value in starts]
        plan = _plan_explicit(calendar, protocol, utc_starts, chair, length)
    else:
        assert first_start is not None
        utc_first = _utc(first_start, clinic, field="first_start", now=calendar.now)
        days = _weekdays_allowed(weekdays, local_date(utc_first, calendar.zone))
        plan = _plan_auto(calendar, protocol, utc_first, chair, length, days)
    if not overridden and plan[0].conflict is None:
        # The calendar read the patient's active series of the protocol with their visits.
        duplicate = _duplicate_conflict(protocol, calendar.active_series_booked_at())
        if duplicate is not None:
            plan[0] = PlannedSession(1, plan[0].slot, duplicate.for_session(1))
    return plan


# How many first starts a refused preview tries, nearest first, to find ones where the whole
# series fits: each is a series_plan (milliseconds), and the page waits for them.
ALTERNATIVE_TRIES = 16


def series_plan_alternatives(
    *, patient: Patient, protocol: Protocol, first_start: datetime, chair: Chair | None = None, limit: int = 3,
    weekdays: Collection[int] | None = None, now: datetime | None = None,
) -> list[datetime]:  # fmt: skip
    """First starts near `first_start` (that day and the next week, nearest first, on `weekdays`
    where given) from which the whole series fits every rule: what to offer when the one asked
    for does not."""
    clinic = protocol.clinic
    now = now or timezone.now()
    wanted = _utc(first_start, clinic, field="first_start", now=now)
    calendar = ClinicCalendar(clinic, patient_id=patient.pk, now=now, min_gap_days=protocol.min_gap_days)
    length = timedelta(minutes=protocol.chair_minutes)
    day = local_date(wanted, calendar.zone)
    candidates = sorted(
        (
            slot.starts_at
            for offset in range(8)
            if not weekdays or (day + timedelta(days=offset)).weekday() in weekdays
            for slot in calendar.free_slots(day + timedelta(days=offset), length, chair.pk if chair else None,
                                            since=now)
            if slot.starts_at != wanted
        ),
        key=lambda start: abs(start - wanted),
    )  # fmt: skip
    found: list[datetime] = []
    for start in candidates[:ALTERNATIVE_TRIES]:
        plan = series_plan(
            patient=patient, protocol=protocol, first_start=start, chair=chair, weekdays=weekdays, now=now
        )
        if all(p.conflict is None for p in plan) and len(plan) == protocol.session_count:
            found.append(start)
            if len(found) == limit:
                break
    return sorted(found)


def series_duplicate_conflict(*, patient: Patient, protocol: Protocol) -> BookingConflict | None:
    """Rule 10: the patient's other active series of this protocol, if any."""
    other = (
        Series.objects.filter(patient=patient, protocol=protocol, status=Series.Status.ACTIVE)
        .order_by("created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    return _duplicate_conflict(protocol, other)


def _duplicate_conflict(protocol: Protocol, other: datetime | None) -> BookingConflict | None:
    """`other`: when the patient's oldest active series of `protocol` was booked, if they have one."""
    if other is None:
        return None
    return BookingConflict(
        "series_duplicate",
        f"The patient already has an active {protocol.name} series (booked {_clinic_day(other, protocol.clinic)}): "
        "finish or cancel it, or give a reason to book another.",
    )


def series_book(
    *,
    patient: Patient,
    protocol: Protocol,
    starts: Sequence[datetime] | None = None,
    first_start: datetime | None = None,
    chair: Chair | None = None,
    override_reason: str = "",
    weekdays: Collection[int] | None = None,
    actor=None,
    via: str = Session.Channel.STAFF,
    now: datetime | None = None,
) -> Series:
    """Book the whole series or nothing (rule 6); the conflict names the first rule broken.

    `override_reason` lets staff book beside another active series of the same protocol; it is
    kept on the series and in the audit trail."""
    now = now or timezone.now()
    override_reason = override_reason.strip()
    with _translating_constraint_violations(), transaction.atomic():
        lock_clinic_and_patient(clinic_id=protocol.clinic_id, patient_id=patient.pk)
        plan = series_plan(
            patient=patient, protocol=protocol, starts=starts, first_start=first_start, chair=chair,
            override_reason=override_reason, weekdays=weekdays, now=now,
        )  # fmt: skip
        for planned in plan:
            if planned.conflict is not None:
                raise planned.conflict
        if override_reason and series_duplicate_conflict(patient=patient, protocol=protocol) is None:
            override_reason = ""  # nothing to override: the series is an ordinary one
        series = Series.objects.create(
            patient=patient, protocol=protocol, clinic=protocol.clinic, created_by=actor,
            override_reason=override_reason, weekday_mask=Series.weekday_mask_of(weekdays),
        )  # fmt: skip
        buffer = timedelta(minutes=protocol.clinic.turnover_buffer_minutes)
        sessions = [
            Session(
                series=series,
                patient=patient,
                clinic=protocol.clinic,
                chair_id=p.slot.chair_id,
                number=p.number,
                starts_at=p.slot.starts_at,
                ends_at=p.slot.ends_at,
                chair_free_at=p.slot.ends_at + buffer,
            )
            for p in plan
            if p.slot is not None
        ]
        rows_create(sessions)
        first = _clinic_time(sessions[0].starts_at, protocol.clinic)
        detail = f"{protocol.name}: {len(sessions)} session(s) from {first}"
        if override_reason:
            detail += f"; beside another active series: {override_reason}"
        audit_record(patient=patient.pk, series=series, action="booked", via=via, actor=actor, at=now, detail=detail)
        _recall_close_by(series, now)
        signals.sessions_booked.send(sender=Session, sessions=sessions, now=now, via=via)
    return series


def session_reschedule(
    *,
    session: Session,
    starts_at: datetime,
    chair: Chair | None = None,
    reason: str = "",
    via: str = Session.Channel.STAFF,
    actor=None,
    now: datetime | None = None,
) -> Session:
    """Move one session to a slot that keeps rules 1–5; the move is kept in its history.

    Without a chair it keeps its chair if free there, else takes the first free one. A moved
    session needs confirming again: the patient confirmed the old time, not the new one.
    """
    clinic = session.clinic
    now = now or timezone.now()
    new_start = _utc(starts_at, clinic, field="starts_at", now=now)
    if chair is not None and chair.clinic_id != clinic.pk:
        raise ValidationError({"chair": "That chair belongs to another clinic."})
    with _translating_constraint_violations(), transaction.atomic():
        lock_clinic_and_patient(clinic_id=clinic.pk, patient_id=session.patient_id)
        session = Session.objects.select_for_update(no_key=True).select_related("series__protocol").get(pk=session.pk)
        _require_upcoming(session, "moved")
        if new_start == session.starts_at and (chair is None or chair.pk == session.chair_id):
            return session
        _require_notice(session, new_start, via=via, now=now)
        slot = session_move_check(session=session, starts_at=new_start, chair=chair, now=now)
        if isinstance(slot, BookingConflict):
            raise slot
        return _move(session, slot, clinic, reason=reason, via=via, actor=actor, now=now)


def session_move_check(
    *, session: Session, starts_at: datetime, chair: Chair | None, now: datetime
) -> Slot | BookingConflict:
    """Where `session` would go at `starts_at` (UTC), or the rule (1–5, 10) that refuses it;
    writes nothing. Without a chair it keeps its own where free, else the first free one."""
    calendar = _series_calendar(session, ignore=[session.pk], now=now)
    length = session.ends_at - session.starts_at
    if chair is not None:
        slot: Slot | BookingConflict = Slot(chair.pk, starts_at, starts_at + length)
        refused = calendar.conflict(slot)
    else:
        slot = calendar.first_free(starts_at, length, session.chair_id)
        refused = slot if isinstance(slot, BookingConflict) else None
    previous, following = session_neighbours(session=session)
    refused = refused or series_gap_conflict(
        session.series.protocol, session.clinic.zone, previous=previous, starts_at=starts_at, following=following
    )
    if refused is not None:
        return refused.for_session(session.number)
    assert isinstance(slot, Slot)
    return slot


def session_confirm(
    *, session: Session, via: str, driver_confirmed: bool = False, actor=None, now: datetime | None = None
) -> bool:
    """Confirm attendance (and the driver, where given). False when there was nothing new to record."""
    now = now or timezone.now()
    with transaction.atomic():
        session = _lock_session(session)
        _require_upcoming(session, "confirmed")
        if session.starts_at <= now:
            raise BookingConflict("invalid_status", "The session has already started.", session_number=session.number)
        changed_driver = driver_confirmed and not session.driver_confirmed
        if session.status == Session.Status.CONFIRMED and not changed_driver:
            return False
        previous = session.status
        session.driver_confirmed = session.driver_confirmed or driver_confirmed
        if previous == Session.Status.BOOKED:
            session.status = Session.Status.CONFIRMED
            session.confirmed_at = now
            session.confirmed_via = via
            session.status_changed_at = now
        fields = ["status", "confirmed_at", "confirmed_via", "driver_confirmed", "status_changed_at", "updated_at"]
        session.save(update_fields=fields)
        detail = "with a driver" if session.driver_confirmed else ""
        audit_record(
            patient=session.patient_id, session=session, action="confirmed", via=via, actor=actor, at=now, detail=detail
        )
        if previous != session.status:
            signals.session_status_changed.send(
                sender=Session, session=session, previous_status=previous, now=now, via=via
            )
    return True


def session_cancel(
    *, session: Session, reason: str, via: str = Session.Channel.STAFF, actor=None, now: datetime | None = None
) -> Session:
    with transaction.atomic():
        session = _lock_session(session)
        _require_upcoming(session, "cancelled")
        session.cancellation_reason = reason
        _set_status(
            session, Session.Status.CANCELLED, now or timezone.now(), via=via, actor=actor, detail=reason,
            extra=["cancellation_reason"],
        )  # fmt: skip
        _series_refresh_status(session.series_id)
    return session


# Which statuses each attendance mark may follow, and whether it needs the session to have begun.
_ATTENDANCE: dict[str, tuple[tuple[str, ...], bool]] = {
    Session.Status.ARRIVED: (Session.UPCOMING, False),
    Session.Status.COMPLETED: ((Session.Status.ARRIVED,), True),
    Session.Status.NO_SHOW: (Session.UPCOMING, True),
}
# A patient may sit down a little before their time, never half a day before it.
EARLY_ARRIVAL = timedelta(hours=2)


def session_mark(
    *,
    session: Session,
    status: str,
    at: datetime | None = None,
    via: str = Session.Channel.STAFF,
    actor=None,
    now: datetime | None = None,
) -> Session:
    """Nurse's marks on the day (rule 15): arrived records chair-in, completed records chair-out,
    each at `at` (the actual time, when entered later) or now; no-show once the start has passed."""
    if status not in _ATTENDANCE:
        raise ValidationError({"status": f"Choose one of: {', '.join(_ATTENDANCE)}."})
    allowed_from, needs_start = _ATTENDANCE[status]
    now = now or timezone.now()
    with transaction.atomic():
        session = _lock_session(session)
        if session.status not in allowed_from:
            raise BookingConflict(
                "invalid_status",
                f"A {session.get_status_display().lower()} session cannot be marked "
                f"{Session.Status(status).label.lower()}.",
                session_number=session.number,
            )
        if needs_start and now < session.starts_at:
            raise BookingConflict("invalid_status", "The session has not started yet.", session_number=session.number)
        moment = at or now
        extra = _attendance_times(session, status, moment, now)
        _set_status(session, status, now, via=via, actor=actor, detail=_times_detail(session), extra=extra)
        _series_refresh_status(session.series_id)
    return session


def _attendance_times(session: Session, status: str, moment: datetime, now: datetime) -> list[str]:
    """Record chair-in or chair-out at `moment`, refused where it cannot be true."""
    if moment > now:
        raise BookingConflict("attendance_times", "That time is still to come.", session_number=session.number)
    if status == Session.Status.ARRIVED:
        if moment < session.starts_at - EARLY_ARRIVAL:
            raise BookingConflict(
                "attendance_times",
                f"Chair-in at {_clinic_time(moment, session.clinic)} is long before the session's start.",
                session_number=session.number,
            )
        session.chair_in_at = moment
        return ["chair_in_at"]
    if status == Session.Status.COMPLETED:
        chair_in = session.chair_in_at or session.status_changed_at or session.starts_at
        if moment < session.starts_at or moment <= chair_in:
            raise BookingConflict(
                "attendance_times",
                "Completed needs a chair-out after the start and after chair-in "
                f"({_clinic_time(max(session.starts_at, chair_in), session.clinic)}).",
                session_number=session.number,
            )
        session.chair_in_at, session.chair_out_at = chair_in, moment
        return ["chair_in_at", "chair_out_at"]
    return []


def _times_detail(session: Session) -> str:
    zone = session.clinic.zone
    if session.chair_out_at is not None and session.chair_in_at is not None:
        return f"chair {session.chair_in_at.astimezone(zone):%H:%M}–{session.chair_out_at.astimezone(zone):%H:%M}"
    if session.chair_in_at is not None:
        return f"chair-in {session.chair_in_at.astimezone(zone):%H:%M}"
    return ""


def session_undo(
    *, session: Session, expected: str | None = None, via: str = Session.Channel.STAFF, actor=None,
    now: datetime | None = None,
) -> Session:  # fmt: skip
    """Take back the last mark or the cancel (rule 15): arrived → booked or confirmed, completed →
    arrived, no-show → booked or confirmed, cancelled → booked again, where its time is still free
    and still to come. What the session held before is checked anew, as a booking would be.

    `expected`: the status the caller saw (and checked permissions for); a session that changed
    meanwhile is refused rather than undone in a way nobody asked for."""
    now = now or timezone.now()
    with _translating_constraint_violations(), transaction.atomic():
        lock_clinic_and_patient(clinic_id=session.clinic_id, patient_id=session.patient_id)
        Series.objects.select_for_update(no_key=True).filter(pk=session.series_id).values_list("pk").get()
        session = Session.objects.select_for_update(no_key=True).select_related("series__protocol").get(pk=session.pk)
        before = session.status
        if expected is not None and before != expected:
            raise BookingConflict(
                "invalid_status", f"The session is {session.get_status_display().lower()} now: look again.",
                session_number=session.number,
            )  # fmt: skip
        waiting = Session.Status.CONFIRMED if session.confirmed_at else Session.Status.BOOKED
        if before == Session.Status.COMPLETED:
            session.chair_out_at = None
            back, extra = Session.Status.ARRIVED, ["chair_out_at"]
        elif before == Session.Status.ARRIVED:
            session.chair_in_at = None
            back, extra = waiting, ["chair_in_at"]
        elif before == Session.Status.NO_SHOW:
            _require_free_again(session, now, to_come=False)
            back, extra = waiting, []
        elif before == Session.Status.CANCELLED:
            _require_free_again(session, now, to_come=True)
            # A new version: the cancelled one's withdrawn reminders stay withdrawn, new ones are planned.
            session.version += 1
            session.cancellation_reason = ""
            back, extra = Session.Status.BOOKED, ["version", "cancellation_reason"]
            session.confirmed_at, session.confirmed_via = None, ""
            extra += ["confirmed_at", "confirmed_via"]
        else:
            raise BookingConflict(
                "invalid_status", f"A {session.get_status_display().lower()} session has nothing to undo.",
                session_number=session.number,
            )  # fmt: skip
        _set_status(session, back, now, via=via, actor=actor, detail=f"undo {before}", extra=extra, action="undo")
        _series_refresh_status(session.series_id)
    return session


def _require_free_again(session: Session, now: datetime, *, to_come: bool) -> None:
    """A cancelled or missed session gave its chair and time back: taking them again is a booking."""
    number_taken = (
        Session.objects.filter(series_id=session.series_id, number=session.number, status__in=Session.HOLDING)
        .exclude(pk=session.pk)
        .exists()
    )
    if number_taken:
        raise BookingConflict(
            "makeup_taken", f"Session {session.number} was made good by another booking.",
            session_number=session.number,
        )  # fmt: skip
    if not to_come:
        return
    calendar = _series_calendar(session, ignore=[session.pk], now=now)
    refused = calendar.conflict(Slot(session.chair_id, session.starts_at, session.ends_at))
    if refused is not None:
        raise refused.for_session(session.number)


def series_cancel(
    *, series: Series, reason: str, via: str = Session.Channel.STAFF, actor=None, now: datetime | None = None
) -> Series:
    """Cancel every session still to come, and the series with them."""
    now = now or timezone.now()
    with transaction.atomic():
        lock_patients(patient_ids=[series.patient_id])
        series = Series.objects.select_for_update(no_key=True).get(pk=series.pk)
        upcoming = Session.objects.select_for_update(no_key=True).filter(series=series, status__in=Session.UPCOMING)
        cancelled = list(upcoming.order_by("pk"))
        for session in cancelled:
            session.cancellation_reason = reason
            _set_status(
                session,
                Session.Status.CANCELLED,
                now,
                via=via,
                actor=actor,
                detail=reason,
                extra=["cancellation_reason"],
                with_series=True,
            )
        series.status = Series.Status.CANCELLED
        series.save(update_fields=["status"])
        signals.series_cancelled.send(sender=Series, series=series, sessions=cancelled, now=now, via=via)
    return series


@dataclass(frozen=True)
class ReflowStep:
    """One session of a re-flow: where it is (None for a make-up still to book) and where it goes."""

    number: int
    session_id: int | None
    from_starts_at: datetime | None
    slot: Slot | None
    conflict: BookingConflict | None

    @property
    def changes(self) -> bool:
        return self.slot is not None and (self.session_id is None or self.slot.starts_at != self.from_starts_at)


def series_reflow_plan(
    *, session: Session, starts_at: datetime, chair: Chair | None = None, via: str = Session.Channel.STAFF,
    now: datetime | None = None,
) -> list[ReflowStep]:  # fmt: skip
    """Re-flow (rule 11): put `session` at `starts_at` (a make-up under its number when it was
    cancelled or missed) and re-space the later sessions of its series so that every gap stays
    inside the protocol. A later session that still keeps its gap from the one before stays where
    it is, so that no patient hears of a change that changes nothing; one that does not takes
    the earliest day its gap allows, at its own time of day and chair where free (rule 7).
    Writes nothing; the steps stop at the first session that cannot be placed."""
    return _reflow_steps(session, starts_at, chair=chair, via=via, now=now or timezone.now())[0]


def _reflow_steps(
    session: Session, starts_at: datetime, *, chair: Chair | None, via: str, now: datetime,
    siblings: list[Session] | None = None,
) -> tuple[list[ReflowStep], list[Session]]:  # fmt: skip
    """series_reflow_plan's steps, and the later sessions of the series they may move.
    `siblings`: the series' other sessions in number order, where the caller has them."""
    clinic = session.clinic
    new_start = _utc(starts_at, clinic, field="starts_at", now=now)
    if chair is not None and chair.clinic_id != clinic.pk:
        raise ValidationError({"chair": "That chair belongs to another clinic."})
    protocol = session.series.protocol
    makeup = session.status not in Session.UPCOMING
    if siblings is None:
        # The series' other sessions, in one query: what the re-flow keeps its gaps from, and moves.
        siblings = list(Session.objects.filter(series_id=session.series_id).exclude(pk=session.pk).order_by("number"))
    _require_reflowable(session, makeup=makeup, siblings=siblings)
    _require_notice(session, new_start, via=via, now=now)
    # Later sessions still to come; one whose time has passed unmarked is the nurse's to mark, not to move.
    later = [s for s in siblings if s.number > session.number and s.status in Session.UPCOMING and s.starts_at > now]
    calendar = _series_calendar(session, ignore=[s.pk for s in later] + ([] if makeup else [session.pk]), now=now)
    # The days the steps most likely look at, in one query: the new start's, each later session's
    # own, and the earliest each could move to.
    first_day = local_date(new_start, calendar.zone)
    calendar.load(
        [first_day + timedelta(days=n * protocol.min_gap_days) for n in range(len(later) + 1)]
        + [local_date(s.starts_at, calendar.zone) for s in later]
    )
    length = timedelta(minutes=protocol.chair_minutes) if makeup else session.ends_at - session.starts_at
    slot, refused = _slot_at(calendar, new_start, length, chair, session.chair_id)
    held_before = [s for s in siblings if s.number < session.number and s.status in Session.HOLDING]
    previous = held_before[-1].starts_at if held_before else None
    refused = refused or _gap_after(protocol, calendar, previous, new_start, now)
    steps = [ReflowStep(session.number, None if makeup else session.pk, None if makeup else session.starts_at, slot,
                        refused.for_session(session.number) if refused else None)]  # fmt: skip
    if refused is not None or slot is None:
        return steps, later
    calendar.add(slot)
    # A series booked on chosen weekdays (Mon/Wed/Fri) keeps to them when it is re-spaced.
    weekdays = session.series.weekdays or ALL_WEEKDAYS
    for following in later:
        step = _reflow_next(calendar, protocol, steps[-1].slot, following, weekdays)
        steps.append(step)
        if step.conflict is not None:
            break
        assert step.slot is not None
        calendar.add(step.slot)
    return steps, later


def series_reflow(
    *, session: Session, starts_at: datetime, chair: Chair | None = None, reason: str = "",
    via: str = Session.Channel.STAFF, actor=None, now: datetime | None = None,
) -> list[Session]:  # fmt: skip
    """Commit a re-flow, all or nothing: the sessions it moved or booked, in number order.

    The patient hears of it once (signals.series_reflowed), not once per session moved."""
    now = now or timezone.now()
    with _translating_constraint_violations(), transaction.atomic():
        lock_clinic_and_patient(clinic_id=session.clinic_id, patient_id=session.patient_id)
        # The series row alone is locked; its protocol, clinic and patient (with the patient's
        # clinic, whose zone their reminders use) come in the same query.
        series = (
            Series.objects.select_for_update(no_key=True, of=("self",))
            .select_related("protocol", "clinic", "patient__clinic")
            .get(pk=session.series_id)
        )
        # The series' sessions, locked in one query: the one to re-flow from and those it may move.
        held = Session.objects.select_for_update(no_key=True).filter(series_id=series.pk).order_by("number")
        siblings = [_sharing(series, s) for s in held]
        target = next((s for s in siblings if s.pk == session.pk), None)
        if target is None:
            raise Session.DoesNotExist("session to re-flow was not found")
        session = target
        siblings.remove(session)
        steps, later = _reflow_steps(session, starts_at, chair=chair, via=via, now=now, siblings=siblings)
        for step in steps:
            if step.conflict is not None:
                raise step.conflict
        # Sessions trade places inside this transaction: the overlap constraints wait for its end.
        _defer_overlap_checks()
        moving = {s.pk: s for s in later} | {session.pk: session}
        changed = _reflow_apply(
            [step for step in steps if step.changes], session, moving, series, reason=reason, via=via, actor=actor,
            now=now,
        )  # fmt: skip
        if not changed:
            _series_refresh_status(series.pk)
        elif series.status != Series.Status.ACTIVE:
            # A session of it is booked now: what _series_refresh_status would find, without reading them.
            series.status = Series.Status.ACTIVE
            series.save(update_fields=["status"])
        signals.series_reflowed.send(sender=Series, series=series, sessions=changed, now=now, via=via)
    return changed


def _require_reflowable(session: Session, *, makeup: bool, siblings: list[Session]) -> None:
    if not makeup:
        return
    if session.status not in (Session.Status.CANCELLED, Session.Status.NO_SHOW):
        raise BookingConflict(
            "reflow_not_needed",
            f"Session {session.number} is {session.get_status_display().lower()}: re-flow from an upcoming one.",
            session_number=session.number,
        )
    if any(s.number == session.number and s.status in Session.HOLDING for s in siblings):
        raise BookingConflict(
            "makeup_taken", f"Session {session.number} is already made good.", session_number=session.number
        )


def _sharing(series: Series, session: Session) -> Session:
    """`session` with its series, clinic and patient taken from `series`, loaded once for all of them."""
    session.series, session.clinic, session.patient = series, series.clinic, series.patient
    return session


def _gap_after(
    protocol: Protocol, calendar: ClinicCalendar, previous: datetime | None, starts_at: datetime, now: datetime
) -> BookingConflict | None:
    """Rule 5 against the last session held before. Where the longest gap has already run out
    by today (a long absence), no time can keep it: only the shortest gap still binds."""
    if previous is None:
        return None
    last_day = local_date(previous, calendar.zone) + timedelta(days=protocol.max_gap_days)
    if last_day < local_date(now, calendar.zone):
        if (local_date(starts_at, calendar.zone) - local_date(previous, calendar.zone)).days < protocol.min_gap_days:
            return series_gap_conflict(protocol, calendar.zone, previous=previous, starts_at=starts_at, following=None)
        return None
    return series_gap_conflict(protocol, calendar.zone, previous=previous, starts_at=starts_at, following=None)


def _reflow_next(
    calendar: ClinicCalendar, protocol: Protocol, anchor: Slot | None, following: Session, weekdays: frozenset[int]
) -> ReflowStep:
    assert anchor is not None
    here = Slot(following.chair_id, following.starts_at, following.ends_at)
    gap = series_gap_conflict(
        protocol, calendar.zone, previous=anchor.starts_at, starts_at=here.starts_at, following=None
    )
    stays = gap is None and calendar.conflict(here) is None
    if stays:
        return ReflowStep(following.number, following.pk, following.starts_at, here, None)
    time_of_day = following.starts_at.astimezone(calendar.zone).time()
    length = following.ends_at - following.starts_at
    placed = _place_next(
        calendar, protocol, anchor, time_of_day, following.chair_id, length, following.number, weekdays
    )
    if isinstance(placed, BookingConflict):
        return ReflowStep(following.number, following.pk, following.starts_at, None, placed)
    return ReflowStep(following.number, following.pk, following.starts_at, placed, None)


def _reflow_apply(
    steps: list[ReflowStep], target: Session, moving: dict[int, Session], series: Series, *, reason: str, via: str,
    actor, now: datetime,
) -> list[Session]:  # fmt: skip
    """Book the make-up, if any, and move the rest: their moves and audit lines written together,
    one query each. `moving`: the sessions the steps may move, by id."""
    clinic = series.clinic
    changed: list[Session] = []
    shifted: list[tuple[Session, datetime]] = []
    moves: list[SessionMove] = []
    audits: list[AuditEvent] = []
    for step in steps:
        assert step.slot is not None
        if step.session_id is None:
            made = Session.objects.create(
                series=series, patient=series.patient, clinic=clinic, chair_id=step.slot.chair_id,
                number=step.number, starts_at=step.slot.starts_at, ends_at=step.slot.ends_at,
                chair_free_at=step.slot.ends_at + timedelta(minutes=clinic.turnover_buffer_minutes),
                makeup_for=target,
            )  # fmt: skip
            audit_record(
                patient=series.patient_id, session=made, action="made up", via=via, actor=actor, at=now,
                detail=f"session {step.number} at {_clinic_time(made.starts_at, clinic)} for the "
                f"{target.get_status_display().lower()} one" + (f": {reason}" if reason else ""),
            )  # fmt: skip
            changed.append(made)
            continue
        session = moving[step.session_id]
        shifted.append((session, session.starts_at))
        move, audit = _shift(session, step.slot, clinic, reason=reason or "re-flow", via=via, actor=actor, now=now)
        moves.append(move)
        audits.append(audit)
        changed.append(session)
    if shifted:
        rows_insert(moves)
        rows_update([session for session, _ in shifted], [*_MOVED_FIELDS, "updated_at"])
        rows_insert(audits)
    for session, previous_start in shifted:
        # The re-flow's one notice (series_reflowed) tells the patient of every move.
        signals.session_moved.send(
            sender=Session, session=session, previous_starts_at=previous_start, now=now, in_reflow=True, via=via
        )
    return changed


def _defer_overlap_checks() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS session_chair_no_overlap, session_patient_no_overlap DEFERRED")


def _plan_explicit(
    calendar: ClinicCalendar, protocol: Protocol, starts: list[datetime], chair: Chair | None, length: timedelta
) -> list[PlannedSession]:
    plan: list[PlannedSession] = []
    previous: Slot | None = None
    for number, starts_at in enumerate(starts, start=1):
        slot, conflict = _slot_at(calendar, starts_at, length, chair, previous.chair_id if previous else None)
        if conflict is None and previous is not None:
            conflict = series_gap_conflict(
                protocol, calendar.zone, previous=previous.starts_at, starts_at=starts_at, following=None
            )
        plan.append(PlannedSession(number, slot, conflict.for_session(number) if conflict else None))
        if conflict is None and slot is not None:
            calendar.add(slot)
            previous = slot
    return plan


def _plan_auto(
    calendar: ClinicCalendar,
    protocol: Protocol,
    first_start: datetime,
    chair: Chair | None,
    length: timedelta,
    weekdays: frozenset[int] = ALL_WEEKDAYS,
) -> list[PlannedSession]:
    # The series most often takes the earliest day each gap allows: load those days in one query.
    first_day = local_date(first_start, calendar.zone)
    calendar.load(first_day + timedelta(days=n * protocol.min_gap_days) for n in range(protocol.session_count))
    slot, conflict = _slot_at(calendar, first_start, length, chair, None)
    if conflict is not None or slot is None:
        return [PlannedSession(1, None, conflict.for_session(1) if conflict else None)]
    calendar.add(slot)
    plan = [PlannedSession(1, slot, None)]
    time_of_day = first_start.astimezone(calendar.zone).time()
    for number in range(2, protocol.session_count + 1):
        placed = _place_next(calendar, protocol, plan[-1].slot, time_of_day, slot.chair_id, length, number, weekdays)
        if isinstance(placed, BookingConflict):
            plan.append(PlannedSession(number, None, placed))
            break
        calendar.add(placed)
        plan.append(PlannedSession(number, placed, None))
    return plan


def _slot_at(
    calendar: ClinicCalendar, starts_at: datetime, length: timedelta, chair: Chair | None, preferred_chair: int | None
) -> tuple[Slot | None, BookingConflict | None]:
    """The slot at `starts_at`: on the requested chair only, or on the preferred chair (the
    previous session's) or any free one when the scheduler left the chair open."""
    if chair is not None:
        slot = Slot(chair.pk, starts_at, starts_at + length)
        return slot, calendar.conflict(slot)
    found = calendar.first_free(starts_at, length, preferred_chair)
    if isinstance(found, BookingConflict):
        return None, found
    return found, None


def _place_next(
    calendar: ClinicCalendar,
    protocol: Protocol,
    previous: Slot | None,
    time_of_day: time,
    chair_id: int,
    length: timedelta,
    number: int,
    weekdays: frozenset[int] = ALL_WEEKDAYS,
) -> Slot | BookingConflict:
    assert previous is not None
    first_day = local_date(previous.starts_at, calendar.zone)
    gap_days = [first_day + timedelta(days=gap) for gap in range(protocol.min_gap_days, protocol.max_gap_days + 1)]
    days = [day for day in gap_days if day.weekday() in weekdays]
    if not days:
        return BookingConflict(
            "no_valid_slot",
            f"Session {number} cannot be placed: no {weekdays_text(weekdays)} falls between "
            f"{gap_days[0]:%a %d %b} and {gap_days[-1]:%a %d %b} (the protocol's gap of "
            f"{protocol.min_gap_days}–{protocol.max_gap_days} days).",
            session_number=number,
        )
    # Days past the first are read only when the earlier ones are full (ClinicCalendar loads lazily).
    refusals = []
    for day in days:
        usual = wall_clock(day, time_of_day, calendar.zone)
        others = sorted((t for t in calendar.start_times(day, length) if t != usual), key=lambda t: (abs(t - usual), t))
        for starts_at in [usual, *others]:
            found = calendar.first_free(starts_at, length, chair_id)
            if isinstance(found, Slot):
                return found
            if starts_at == usual:
                refusals.append(f"{day:%a %d %b}: {found.detail}")
    window = f"{days[0]:%a %d %b}" if len(days) == 1 else f"{days[0]:%a %d %b} and {days[-1]:%a %d %b}"
    if weekdays != ALL_WEEKDAYS:
        window += f" on {weekdays_text(weekdays)}"
    return BookingConflict(
        "no_valid_slot",
        f"Session {number} cannot be placed between {window} (the protocol's gap of "
        f"{protocol.min_gap_days}–{protocol.max_gap_days} days): " + " ".join(refusals),
        session_number=number,
    )


def _check_request(
    *,
    patient: Patient,
    protocol: Protocol,
    starts: Sequence[datetime] | None,
    first_start: datetime | None,
    chair: Chair | None,
    weekdays: Collection[int] | None = None,
) -> None:
    if (starts is None) == (first_start is None):
        raise ValidationError({"starts": "Give either every start (starts) or a first start (first_start), not both."})
    if weekdays and starts is not None:
        raise ValidationError(
            {"weekdays": "Weekdays place the sessions after a first start; with every start given, leave them out."}
        )
    if weekdays is not None and not set(weekdays) <= ALL_WEEKDAYS:
        raise ValidationError({"weekdays": "Weekdays are 0 (Monday) to 6 (Sunday)."})
    if starts is not None and len(starts) != protocol.session_count:
        raise ValidationError(
            {"starts": f"{protocol.name} has {protocol.session_count} sessions; {len(starts)} starts were given."}
        )
    if not protocol.is_active:
        raise ValidationError({"protocol": "This protocol is no longer offered."})
    if chair is not None and chair.clinic_id != protocol.clinic_id:
        raise ValidationError({"chair": "That chair belongs to another clinic."})


def _weekdays_allowed(weekdays: Collection[int] | None, first_day: date) -> frozenset[int]:
    """The days a series may use: every day, or the ones asked for, the first session's among them."""
    if not weekdays:
        return ALL_WEEKDAYS
    allowed = frozenset(weekdays)
    if first_day.weekday() not in allowed:
        days = weekdays_text(allowed)
        raise ValidationError(
            {"weekdays": f"The first session is on a {first_day:%A}: start on {days}, or add {first_day:%a}."}
        )
    return allowed


def _utc(value: datetime, clinic: Clinic, *, field: str, now: datetime) -> datetime:
    """`value` as a UTC instant, refused beyond the booking horizon on every path: a posted
    form or a caller can name any instant, and near either end of the calendar the day around it
    cannot even be computed. The recent past is the calendar's to refuse, with its rule."""
    too_far = ValidationError({field: f"Book at most {BOOKING_HORIZON.days} days ahead."})
    try:
        instant = to_utc(value, clinic.zone)
    except LocalTimeError as exc:
        raise ValidationError({field: str(exc)}) from exc
    except OverflowError as exc:
        raise too_far from exc
    if instant > now + BOOKING_HORIZON:
        raise too_far
    if instant < now - BOOKING_HORIZON:
        raise ValidationError({field: "This time has already passed."})
    return instant


def _lock_session(session: Session) -> Session:
    """The session's row, fresh, locked in the code base's order (sessions/locking.py): its
    patient, its series (whose status a cancel or a mark may change), then the session."""
    lock_patients(patient_ids=[session.patient_id])
    Series.objects.select_for_update(no_key=True).filter(pk=session.series_id).values_list("pk").get()
    return Session.objects.select_for_update(no_key=True).get(pk=session.pk)


def _require_upcoming(session: Session, verb: str) -> None:
    if session.status not in Session.UPCOMING:
        raise BookingConflict(
            "invalid_status",
            f"A {session.get_status_display().lower()} session cannot be {verb}.",
            session_number=session.number,
        )


def _move(session: Session, slot: Slot, clinic: Clinic, *, reason: str, via: str, actor, now: datetime) -> Session:
    previous_start = session.starts_at
    move, audit = _shift(session, slot, clinic, reason=reason, via=via, actor=actor, now=now)
    move.save(force_insert=True)
    session.save()
    audit.save(force_insert=True)
    signals.session_moved.send(
        sender=Session, session=session, previous_starts_at=previous_start, now=now, in_reflow=False, via=via
    )
    return session


# What a move changes on a session (_shift).
_MOVED_FIELDS = [
    "chair", "starts_at", "ends_at", "chair_free_at", "version", "status", "confirmed_at", "confirmed_via",
    "driver_confirmed",
]  # fmt: skip


def _shift(
    session: Session, slot: Slot, clinic: Clinic, *, reason: str, via: str, actor, now: datetime
) -> tuple[SessionMove, AuditEvent]:
    """Put `session` in `slot`, in memory, needing confirming again (the patient confirmed the
    old time): with its history row and audit line, for the caller to save."""
    move = SessionMove(
        session=session,
        from_starts_at=session.starts_at,
        from_chair_id=session.chair_id,
        to_starts_at=slot.starts_at,
        to_chair_id=slot.chair_id,
        reason=reason,
        via=via,
        moved_by=actor,
    )
    previous_start = session.starts_at
    session.chair_id = slot.chair_id
    session.starts_at = slot.starts_at
    session.ends_at = slot.ends_at
    session.chair_free_at = slot.ends_at + timedelta(minutes=clinic.turnover_buffer_minutes)
    session.version += 1
    session.status = Session.Status.BOOKED
    session.confirmed_at = None
    session.confirmed_via = ""
    session.driver_confirmed = False
    audit = _audit_event(
        patient=session.patient_id, session=session, action="moved", via=via, actor=actor, at=now,
        detail=f"from {_clinic_time(previous_start, clinic)} to {_clinic_time(slot.starts_at, clinic)}"
        + (f": {reason}" if reason else ""),
    )  # fmt: skip
    return move, audit


def _set_status(
    session: Session,
    status: str,
    now: datetime,
    *,
    via: str,
    actor,
    detail: str = "",
    extra: Sequence[str] = (),
    with_series: bool = False,
    action: str = "",
) -> None:
    previous = session.status
    session.status = status
    session.status_changed_at = now
    session.save(update_fields=["status", "status_changed_at", "updated_at", *extra])
    audit_record(
        patient=session.patient_id, session=session, action=action or status, via=via, actor=actor, at=now,
        detail=detail,
    )  # fmt: skip
    signals.session_status_changed.send(
        sender=Session, session=session, previous_status=previous, now=now, with_series=with_series, via=via
    )


def patient_note_add(*, patient: Patient, text: str, actor, now: datetime | None = None) -> PatientNote:
    """A staff note on the patient; the audit trail records that one was written, not what it says."""
    text = text.strip()
    if not text:
        raise ValidationError({"text": "Write the note."})
    if len(text) > 2000:
        raise ValidationError({"text": "Keep a note to 2,000 characters."})
    now = now or timezone.now()
    with transaction.atomic():
        note = PatientNote.objects.create(patient=patient, clinic_id=patient.clinic_id, text=text, written_by=actor)
        audit_record(patient=patient.pk, clinic=patient.clinic_id, action="note added", via=Session.Channel.STAFF,
                     actor=actor, at=now)  # fmt: skip
    return note


def audit_record(
    *, action: str, via: str, actor=None, at: datetime, patient: int | None = None, clinic: int | None = None,
    session: Session | None = None, series: Series | None = None, object_type: str = "", object_id: int | None = None,
    detail: str = "",
) -> AuditEvent:  # fmt: skip
    """One line of the audit trail. Staff actions carry the user; a patient's, the channel."""
    event = _audit_event(
        action=action, via=via, actor=actor, at=at, patient=patient, clinic=clinic, session=session, series=series,
        object_type=object_type, object_id=object_id, detail=detail,
    )  # fmt: skip
    event.save(force_insert=True)
    return event


def _audit_event(
    *, action: str, via: str, actor=None, at: datetime, patient: int | None = None, clinic: int | None = None,
    session: Session | None = None, series: Series | None = None, object_type: str = "", object_id: int | None = None,
    detail: str = "",
) -> AuditEvent:  # fmt: skip
    """audit_record's line, unsaved: a re-flow writes its lines together."""
    if clinic is None:
        owner = session or series
        if owner is not None:
            clinic = owner.clinic_id
        elif patient is not None:
            clinic = Patient.objects.values_list("clinic_id", flat=True).get(pk=patient)
    return AuditEvent(
        clinic_id=clinic,
        patient_id=patient,
        session=session,
        # By id: a series cancelled visit by visit must not load the series once per visit.
        series_id=series.pk if series is not None else (session.series_id if session is not None else None),
        object_type=object_type,
        object_id=object_id,
        action=action,
        via=via,
        actor=actor if getattr(actor, "is_authenticated", False) else None,
        at=at,
        detail=detail[:300],
    )


def _clinic_time(moment: datetime, clinic: Clinic) -> str:
    return f"{moment.astimezone(clinic.zone):%a %d %b %Y %H:%M}"


def _clinic_day(moment: datetime, clinic: Clinic) -> str:
    return f"{moment.astimezone(clinic.zone):%a %d %b %Y}"


def _series_calendar(session: Session, *, ignore: Sequence[int], now: datetime) -> ClinicCalendar:
    """The clinic's calendar as the session's series sees it, without the sessions in `ignore`."""
    return ClinicCalendar(
        session.clinic, patient_id=session.patient_id, now=now, ignore_session_ids=ignore,
        series_id=session.series_id, min_gap_days=session.series.protocol.min_gap_days,
    )  # fmt: skip


def _require_notice(session: Session, starts_at: datetime, *, via: str, now: datetime) -> None:
    """Rule 13: a patient acting alone picks no time sooner than the clinic's minimum notice."""
    if via not in SELF_SERVICE:
        return
    earliest = self_service_earliest(session=session, now=now)
    if starts_at < earliest:
        raise BookingConflict(
            "short_notice",
            f"Times before {_clinic_time(earliest, session.clinic)} are too soon to pick without the clinic.",
            session_number=session.number,
        )


def _series_refresh_status(series_id: int) -> None:
    """Active while a session is still to happen or under way; else completed, or cancelled when
    none took place. An undo or a make-up may bring a finished series back."""
    statuses = set(Session.objects.filter(series_id=series_id).values_list("status", flat=True))
    if statuses & {Session.Status.BOOKED, Session.Status.CONFIRMED, Session.Status.ARRIVED}:
        status = Series.Status.ACTIVE
    elif statuses == {Session.Status.CANCELLED}:
        status = Series.Status.CANCELLED
    else:
        status = Series.Status.COMPLETED
    if Series.objects.filter(pk=series_id).exclude(status=status).update(status=status):
        _recall_follow(series_id, status)


def _recall_follow(series_id: int, status: str) -> None:
    """A series just completed: its booster falls due at the protocol's interval after its last
    session that took place (where the protocol names a booster). One brought back to life by an
    undo or a make-up withdraws a recall still open."""
    if status != Series.Status.COMPLETED:
        Recall.objects.filter(series_id=series_id, status__in=Recall.OPEN).update(
            status=Recall.Status.WITHDRAWN, closed_at=timezone.now()
        )
        return
    series = Series.objects.select_related("protocol__clinic").get(pk=series_id)
    protocol, clinic = series.protocol, series.protocol.clinic
    if protocol.booster_interval_days is None or protocol.booster_protocol_id is None:
        return
    last = (
        series.sessions.filter(status=Session.Status.COMPLETED).order_by("-starts_at")
        .values_list("starts_at", flat=True).first()
    )  # fmt: skip
    if last is None:
        return
    due_on = local_date(last, clinic.zone) + timedelta(days=protocol.booster_interval_days)
    # Completed again after an undo: an answer already given (booked, snoozed, declined) stands.
    if Recall.objects.filter(series=series).exclude(status=Recall.Status.WITHDRAWN).update(due_on=due_on):
        return
    Recall.objects.update_or_create(
        series=series,
        defaults={"clinic": clinic, "patient_id": series.patient_id, "protocol_id": protocol.booster_protocol_id,
                  "due_on": due_on, "status": Recall.Status.DUE, "snoozed_until": None, "closed_at": None},
    )  # fmt: skip


def _recall_close_by(series: Series, now: datetime) -> None:
    """A booster booked for a patient with a recall of it open: the recall is answered."""
    Recall.objects.filter(patient_id=series.patient_id, protocol_id=series.protocol_id, status__in=Recall.OPEN).update(
        status=Recall.Status.BOOKED, booked_series=series, closed_at=now
    )


@contextmanager
def _translating_constraint_violations() -> Iterator[None]:
    """Turn an exclusion-constraint violation (a booking that raced past the checks, or code that
    bypassed them) into the conflict the checks would have given."""
    try:
        yield
    except IntegrityError as exc:
        name = getattr(getattr(exc.__cause__, "diag", None), "constraint_name", None)
        if name not in _CONSTRAINT_CONFLICTS:
            raise
        code, detail, number = _CONSTRAINT_CONFLICTS[name]
        raise BookingConflict(code, detail, session_number=number) from exc
