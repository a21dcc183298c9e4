"""The waitlist: patients waiting for chair time, and which of them a freed time fits.

An entry asks for a new series of a protocol (a booster is a protocol of one session) or for an
earlier time for a session already booked, between two dates, on some weekdays and between some
hours. When chair time frees up (a cancel, a move, a no-show), `waitlist_candidates` ranks the
entries still waiting and keeps those for whom a booking there keeps every rule, checked by the
same code that books: `series_plan` for a new series (all its sessions placed from that first
start), `session_move_check` for an earlier time. `waitlist_fill` books one of them.

Ranking (settings.WAITLIST_RANKING, in order): "needed_by", the nearest deadline first (entries
without one after those with one); "waited", the longest waiting first.
"""

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.dispatch import receiver
from django.utils import timezone

from . import signals
from .calendar import BOOKING_HORIZON, BookingConflict
from .clock import local_date
from .locking import lock_clinic_and_patient
from .models import AuditEvent, Chair, Clinic, Offer, Opening, Patient, Protocol, Series, Session, WaitlistEntry
from .selectors import self_service_notice
from .services import audit_record, series_book, series_plan, session_move_check, session_reschedule

# How many waiting entries a freed time is checked against, best-ranked first: each check plans
# a series (a few milliseconds), and staff wait for the list.
CANDIDATE_TRIES = 40
RANKINGS = {
    "needed_by": (F("needed_by").asc(nulls_last=True),),
    "waited": (F("created_at").asc(), F("id").asc()),
}


@dataclass(frozen=True)
class Candidate:
    entry: WaitlistEntry
    # What a booking there would be: every session of a new series, or the session's new start.
    starts: list[datetime]


def waitlist_join(
    *,
    patient: Patient,
    protocol: Protocol | None = None,
    session: Session | None = None,
    earliest: date,
    latest: date,
    weekdays: Collection[int] | None = None,
    not_before: time | None = None,
    not_after: time | None = None,
    needed_by: date | None = None,
    note: str = "",
    actor=None,
    via: str = Session.Channel.STAFF,
    now: datetime | None = None,
) -> WaitlistEntry:
    """Put the patient on the clinic's waitlist: for a new series of `protocol`, or for an earlier
    time for `session` (theirs, still to come, and later than `latest`)."""
    now = now or timezone.now()
    clinic = patient.clinic
    today = local_date(now, clinic.zone)
    if session is not None:
        protocol = _earlier_wish_checked(patient, session, latest)
    if protocol is None:
        raise ValidationError({"protocol": "Choose the protocol the patient waits for."})
    if protocol.clinic_id != clinic.pk:
        raise ValidationError({"protocol": "That protocol belongs to another clinic."})
    if not protocol.is_active:
        raise ValidationError({"protocol": "This protocol is no longer offered."})
    _dates_checked(earliest, latest, today)
    if not_before is not None and not_after is not None and not_before > not_after:
        raise ValidationError({"not_after": "The latest start is before the earliest."})
    entry = WaitlistEntry(
        clinic=clinic, patient=patient, protocol=protocol, session=session, earliest=max(earliest, today),
        latest=latest, weekday_mask=Series.weekday_mask_of(weekdays), not_before=not_before, not_after=not_after,
        needed_by=needed_by, note=" ".join(note.split()), created_by=actor, via=via,
    )  # fmt: skip
    entry.full_clean(exclude=["clinic", "patient", "protocol", "session", "created_by"])
    try:
        with transaction.atomic():
            entry.save(force_insert=True)
            audit_record(
                patient=patient.pk, clinic=clinic.pk, session=session, action="waitlisted", via=via, actor=actor,
                at=now, detail=f"{entry.wish}, {earliest:%d %b}–{latest:%d %b}",
            )  # fmt: skip
    except IntegrityError as error:
        field = "session" if session is not None else "protocol"
        raise ValidationError({field: f"{patient} is already waiting for {entry.wish}."}) from error
    return entry


