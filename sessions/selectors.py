"""Reads of the booking domain."""

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.db.models import QuerySet
from django.utils import timezone

from .calendar import BookingConflict, ClinicCalendar, Slot, series_gap_conflict
from .clock import dates_between, day_bounds, local_date, wall_clock
from .models import Clinic, Protocol, Series, Session


def session_neighbours(*, session: Session) -> tuple[datetime | None, datetime | None]:
    """Starts of the series' holding sessions just before and just after this one."""
    siblings = Session.objects.filter(series_id=session.series_id, status__in=Session.HOLDING).exclude(pk=session.pk)
    # A series has a few sessions: all of them in one query, rather than one query each way.
    numbered = sorted(siblings.values_list("number", "starts_at"))
    previous = next((starts_at for number, starts_at in reversed(numbered) if number < session.number), None)
    following = next((starts_at for number, starts_at in numbered if number > session.number), None)
    return previous, following


def self_service_earliest(*, session: Session, now: datetime) -> datetime:
    """Rule 13: the soonest start a patient may pick alone, by link or text. The clinic's minimum
    notice where set; else the larger of the protocol's fasting hours (a patient offered a time
    sooner than that could not prepare for it) and the cancellation notice (a time the patient
    could no longer cancel on their own)."""
    return now + self_service_notice(clinic=session.clinic, protocol=session.series.protocol)


def self_service_notice(*, clinic: Clinic, protocol: Protocol) -> timedelta:
    """Rule 13's notice for a visit of `protocol`: self_service_earliest's, for a visit not yet booked."""
    hours = clinic.self_service_notice_hours
    if hours is None:
        hours = max(protocol.fasting_hours, clinic.cancellation_notice_hours)
    return timedelta(hours=hours)


def session_slots(
    *, session: Session, days: int = 14, now: datetime | None = None, self_service: bool = False
) -> list[Slot]:
    """Start times in the next `days` days where `session` may move, one chair each (its own
    chair when free there). Each slot is one that `session_reschedule` accepts; with
    `self_service`, only those the patient may pick alone (rule 13)."""
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
    earliest = self_service_earliest(session=session, now=now) if self_service else now
    first = max(first, local_date(earliest, zone))
    if first > last:
        return []
    calendar = ClinicCalendar(
        clinic, patient_id=session.patient_id, now=now, ignore_session_ids=[session.pk],
        series_id=session.series_id, min_gap_days=protocol.min_gap_days,
    )  # fmt: skip
    days_to_search = dates_between(first, last)
    calendar.load(days_to_search)
    length = session.ends_at - session.starts_at
    slots = []
    for day in days_to_search:
        # Rule 5 counts days, so one time of the day answers for all of them.
        noon = wall_clock(day, time(12), zone)
        if series_gap_conflict(protocol, zone, previous=previous, starts_at=noon, following=following):
            continue
        found = calendar.free_slots(day, length, session.chair_id, since=earliest)
        slots.extend(slot for slot in found if slot.starts_at != session.starts_at)
    return slots


def conflict_holder(*, conflict: BookingConflict) -> Session | None:
    """The booked session that holds the chair a refused slot asked for (the first, where
    several do); None for any other refusal, or where it is a session of the plan itself."""
    slot = conflict.slot
    if conflict.code != "chair_overlap" or slot is None:
        return None
    return (
        Session.objects.filter(
            chair_id=slot.chair_id,
            status__in=Session.HOLDING,
            starts_at__lt=slot.ends_at,
            chair_free_at__gt=slot.starts_at,
        )
        .select_related("patient", "series__protocol", "clinic")
        .order_by("starts_at")
        .first()
    )


def conflict_explained(conflict: BookingConflict) -> str:
    """The refusal's detail, with whose session holds the chair where one does: "… held by
    Jordan Reyes's Booster (1 of 1), 09:00–11:00"."""
    holder = conflict_holder(conflict=conflict)
    if holder is None:
        return conflict.detail
    zone = holder.clinic.zone
    when = f"{holder.starts_at.astimezone(zone):%H:%M}–{holder.ends_at.astimezone(zone):%H:%M}"
    protocol = holder.series.protocol
    return (
        f"{conflict.detail} Held by {holder.patient}'s {protocol.name} "
        f"({holder.number} of {protocol.session_count}), {when}."
    )


def sessions_for_day(*, clinic: Clinic, day: date) -> QuerySet[Session]:
    """The clinic's sessions starting on `day` in the clinic's calendar, all statuses."""
    begins, ends = day_bounds(day, clinic.zone)
    return (
        Session.objects.filter(clinic=clinic, starts_at__gte=begins, starts_at__lt=ends)
        .select_related("patient", "chair", "series__protocol")
        .order_by("starts_at", "chair__name")
    )


@dataclass(frozen=True)
class SeriesGap:
    """Where a series is off its protocol (rule 12): `number` is the session to rebook or re-flow from."""

    series_id: int
    number: int
    text: str


def series_gaps(*, series_ids: Collection[int], now: datetime | None = None) -> dict[int, list[SeriesGap]]:
    """Each given series that is off its protocol and what staff can still do about it: a session
    cancelled or missed and not made good, or two consecutive sessions closer than the protocol's
    gap (while the later is still to come) or further apart (while the earlier's window is still
    open: once it has closed, no time can mend it). A cancelled series is not off protocol: staff
    ended it. One query for all of them."""
    now = now or timezone.now()
    rows = (
        Session.objects.filter(series_id__in=series_ids)
        .exclude(series__status=Series.Status.CANCELLED)
        .order_by("series_id", "number", "starts_at")
        .values_list(
            "series_id", "number", "status", "starts_at", "series__protocol__min_gap_days",
            "series__protocol__max_gap_days", "clinic__time_zone",
        )
    )  # fmt: skip
    by_series: dict[int, list[tuple]] = {}
    for row in rows:
        by_series.setdefault(row[0], []).append(row)
    return {pk: found for pk, series_rows in by_series.items() if (found := _gaps_of(pk, series_rows, now))}


def _gaps_of(series_id: int, rows: list[tuple], now: datetime) -> list[SeriesGap]:
    low, high, zone = rows[0][4], rows[0][5], ZoneInfo(rows[0][6])
    today = local_date(now, zone)
    held: dict[int, datetime] = {}
    missed: dict[int, str] = {}
    for _, number, status, starts_at, *_ in rows:
        if status in Session.HOLDING:
            held[number] = starts_at
        else:
            missed.setdefault(number, Session.Status(status).label.lower())
    gaps = [
        SeriesGap(series_id, number, f"session {number} {'missed' if how == 'no-show' else how}: rebook it")
        for number, how in sorted(missed.items())
        if number not in held
    ]
    numbers = sorted(held)
    for before, after in zip(numbers, numbers[1:], strict=False):
        if after != before + 1:
            continue  # the missing session between them is the problem to show
        first, then = local_date(held[before], zone), local_date(held[after], zone)
        days = (then - first).days
        too_close = days < low and held[after] > now
        too_far = days > high and first + timedelta(days=high) >= today
        if too_close or too_far:
            gaps.append(
                SeriesGap(
                    series_id,
                    after,
                    f"{days} days between sessions {before} and {after}; the protocol allows {low}–{high}",
                )  # fmt: skip
            )
    return sorted(gaps, key=lambda gap: gap.number)
