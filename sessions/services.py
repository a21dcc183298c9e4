"""Every write of the booking domain: book a series, move, confirm, cancel, mark attendance.

Locks follow the code base's one order (sessions/locking.py): clinic → patient → series →
session. Bookings and moves lock the clinic's row, so checks and insert see one consistent
calendar: bookings of one clinic are serialised, which is cheap at clinic scale and makes staffing
capacity and the stagger cap, which no constraint can express, exact. Every other write to a
session locks its patient first. PostgreSQL's exclusion constraints stand behind rules 2 and 3
regardless.
"""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from . import signals
from .calendar import BOOKING_HORIZON, BookingConflict, ClinicCalendar, Slot, series_gap_conflict
from .clock import LocalTimeError, local_date, to_utc, wall_clock
from .locking import lock_clinic_and_patient, lock_patients
from .models import AuditEvent, Chair, Clinic, Patient, Protocol, Series, Session, SessionMove
from .selectors import session_neighbours

_CONSTRAINT_CONFLICTS = {
    "session_chair_no_overlap": ("chair_overlap", "That chair was taken by another booking at the same moment."),
    "session_patient_no_overlap": (
        "patient_overlap",
        "The patient was booked elsewhere at that time at the same moment.",
    ),
}


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
    now: datetime | None = None,
) -> list[PlannedSession]:
    """Where each session of a series would go and the rule it would break; writes nothing.

    Either `starts` gives every start, or `first_start` anchors auto-placement: each next session
    takes the earliest day its gap allows, at the first session's time of day and chair if free,
    else another chair, else the nearest other time that day (rule 7).
    """
    clinic = protocol.clinic
    _check_request(patient=patient, protocol=protocol, starts=starts, first_start=first_start, chair=chair)
    calendar = ClinicCalendar(clinic, patient_id=patient.pk, now=now or timezone.now())
    length = timedelta(minutes=protocol.chair_minutes)
    if starts is not None:
        utc_starts = [_utc(value, clinic, field="starts", now=calendar.now) for value in starts]
        return _plan_explicit(calendar, protocol, utc_starts, chair, length)
    assert first_start is not None
    return _plan_auto(
        calendar, protocol, _utc(first_start, clinic, field="first_start", now=calendar.now), chair, length
    )


def series_book(
    *,
    patient: Patient,
    protocol: Protocol,
    starts: Sequence[datetime] | None = None,
    first_start: datetime | None = None,
    chair: Chair | None = None,
    actor=None,
    via: str = Session.Channel.STAFF,
    now: datetime | None = None,
) -> Series:
    """Book the whole series or nothing (rule 6); the conflict names the first rule broken."""
    now = now or timezone.now()
    with _translating_constraint_violations(), transaction.atomic():
        lock_clinic_and_patient(clinic_id=protocol.clinic_id, patient_id=patient.pk)
        plan = series_plan(
            patient=patient, protocol=protocol, starts=starts, first_start=first_start, chair=chair, now=now
        )
        for planned in plan:
            if planned.conflict is not None:
                raise planned.conflict
        series = Series.objects.create(patient=patient, protocol=protocol, clinic=protocol.clinic, created_by=actor)
        buffer = timedelta(minutes=protocol.clinic.turnover_buffer_minutes)
        sessions = Session.objects.bulk_create(
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
        )
        first = _clinic_time(sessions[0].starts_at, protocol.clinic)
        detail = f"{protocol.name}: {len(sessions)} session(s) from {first}"
        audit_record(patient=patient.pk, series=series, action="booked", via=via, actor=actor, at=now, detail=detail)
        signals.sessions_booked.send(sender=Session, sessions=sessions, now=now)
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
        calendar = ClinicCalendar(clinic, patient_id=session.patient_id, ignore_session_id=session.pk, now=now)
        length = session.ends_at - session.starts_at
        if chair is not None:
            slot: Slot | BookingConflict = Slot(chair.pk, new_start, new_start + length)
            refused = calendar.conflict(slot)
        else:
            slot = calendar.first_free(new_start, length, session.chair_id)
            refused = slot if isinstance(slot, BookingConflict) else None
        previous, following = session_neighbours(session=session)
        refused = refused or series_gap_conflict(
            session.series.protocol, clinic.zone, previous=previous, starts_at=new_start, following=following
        )
        if refused is not None:
            raise refused.for_session(session.number)
        assert isinstance(slot, Slot)
        return _move(session, slot, clinic, reason=reason, via=via, actor=actor, now=calendar.now)


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
            signals.session_status_changed.send(sender=Session, session=session, previous_status=previous, now=now)
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