def _earlier_wish_checked(patient: Patient, session: Session, latest: date) -> Protocol:
    if session.patient_id != patient.pk:
        raise ValidationError({"session": "That session is another patient's."})
    if not session.is_upcoming:
        raise ValidationError({"session": "Only a session still to come can move earlier."})
    if latest >= local_date(session.starts_at, session.clinic.zone):
        raise ValidationError({"latest": "An earlier time ends before the session's own day."})
    return session.series.protocol


def _dates_checked(earliest: date, latest: date, today: date) -> None:
    if latest < today:
        raise ValidationError({"latest": "This day has passed."})
    if earliest > latest:
        raise ValidationError({"latest": "The last day is before the first."})
    if latest > today + BOOKING_HORIZON:
        raise ValidationError({"latest": f"Wait at most {BOOKING_HORIZON.days} days ahead."})


def waitlist_remove(
    *, entry: WaitlistEntry, actor=None, via: str = Session.Channel.STAFF, now: datetime | None = None
) -> bool:
    """Take the entry off the list; False when it was no longer waiting."""
    now = now or timezone.now()
    with transaction.atomic():
        taken = WaitlistEntry.objects.filter(pk=entry.pk, status=WaitlistEntry.Status.WAITING).update(
            status=WaitlistEntry.Status.REMOVED, closed_at=now
        )
        if taken:
            audit_record(patient=entry.patient_id, clinic=entry.clinic_id, action="left the waitlist", via=via,
                         actor=actor, at=now, detail=entry.wish)  # fmt: skip
    return bool(taken)


def waitlist_waiting(*, clinic: Clinic) -> QuerySet[WaitlistEntry]:
    """The entries still waiting, best-ranked first."""
    order = [term for name in settings.WAITLIST_RANKING for term in RANKINGS[name]]
    return (
        WaitlistEntry.objects.filter(clinic=clinic, status=WaitlistEntry.Status.WAITING)
        .select_related("patient__clinic", "protocol__clinic", "session__series__protocol", "session__clinic")
        .order_by(*order)
    )


def waitlist_candidates(
    *,
    clinic: Clinic,
    starts_at: datetime,
    chair: Chair | None = None,
    limit: int = 5,
    self_service: bool = False,
    opening: Opening | None = None,
    now: datetime | None = None,
) -> list[Candidate]:
    """The waiting entries, best-ranked first, for whom a booking from `starts_at` (on `chair`,
    else any free one) keeps every rule; with `self_service`, also the minimum notice a patient
    acting alone must keep (rule 13), as an offer they accept by link would. With `opening`,
    only entries not offered it yet and with no other offer out."""
    now = now or timezone.now()
    local = starts_at.astimezone(clinic.zone)
    day, clock = local.date(), local.time()
    # The dates, days and hours each patient can come, asked of the database: the tries below
    # are spent only on entries the time suits.
    entries = (
        waitlist_waiting(clinic=clinic)
        .alias(on_day=F("weekday_mask").bitand(1 << day.weekday()))
        .filter(
            Q(weekday_mask=0) | ~Q(on_day=0),
            Q(not_before__isnull=True) | Q(not_before__lte=clock),
            Q(not_after__isnull=True) | Q(not_after__gte=clock),
            earliest__lte=day, latest__gte=day,
        )
    )  # fmt: skip
    if opening is not None:
        offers = Offer.objects.filter(entry=OuterRef("pk"))
        entries = entries.exclude(Exists(offers.filter(opening=opening))).exclude(
            Exists(offers.filter(status=Offer.Status.OFFERED))
        )
    found: list[Candidate] = []
    for entry in entries[:CANDIDATE_TRIES]:
        starts = _fits(entry, starts_at, chair, self_service=self_service, now=now)
        if starts:
            found.append(Candidate(entry, starts))
            if len(found) == limit:
                break
    return found


