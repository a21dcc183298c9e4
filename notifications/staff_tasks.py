"""Inbox tasks for staff: what a patient did that needs a person (rule 14), a no-show to follow
up, and a series fallen off its protocol (rule 12), each with the session and the next step.

Most are heard from the booking signals, inside the booking transaction: a task exists exactly
when the change does, and costs the booking a query or two. Inserts skip a task already open
(StaffFlag's partial unique constraints), so a repeat creates nothing. A task whose cause goes
away on its own (an undo, a re-flow that restores the protocol, a driver confirmed) is closed
with no handler, and the audit trail says the system closed it.
"""

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.dispatch import receiver

from sessions import signals
from sessions.models import AuditEvent, Patient, Series, Session
from sessions.selectors import series_gaps
from sessions.services import audit_record

from .models import StaffFlag

Kind = StaffFlag.Kind

# A move this close to either time leaves staff little time to re-plan the chair, the nurses
# and the patient's preparation.
LATE_MOVE_WINDOW = timedelta(hours=48)
# The driver is asked for in the reminders; one still missing this close to the visit needs a call.
DRIVER_WINDOW = timedelta(hours=24)
# The channels through which a patient acts alone, as the inbox says them.
_BY_PATIENT = {Session.Channel.LINK: "on the link", Session.Channel.SMS: "by text"}
# A missed visit, or its undo, changes which sessions the series holds.
_GAP_STATUSES = {Session.Status.CANCELLED, Session.Status.NO_SHOW}


@receiver(signals.session_status_changed)
def on_session_status_changed(sender: Any, session: Session, now: datetime, **kwargs: Any) -> None:
    if kwargs.get("with_series"):
        return  # staff ended the whole series: series_cancelled follows
    previous, via = kwargs.get("previous_status"), kwargs.get("via")
    if session.status == Session.Status.CANCELLED and via in _BY_PATIENT:
        visit, zone = _visit(session)
        _task_raise(
            session, Kind.PATIENT_CANCELLED,
            detail=f"Cancelled {visit} ({_clock(session.starts_at, zone)}) {_BY_PATIENT[via]}",
            next_step=f"Rebook session {session.number} (make-up) or re-flow the series",
        )  # fmt: skip
    elif session.status == Session.Status.NO_SHOW:
        visit, zone = _visit(session)
        _task_raise(
            session, Kind.NO_SHOW,
            detail=f"No-show at {visit} ({_clock(session.starts_at, zone)})",
            next_step=f"Follow up with the patient; rebook session {session.number} (make-up) or re-flow the series",
        )  # fmt: skip
    elif previous in _GAP_STATUSES:
        _flags_close(
            StaffFlag.objects.filter(session=session, kind__in=[Kind.PATIENT_CANCELLED, Kind.NO_SHOW]),
            now=now, why=f"{Session.Status(previous).label.lower()} undone",
        )  # fmt: skip
    if session.status in _GAP_STATUSES or previous in _GAP_STATUSES:
        series_gap_watch(
            series_id=session.series_id, clinic_id=session.clinic_id, patient_id=session.patient_id, now=now
        )


@receiver(signals.session_moved)
def on_session_moved(sender: Any, session: Session, previous_starts_at: datetime, now: datetime, **kwargs: Any) -> None:
    via = kwargs.get("via")
    if via in _BY_PATIENT and min(previous_starts_at, session.starts_at) < now + LATE_MOVE_WINDOW:
        visit, zone = _visit(session)
        _task_raise(
            session, Kind.LATE_MOVE,
            detail=f"Moved {visit} from {_clock(previous_starts_at, zone)} to {_clock(session.starts_at, zone)} "
            f"{_BY_PATIENT[via]}, inside 48 hours",
            next_step="Check the new time with the patient (fasting, driver) and the day's nurses",
        )  # fmt: skip
    if not kwargs.get("in_reflow"):  # a re-flow is watched once, when it is done
        series_gap_watch(
            series_id=session.series_id, clinic_id=session.clinic_id, patient_id=session.patient_id, now=now
        )


