"""Reads of the booking domain."""

from datetime import date, datetime, timedelta

from django.db.models import QuerySet
from django.utils import timezone

from .calendar import ClinicCalendar, Slot, series_gap_conflict
from .clock import dates_between, day_bounds, local_date
from .models import Clinic, Session


def session_neighbours(*, session: Session) -> tuple[datetime | None, datetime | None]:
    """Starts of the series' holding sessions just before and just after this one."""
    siblings = Session.objects.filter(series_id=session.series_id, status__in=Session.HOLDING).exclude(pk=session.pk)
    previous = (
        siblings.filter(number__lt=session.number).order_by("-number").values_list("starts_at", flat=True).first()
    )
    following = (
        siblings.filter(number__gt=session.number).order_by("number").values_list("starts_at", flat=True).first()
    )
    return previous, following


def session_slots(*, session: Session, days: int = 14, now: datetime | None = None) -> list[Slot]:
    """Start times in the next `days` days where `session` may move, one chair each (its own
    chair when free there). Each slot is one that `session_reschedule` accepts."""
    now = now or timezone.now()
    if not session.is_upcoming:
        return []
    clinic = session.clinic
    zone = clinic.zone
    protocol = session.series.protocol
    previous, following = session_neighbours(session=session)
    first = local_date(now, zone)
    last = first + timedelta(days=days - 1)
    # Only days the series gap allows can hold a valid slot; skip the rest without looking.
    if previous is not None:
        first = max(first, local_date(previous, zone) + timedelta(days=protocol.min_gap_days))
        last = min(last, local_date(previous, zone) + timedelta(days=protocol.max_gap_days))
    if following is not None:
        first = max(first, local_date(following, zone) - timedelta(days=protocol.max_gap_days))
        last = min(last, local_date(following, zone) - timedelta(days=protocol.min_gap_days))
    if first > last:
        return []
    calendar = ClinicCalendar(clinic, patient_id=session.patient_id, ignore_session_id=session.pk, now=now)
    days_to_search = dates_between(first, last)
    calendar.load(days_to_search)
    length = session.ends_at - session.starts_at
    slots = []
    for day in days_to_search:
        for starts_at in calendar.start_times(day, length):
            if starts_at == session.starts_at:
                continue
            found = calendar.first_free(starts_at, length, session.chair_id)
            if (
                isinstance(found, Slot)
                and series_gap_conflict(protocol, zone, previous=previous, starts_at=starts_at, following=following)
                is None
            ):
                slots.append(found)
    return slots


def sessions_for_day(*, clinic: Clinic, day: date) -> QuerySet[Session]:
    """The clinic's sessions starting on `day` in the clinic's calendar, all statuses."""
    begins, ends = day_bounds(day, clinic.zone)
    return (
        Session.objects.filter(clinic=clinic, starts_at__gte=begins, starts_at__lt=ends)
        .select_related("patient", "chair", "series__protocol")
        .order_by("starts_at", "chair__name")
    )