def _fits(
    entry: WaitlistEntry, starts_at: datetime, chair: Chair | None, *, self_service: bool, now: datetime
) -> list[datetime]:
    """The starts a booking for `entry` from `starts_at` would have; empty where a rule refuses it."""
    protocol = entry.protocol  # an earlier time's entry holds its session's protocol
    if self_service and starts_at < now + self_service_notice(clinic=entry.clinic, protocol=protocol):
        return []
    if entry.session is not None:
        session = entry.session
        if not session.is_upcoming or starts_at >= session.starts_at:
            return []
        slot = session_move_check(session=session, starts_at=starts_at, chair=chair, now=now)
        return [] if isinstance(slot, BookingConflict) else [slot.starts_at]
    plan = series_plan(patient=entry.patient, protocol=protocol, first_start=starts_at, chair=chair, now=now)
    if len(plan) < protocol.session_count or any(p.conflict is not None or p.slot is None for p in plan):
        return []
    return [p.slot.starts_at for p in plan if p.slot is not None]


def waitlist_fill(
    *,
    entry: WaitlistEntry,
    starts_at: datetime,
    chair: Chair | None = None,
    actor=None,
    via: str = Session.Channel.STAFF,
    opening: Opening | None = None,
    now: datetime | None = None,
) -> Series:
    """Book the waiting patient at `starts_at`: their new series, placed from there, or their
    session moved there. All or nothing, with the same rules and locks as any booking; the entry
    is then closed as booked, and `opening` (the freed time it fills) as filled, its offers still
    out ended as taken. Refused (409 `waitlist_closed`) where it no longer waits."""
    now = now or timezone.now()
    with transaction.atomic():
        lock_clinic_and_patient(clinic_id=entry.clinic_id, patient_id=entry.patient_id)
        entry = (
            WaitlistEntry.objects.select_for_update(no_key=True, of=("self",))
            .select_related("session")
            .get(pk=entry.pk)
        )
        if entry.status != WaitlistEntry.Status.WAITING:
            raise BookingConflict("waitlist_closed", f"The waitlist entry is {entry.get_status_display().lower()}.")
        if entry.session is not None:
            session = session_reschedule(
                session=entry.session, starts_at=starts_at, chair=chair, reason="earlier time from the waitlist",
                via=via, actor=actor, now=now,
            )  # fmt: skip
            series = session.series
        else:
            series = series_book(
                patient=entry.patient, protocol=entry.protocol, first_start=starts_at, chair=chair, actor=actor,
                via=via, now=now,
            )  # fmt: skip
        entry.status, entry.booked_series, entry.closed_at = WaitlistEntry.Status.BOOKED, series, now
        entry.save(update_fields=["status", "booked_series", "closed_at"])
        audit_record(patient=entry.patient_id, series=series, action="filled from waitlist", via=via, actor=actor,
                     at=now, detail=entry.wish)  # fmt: skip
        if opening is not None:
            _opening_fill(opening, series, now)
    return series


def _opening_fill(opening: Opening, series: Series, now: datetime) -> None:
    Opening.objects.filter(pk=opening.pk, status=Opening.Status.OPEN).update(
        status=Opening.Status.FILLED, filled_series=series, closed_at=now
    )
    Offer.objects.filter(opening_id=opening.pk, status=Offer.Status.OFFERED).update(
        status=Offer.Status.TAKEN, closed_at=now
    )
    _opening_rest(opening, series, now)


# Chair time left over once a shorter visit fills a longer one's, worth offering again.
REST_WORTH_OFFERING = timedelta(hours=1)