def session_mark(
    *, session: Session, status: str, via: str = Session.Channel.STAFF, actor=None, now: datetime | None = None
) -> Session:
    """Nurse's marks on the day: arrived, completed, no-show."""
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
        _set_status(session, status, now, via=via, actor=actor)
        _series_refresh_status(session.series_id)
    return session


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
        signals.series_cancelled.send(sender=Series, series=series, sessions=cancelled, now=now)
    return series


def _plan_explicit(
    calendar: ClinicCalendar, protocol: Protocol, starts: list[datetime], chair: Chair | None, length: timedelta
) -> list[PlannedSession]:
    plan: list[PlannedSession] = []
    previous: Slot | None = None
    for number, starts_at in enumerate(starts, start=1):
        slot, conflict = _slot_at(calendar, starts_at, length, chair, previous)
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
    calendar: ClinicCalendar, protocol: Protocol, first_start: datetime, chair: Chair | None, length: timedelta
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
        placed = _place_next(calendar, protocol, plan[-1].slot, time_of_day, slot.chair_id, length, number)
        if isinstance(placed, BookingConflict):
            plan.append(PlannedSession(number, None, placed))
            break
        calendar.add(placed)
        plan.append(PlannedSession(number, placed, None))
    return plan


def _slot_at(
    calendar: ClinicCalendar, starts_at: datetime, length: timedelta, chair: Chair | None, previous: Slot | None
) -> tuple[Slot | None, BookingConflict | None]:
    """The slot at `starts_at`: on the requested chair only, or on the previous session's chair or
    any free one when the scheduler left the chair open."""
    if chair is not None:
        slot = Slot(chair.pk, starts_at, starts_at + length)
        return slot, calendar.conflict(slot)
    found = calendar.first_free(starts_at, length, previous.chair_id if previous else None)
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
) -> Slot | BookingConflict:
    assert previous is not None
    first_day = local_date(previous.starts_at, calendar.zone)
    days = [first_day + timedelta(days=gap) for gap in range(protocol.min_gap_days, protocol.max_gap_days + 1)]
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
) -> None:
    if (starts is None) == (first_start is None):
        raise ValidationError({"starts": "Give either every start (starts) or a first start (first_start), not both."})
    if starts is not None and len(starts) != protocol.session_count:
        raise ValidationError(
            {"starts": f"{protocol.name} has {protocol.session_count} sessions; {len(starts)} starts were given."}
        )
    if not protocol.is_active:
        raise ValidationError({"protocol": "This protocol is no longer offered."})
    if chair is not None and chair.clinic_id != protocol.clinic_id:
        raise ValidationError({"chair": "That chair belongs to another clinic."})


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
    SessionMove.objects.create(
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
    session.save()
    audit_record(
        patient=session.patient_id, session=session, action="moved", via=via, actor=actor, at=now,
        detail=f"from {_clinic_time(previous_start, clinic)} to {_clinic_time(slot.starts_at, clinic)}"
        + (f": {reason}" if reason else ""),
    )  # fmt: skip
    signals.session_moved.send(sender=Session, session=session, previous_starts_at=previous_start, now=now)
    return session


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
) -> None:
    previous = session.status
    session.status = status
    session.status_changed_at = now
    session.save(update_fields=["status", "status_changed_at", "updated_at", *extra])
    audit_record(
        patient=session.patient_id, session=session, action=status, via=via, actor=actor, at=now, detail=detail
    )
    signals.session_status_changed.send(
        sender=Session, session=session, previous_status=previous, now=now, with_series=with_series
    )


def audit_record(
    *, action: str, via: str, actor=None, at: datetime, patient: int | None = None, clinic: int | None = None,
    session: Session | None = None, series: Series | None = None, object_type: str = "", object_id: int | None = None,
    detail: str = "",
) -> AuditEvent:  # fmt: skip
    """One line of the audit trail. Staff actions carry the user; a patient's, the channel."""
    if clinic is None:
        owner = session or series
        if owner is not None:
            clinic = owner.clinic_id
        elif patient is not None:
            clinic = Patient.objects.values_list("clinic_id", flat=True).get(pk=patient)
    return AuditEvent.objects.create(
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


def _series_refresh_status(series_id: int) -> None:
    statuses = set(Session.objects.filter(series_id=series_id).values_list("status", flat=True))
    if statuses & {Session.Status.BOOKED, Session.Status.CONFIRMED, Session.Status.ARRIVED}:
        return
    done = Series.Status.CANCELLED if statuses == {Session.Status.CANCELLED} else Series.Status.COMPLETED
    Series.objects.filter(pk=series_id, status=Series.Status.ACTIVE).update(status=done)


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
        code, detail = _CONSTRAINT_CONFLICTS[name]
        raise BookingConflict(code, detail) from exc