@receiver(signals.series_reflowed)
def on_series_reflowed(sender: Any, series: Series, sessions: list[Session], now: datetime, **kwargs: Any) -> None:
    made_good = [s.makeup_for_id for s in sessions if s.makeup_for_id is not None]
    if made_good:
        _flags_close(
            StaffFlag.objects.filter(session_id__in=made_good, kind=Kind.PATIENT_CANCELLED), now=now, why="made up"
        )
    series_gap_watch(series_id=series.pk, clinic_id=series.clinic_id, patient_id=series.patient_id, now=now)


@receiver(signals.series_cancelled)
def on_series_cancelled(sender: Any, series: Series, now: datetime, **kwargs: Any) -> None:
    _flags_close(
        StaffFlag.objects.filter(series=series, kind=Kind.SERIES_OFF_PROTOCOL), now=now, why="series cancelled"
    )


def series_gap_watch(*, series_id: int, clinic_id: int, patient_id: int, now: datetime) -> None:
    """Rule 12: an off-protocol series has one open task naming where to re-flow from, kept up to
    date; one back on its protocol has none. The caller holds the patient's lock (every booking
    write does), so two changes to one series never race here."""
    gaps = series_gaps(series_ids=[series_id], now=now).get(series_id)
    open_flag = StaffFlag.objects.filter(series_id=series_id, kind=Kind.SERIES_OFF_PROTOCOL, handled_at=None)
    if not gaps:
        _flags_close(open_flag, now=now, why="back on protocol")
        return
    detail = _cut("; ".join(gap.text for gap in gaps), 300)
    next_step = f"Re-flow from session {gaps[0].number}"
    if not open_flag.update(detail=detail, next_step=next_step):
        StaffFlag.objects.bulk_create(
            [StaffFlag(clinic_id=clinic_id, patient_id=patient_id, series_id=series_id, kind=Kind.SERIES_OFF_PROTOCOL,
                       detail=detail, next_step=next_step)],
            ignore_conflicts=True,
        )  # fmt: skip


def driver_tasks_raise(*, now: datetime) -> None:
    """Rule 14: one task per visit starting within 24 hours whose protocol needs a driver no one
    has confirmed, once per visit (a task staff handled is not raised again); and close those
    whose driver has since been confirmed or whose visit is no longer to come. Run by the tick:
    a query to close, one to find and one insert."""
    _flags_close(
        StaffFlag.objects.filter(kind=Kind.DRIVER_UNCONFIRMED).filter(
            Q(session__driver_confirmed=True) | ~Q(session__status__in=Session.UPCOMING)
        ),
        now=now, why="driver confirmed or visit no longer to come",
    )  # fmt: skip
    asked = StaffFlag.objects.filter(session=OuterRef("pk"), kind=Kind.DRIVER_UNCONFIRMED)
    due = (
        Session.objects.filter(
            status__in=Session.UPCOMING,
            starts_at__gt=now,
            starts_at__lte=now + DRIVER_WINDOW,
            driver_confirmed=False,
            series__protocol__driver_required=True,
        )
        .exclude(Exists(asked))
        .values_list(
            "pk",
            "clinic_id",
            "patient_id",
            "series_id",
            "number",
            "starts_at",
            "series__protocol__session_count",
            "clinic__time_zone",
        )
    )
    tasks = [
        StaffFlag(
            clinic_id=clinic_id,
            patient_id=patient_id,
            session_id=pk,
            series_id=series_id,
            kind=Kind.DRIVER_UNCONFIRMED,
            detail=f"No driver confirmed for session {number} of {count} ({_clock(starts_at, ZoneInfo(zone))})",
            next_step="Call the patient to confirm who drives them home",
        )
        for pk, clinic_id, patient_id, series_id, number, starts_at, count, zone in due
    ]
    if tasks:
        StaffFlag.objects.bulk_create(tasks, ignore_conflicts=True)