def _opening_rest(opening: Opening, series: Series, now: datetime) -> None:
    """A 2-hour booster filling a 5-hour visit's chair leaves 3 hours free: what is left after
    it, on the same chair, is an opening of its own, offered at the ticks to come."""
    freed = opening.freed_by
    if freed is None or opening.chair_id is None:
        return
    filled = next((s for s in series.sessions.all() if s.starts_at == opening.starts_at), None)
    if filled is None or filled.chair_id != opening.chair_id:
        return
    clinic = freed.clinic
    slot = timedelta(minutes=clinic.slot_minutes)
    local = filled.chair_free_at.astimezone(clinic.zone)
    since_midnight = timedelta(hours=local.hour, minutes=local.minute, seconds=local.second)
    rest_start = filled.chair_free_at + (-since_midnight % slot)  # the next start on the clinic's grid
    if freed.chair_free_at - rest_start >= REST_WORTH_OFFERING:
        opening_record(session=freed, starts_at=rest_start, chair_id=opening.chair_id,
                       reason="the rest of a freed time", now=now)  # fmt: skip


def opening_of(*, session: Session, now: datetime | None = None) -> Opening | None:
    """The open opening a cancelled session's time left, made now where it has none (a cancel
    from before openings were recorded); None once its time has come or it was filled."""
    now = now or timezone.now()
    if session.status != Session.Status.CANCELLED or session.starts_at <= now:
        return None
    found = Opening.objects.filter(freed_by=session, starts_at=session.starts_at).order_by("-pk").first()
    if found is None:
        found = opening_record(session=session, starts_at=session.starts_at, chair_id=session.chair_id,
                               reason="cancelled", now=now)  # fmt: skip
    return found if found is not None and found.status == Opening.Status.OPEN else None


def opening_record(
    *, session: Session, starts_at: datetime, chair_id: int | None, reason: str, now: datetime
) -> Opening | None:
    """Chair time `session` held from `starts_at` is free again, ahead of its start: the tick
    offers it to the waitlist. Called inside the cancel's or the move's transaction. None for a
    time already begun."""
    if starts_at <= now:
        return None
    return Opening.objects.create(
        clinic_id=session.clinic_id,
        starts_at=starts_at,
        chair_id=chair_id,
        freed_by=session,
        reason=reason,
        created_at=now,
    )


def openings_lapse(*, session: Session, reason: str, now: datetime) -> int:
    """The session holds its time again (a cancel taken back): the openings it left close, and
    their offers still out end as taken."""
    ids = list(
        Opening.objects.filter(freed_by=session, status=Opening.Status.OPEN, starts_at=session.starts_at).values_list(
            "pk", flat=True
        )
    )
    Offer.objects.filter(opening_id__in=ids, status=Offer.Status.OFFERED).update(
        status=Offer.Status.TAKEN, closed_at=now
    )
    return Opening.objects.filter(pk__in=ids).update(status=Opening.Status.LAPSED, reason=reason, closed_at=now)


@dataclass(frozen=True)
class OfferAnswer:
    # "accepted", or why not: "expired", "taken" (someone else, or the time is gone), "declined",
    # "closed" (the patient left the list, or booked otherwise)
    outcome: str
    series: Series | None = None