def opted_out_task_raise(*, patient: Patient, now: datetime) -> None:
    """Rule 14: a patient who stopped texts with visits still to come gets one open task, on their
    next visit: the reminders for those visits will not reach them by text. The caller holds the
    patient's lock."""
    if StaffFlag.objects.filter(patient=patient, kind=Kind.OPTED_OUT, handled_at=None).exists():
        return
    upcoming = list(
        Session.objects.filter(patient=patient, status__in=Session.UPCOMING, starts_at__gt=now)
        .order_by("starts_at")
        .values_list("pk", "clinic_id", "series_id", "number", "starts_at", "series__protocol__session_count",
                     "clinic__time_zone")
    )  # fmt: skip
    if not upcoming:
        return
    pk, clinic_id, series_id, number, starts_at, count, zone = upcoming[0]
    visits = f"{len(upcoming)} visit{'s' if len(upcoming) != 1 else ''}"
    StaffFlag.objects.create(
        clinic_id=clinic_id, patient=patient, session_id=pk, series_id=series_id, kind=Kind.OPTED_OUT,
        detail=f"Opted out of texts with {visits} ahead (next: session {number} of {count}, "
        f"{_clock(starts_at, ZoneInfo(zone))})",
        next_step="Remind them by phone or email; texts resume if they reply START",
    )  # fmt: skip


def _task_raise(session: Session, kind: str, *, detail: str, next_step: str) -> None:
    StaffFlag.objects.bulk_create(
        [StaffFlag(clinic_id=session.clinic_id, patient_id=session.patient_id, session=session,
                   series_id=session.series_id, kind=kind, detail=_cut(detail, 300), next_step=_cut(next_step, 200))],
        ignore_conflicts=True,
    )  # fmt: skip


def _flags_close(flags: QuerySet[StaffFlag], *, now: datetime, why: str) -> None:
    """Mark the open ones handled by no one, each on the audit trail as the system's doing.
    Inside a booking's transaction (where every receiver runs) it needs no savepoint of its own:
    nothing here is caught and retried, so an error rolls back the booking with it."""
    with transaction.atomic(savepoint=False):
        closing = list(
            flags.filter(handled_at=None)
            .select_for_update(skip_locked=True, of=("self",))
            .values_list("pk", "patient_id", "clinic_id", "kind")
        )
        if not closing:
            return
        StaffFlag.objects.filter(pk__in=[row[0] for row in closing]).update(handled_at=now, handled_by=None)
        for _, patient_id, clinic_id, kind in closing:
            audit_record(
                patient=patient_id, clinic=clinic_id, action="flag handled", via=AuditEvent.Via.SYSTEM, at=now,
                detail=f"{Kind(kind).label}: {why}",
            )  # fmt: skip


def _visit(session: Session) -> tuple[str, ZoneInfo]:
    """'session 3 of 6' and the clinic's zone. The signal's session comes as the service locked
    it, often without its series or clinic: then one query reads what is missing."""
    meta = Session._meta
    if meta.get_field("clinic").is_cached(session) and meta.get_field("series").is_cached(session):
        if Series._meta.get_field("protocol").is_cached(session.series):
            return f"session {session.number} of {session.series.protocol.session_count}", session.clinic.zone
    count, zone = (
        Series.objects.filter(pk=session.series_id).values_list("protocol__session_count", "clinic__time_zone").get()
    )
    return f"session {session.number} of {count}", ZoneInfo(zone)


def _clock(moment: datetime, zone: ZoneInfo) -> str:
    """'Tue 3 Mar 10:00' in the clinic's zone: how the front desk writes a visit."""
    local = moment.astimezone(zone)
    return f"{local:%a} {local.day} {local:%b %H:%M}"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