def offer_accept(*, offer: Offer, now: datetime | None = None) -> OfferAnswer:
    """The patient takes the offered time: the first accept of an opening books it (through
    waitlist_fill, every rule checked again); every later one, and one past its expiry, books
    nothing. Locks: clinic → patient (as every booking), then the opening and the offer, so two
    accepts of one opening queue on the clinic and the second finds it filled."""
    now = now or timezone.now()
    with transaction.atomic():
        lock_clinic_and_patient(clinic_id=offer.clinic_id, patient_id=offer.patient_id)
        opening = Opening.objects.select_for_update(no_key=True).get(pk=offer.opening_id)
        offer = Offer.objects.select_for_update(no_key=True, of=("self",)).select_related("entry").get(pk=offer.pk)
        if offer.status == Offer.Status.ACCEPTED:
            return OfferAnswer("accepted", opening.filled_series)
        if offer.status != Offer.Status.OFFERED:
            return OfferAnswer("taken" if offer.status == Offer.Status.UNREACHED else offer.status)
        if now >= offer.expires_at:
            # Tapped after its time, before the tick saw it end: the same audit line the tick writes.
            _offer_close(offer, Offer.Status.EXPIRED, now)
            audit_record(patient=offer.patient_id, clinic=offer.clinic_id, action="expired", via=AuditEvent.Via.SYSTEM,
                         at=now, detail=f"offer of {_clinic_moment(opening)}, unanswered")  # fmt: skip
            return OfferAnswer("expired")
        if offer.entry.status != WaitlistEntry.Status.WAITING:
            _offer_close(offer, Offer.Status.TAKEN, now)
            return OfferAnswer("closed")
        if opening.status != Opening.Status.OPEN:
            _offer_close(offer, Offer.Status.TAKEN, now)
            return OfferAnswer("taken")
        try:
            with transaction.atomic():
                series = waitlist_fill(
                    entry=offer.entry, starts_at=opening.starts_at, chair=opening.chair, via=Session.Channel.LINK,
                    opening=opening, now=now,
                )  # fmt: skip
        except (BookingConflict, ValidationError):
            # The time went another way meanwhile (staff booked it): nobody can have it now.
            _offer_close(offer, Offer.Status.TAKEN, now)
            return OfferAnswer("taken")
        # waitlist_fill ended the opening's other offers as taken; this one is the accepted one.
        _offer_close(offer, Offer.Status.ACCEPTED, now)
        audit_record(patient=offer.patient_id, series=series, action="accepted", via=Session.Channel.LINK, at=now,
                     detail=f"offer of {_clinic_moment(opening)}")  # fmt: skip
    return OfferAnswer("accepted", series)


def offer_decline(*, offer: Offer, leave: bool = False, now: datetime | None = None) -> OfferAnswer:
    """ "No thanks": the offer ends and the next patient is offered the time at the next tick;
    with `leave`, the patient also leaves the waitlist."""
    now = now or timezone.now()
    with transaction.atomic():
        offer = Offer.objects.select_for_update(no_key=True, of=("self",)).select_related("entry").get(pk=offer.pk)
        answer = OfferAnswer(offer.status)
        if offer.status == Offer.Status.OFFERED:
            _offer_close(offer, Offer.Status.DECLINED, now)
            audit_record(patient=offer.patient_id, clinic=offer.clinic_id, action="offer declined",
                         via=Session.Channel.LINK, at=now, detail=offer.entry.wish)  # fmt: skip
            answer = OfferAnswer("declined")
    if leave:
        waitlist_remove(entry=offer.entry, via=Session.Channel.LINK, now=now)
    return answer


def _offer_close(offer: Offer, status: str, now: datetime) -> None:
    offer.status, offer.closed_at = status, now
    offer.save(update_fields=["status", "closed_at"])


def _clinic_moment(opening: Opening) -> str:
    return f"{opening.starts_at.astimezone(opening.clinic.zone):%a %d %b %H:%M}"


@receiver(signals.session_status_changed, dispatch_uid="waitlist-openings-status")
def _on_status_changed(sender, session: Session, now: datetime, previous_status: str = "", **kwargs) -> None:
    if session.status == Session.Status.CANCELLED and previous_status in Session.UPCOMING:
        opening_record(session=session, starts_at=session.starts_at, chair_id=session.chair_id,
                       reason="cancelled", now=now)  # fmt: skip
    elif previous_status == Session.Status.CANCELLED:
        openings_lapse(session=session, reason="cancel taken back", now=now)


@receiver(signals.session_moved, dispatch_uid="waitlist-openings-moved")
def _on_moved(sender, session: Session, previous_starts_at: datetime, now: datetime, **kwargs) -> None:
    # The old chair may be the new one too (a move within the day): any chair free then will do.
    opening_record(session=session, starts_at=previous_starts_at, chair_id=None, reason="moved", now=now)
