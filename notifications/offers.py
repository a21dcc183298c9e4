"""Waitlist offers and booster recall texts, made by the beat tick before it claims what is due.

Offers. Chair time freed ahead of its start is an `Opening` (sessions/waitlist.py records one
on a cancel or a move). Each tick, for each open opening with no offer out, the best-ranked
waiting entries for whom a booking there keeps every rule, rule 13's notice included
(`waitlist_candidates(self_service=True)`), are offered it: WAITLIST_OFFER_BATCH at a time, each
an `Offer` with a text (and an email where the patient takes email) planned due now, so the same
tick sends it. A patient who cannot be reached now (texts off or refused, quiet hours in their
zone, a text cap reached, and no email) is passed over for this round. An offer ends after
WAITLIST_OFFER_MINUTES, and always before the visit's minimum notice; when it ends unanswered,
declined or unreached, the next tick offers the time to the next candidates. The first accept
books (sessions/waitlist.offer_accept); an opening nobody fits is looked at again every
WAITLIST_RECHECK_MINUTES until its time comes.

Recalls. A booster recall (sessions/recalls.py) is texted, and emailed where the patient takes
email, once: RECALL_TEXT_LEAD_DAYS before it falls due, or on the day a snooze ends. The link
lists booster times from the due day on. An opted-out patient gets no text; staff still see them.
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import DurationField, Exists, ExpressionWrapper, F, OuterRef, Q, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone

from scheduler.bulk import rows_insert
from sessions.calendar import BookingConflict
from sessions.clock import local_date
from sessions.locking import lock_patient
from sessions.models import AuditEvent, Offer, Opening, Patient, Recall, WaitlistEntry
from sessions.selectors import self_service_notice
from sessions.services import audit_record
from sessions.waitlist import waitlist_candidates

from .models import Channel, Message, Purpose
from .planning import channels_for, shift_out_of_quiet_hours, tick_kick
from .sending import sms_refusal

log = logging.getLogger(__name__)

SYSTEM, STAFF = AuditEvent.Via.SYSTEM, AuditEvent.Via.STAFF
# How many openings one tick looks at, the least recently looked at first: each look checks up
# to CANDIDATE_TRIES waiting patients against the rules, a few milliseconds each.
OPENINGS_PER_TICK = 50
# An offer shorter than this is not worth a patient's rush: the time is passed over.
SHORTEST_OFFER = timedelta(minutes=10)
# Candidates looked at per offer made: some cannot be reached this round.
CANDIDATES_PER_OFFER = 3
# Message statuses that mean an offer's text or email reached, or may still reach, the patient.
_MAY_REACH = (*Message.PENDING, *Message.WENT_OUT)


def offers_tick(*, now: datetime | None = None) -> int:
    """Close the offers that ended, then offer the open openings to their next candidates.
    Returns how many offers were made."""
    now = now or timezone.now()
    offers_expire(now=now)
    offers_unreached(now=now)
    openings_lapse_past_notice(now=now)
    made = 0
    for opening_id in openings_due_a_look(now=now)[:OPENINGS_PER_TICK]:
        try:
            made += len(opening_offer(opening_id=opening_id, now=now))
        except Exception:
            # One opening's trouble must not hold up the others, or the tick's sending after it.
            log.exception("offer opening=%d failed; tried again next tick", opening_id)
    return made


def openings_lapse_past_notice(*, now: datetime) -> int:
    """Openings no patient may take alone any more end: their start is within the clinic's
    shortest minimum notice (its own, else the cancellation notice, which every protocol's notice
    is at least) and an offer's shortest life. Staff can still fill the time by hand. One with an
    offer out waits for it: an offer ends before the notice, and may still be taken until then."""
    notice = ExpressionWrapper(
        Coalesce("clinic__self_service_notice_hours", "clinic__cancellation_notice_hours") * timedelta(hours=1),
        output_field=DurationField(),
    )
    return (
        Opening.objects.filter(status=Opening.Status.OPEN)
        .alias(last_offer_at=F("starts_at") - notice - SHORTEST_OFFER)
        .filter(last_offer_at__lte=now)
        .exclude(Exists(Offer.objects.filter(opening=OuterRef("pk"), status=Offer.Status.OFFERED)))
        .update(status=Opening.Status.LAPSED, reason="within the minimum notice", closed_at=now)
    )


def openings_due_a_look(*, now: datetime) -> list[int]:
    """The openings due a look (`_openings_due`), the least recently looked at first (never
    looked at, or handed on, before a mere recheck)."""
    ordered = _openings_due(now).order_by(F("checked_at").asc(nulls_first=True), "starts_at", "pk")
    return list(ordered.values_list("pk", flat=True))


def _openings_due(now: datetime) -> QuerySet[Opening]:
    """Open openings with no offer out, and never looked at, or an offer of it ended since the last
    look (hand on at once), or nobody fitted at the last look and WAITLIST_RECHECK_MINUTES have
    passed: openings waiting on an offer, or looked at a moment ago, take no tick's turn. Offers
    that end never write to their opening: the opening's lock comes before its offers'."""
    offers = Offer.objects.filter(opening=OuterRef("pk"))
    recheck = now - timedelta(minutes=settings.WAITLIST_RECHECK_MINUTES)
    return (
        Opening.objects.filter(status=Opening.Status.OPEN)
        .exclude(Exists(offers.filter(status=Offer.Status.OFFERED)))
        .filter(
            Q(checked_at=None)
            | Q(checked_at__lte=recheck)
            | Exists(offers.filter(closed_at__gte=OuterRef("checked_at")))
        )
    )


def offers_expire(*, now: datetime) -> int:
    """Offers past their time end expired; their openings go to the next candidates."""
    with transaction.atomic():
        ended = list(
            Offer.objects.select_for_update(skip_locked=True, no_key=True)
            .filter(status=Offer.Status.OFFERED, expires_at__lte=now)
            .select_related("entry__protocol", "clinic")
        )
        for offer in ended:
            offer.status, offer.closed_at = Offer.Status.EXPIRED, now
            audit_record(patient=offer.patient_id, clinic=offer.clinic_id, action="expired", via=SYSTEM, at=now,
                         detail=f"offer of {_moment(offer)}, unanswered")  # fmt: skip
        Offer.objects.bulk_update(ended, ["status", "closed_at"])
    return len(ended)


def offers_unreached(*, now: datetime) -> int:
    """Offers whose every text and email ended without reaching the patient (refused at the
    send: an opt-out, a cap) end unreached, so the time passes on without waiting out the offer."""
    reaching = Message.objects.filter(offer=OuterRef("pk"), status__in=_MAY_REACH)
    with transaction.atomic():
        ids = list(
            Offer.objects.select_for_update(skip_locked=True, no_key=True)
            .filter(status=Offer.Status.OFFERED)
            .exclude(Exists(reaching))
            .values_list("pk", flat=True)
        )
        return Offer.objects.filter(pk__in=ids).update(status=Offer.Status.UNREACHED, closed_at=now)


def opening_offer(*, opening_id: int, now: datetime) -> list[Offer]:
    """Offer one opening to its next candidates, if it is still due a look once locked (another
    tick, or an answer, may have got there first). The tick has lapsed those whose time came."""
    with transaction.atomic():
        opening = (
            _openings_due(now)
            .select_for_update(skip_locked=True, no_key=True, of=("self",))
            .select_related("clinic", "chair")
            .filter(pk=opening_id)
            .first()
        )
        if opening is None:
            return []
        found = waitlist_candidates(
            clinic=opening.clinic, starts_at=opening.starts_at, chair=opening.chair, self_service=True,
            opening=opening, limit=settings.WAITLIST_OFFER_BATCH * CANDIDATES_PER_OFFER, now=now,
        )  # fmt: skip
        made = []
        for candidate in found:
            if len(made) == settings.WAITLIST_OFFER_BATCH:
                break
            offer = _offer_make(opening, candidate.entry, now)
            if offer is not None:
                made.append(offer)
        opening.checked_at = now
        opening.save(update_fields=["checked_at"])
    return made


def _offer_make(opening: Opening, entry: WaitlistEntry, now: datetime, actor=None) -> Offer | None:
    """One offer and its messages, or None where the patient cannot be reached now or the
    offer would be too short to answer."""
    expires_at = min(
        now + timedelta(minutes=settings.WAITLIST_OFFER_MINUTES),
        opening.starts_at - self_service_notice(clinic=opening.clinic, protocol=entry.protocol),
    )
    if expires_at - now < SHORTEST_OFFER:
        return None
    # Read, not locked: the opening's lock is held, and a patient's comes before it. The send
    # checks the caps again under the patient's lock.
    patient = Patient.objects.get(pk=entry.patient_id)
    channels = _reachable(patient, opening, now)
    if not channels:
        return None
    offer = Offer.objects.create(
        clinic=opening.clinic, opening=opening, entry=entry, patient=patient, expires_at=expires_at, created_at=now,
        created_by=actor,
    )  # fmt: skip
    offer.opening = opening
    rows_insert([_row(patient, Purpose.OFFER, channel, now, expires_at, offer=offer) for channel in channels])
    until = expires_at.astimezone(opening.clinic.zone)
    audit_record(
        patient=patient.pk, clinic=opening.clinic_id, action="offered", via=SYSTEM if actor is None else STAFF,
        actor=actor, at=now, detail=f"{_moment(offer)} for {entry.wish}, until {until:%H:%M}",
    )  # fmt: skip
    return offer


def _reachable(patient: Patient, opening: Opening, now: datetime) -> list[str]:
    """The channels an offer can reach the patient by now: an offer waits for nobody's morning."""
    channels = channels_for(patient)
    if Channel.SMS in channels and sms_refusal(patient=patient, clinic=opening.clinic, now=now) is not None:
        channels.remove(Channel.SMS)
    return channels


def offer_by_hand(*, opening: Opening, entry: WaitlistEntry, actor, now: datetime | None = None) -> Offer:
    """Staff offer the time to one waiting patient of their choosing: the same offer, text and
    expiry as the tick's. Refused (409 `offer_not_made`) saying why where it cannot be made."""
    now = now or timezone.now()
    with transaction.atomic():
        opening = (
            Opening.objects.select_for_update(no_key=True, of=("self",))
            .select_related("clinic", "chair")
            .get(pk=opening.pk)
        )
        refusal = _hand_refusal(opening, entry, now)
        if refusal:
            raise BookingConflict("offer_not_made", refusal)
        offer = _offer_make(opening, entry, now, actor=actor)
        if offer is None:
            unreachable = "texts off, opted out, quiet hours or a cap, and no email"
            raise BookingConflict("offer_not_made", f"{entry.patient} cannot be reached now ({unreachable}).")
        tick_kick()
    return offer


def _hand_refusal(opening: Opening, entry: WaitlistEntry, now: datetime) -> str:
    if opening.status != Opening.Status.OPEN or opening.starts_at <= now:
        return "This time is no longer open."
    if entry.status != WaitlistEntry.Status.WAITING:
        return f"{entry.patient} is no longer waiting."
    if entry.clinic_id != opening.clinic_id:
        return "That waitlist entry is another clinic's."
    if Offer.objects.filter(opening=opening, entry=entry).exists():
        return f"{entry.patient} was offered this time already."
    notice = self_service_notice(clinic=opening.clinic, protocol=entry.protocol)
    if opening.starts_at - notice - now < SHORTEST_OFFER:
        return "An offer would end in under 10 minutes, before the minimum notice: call the patient instead."
    return ""


def recalls_text(*, now: datetime | None = None) -> int:
    """Text (and email) each open recall once when it comes near: RECALL_TEXT_LEAD_DAYS before
    its due day, or on the day a snooze ends. Returns how many recalls were texted."""
    now = now or timezone.now()
    lead = timedelta(days=settings.RECALL_TEXT_LEAD_DAYS)
    recalls = recalls_due_a_text(now=now)
    texted = 0
    for recall in recalls.order_by("due_on", "pk")[: settings.REMINDER_TICK_BATCH]:
        today = local_date(now, recall.clinic.zone)
        day = recall.next_on
        if (recall.status == Recall.Status.SNOOZED and day > today) or day - lead > today:
            continue
        with transaction.atomic():
            patient = lock_patient(pk=recall.patient_id)
            locked = Recall.objects.select_for_update(no_key=True).filter(pk=recall.pk, status__in=Recall.OPEN).first()
            if patient is None or locked is None or locked.texted_for == day:
                continue
            rows = []
            for channel in channels_for(patient):
                due = now
                if channel == Channel.SMS:
                    due = shift_out_of_quiet_hours(now, clinic=recall.clinic, patient=patient, forward=True)
                rows.append(
                    _row(patient, Purpose.RECALL, channel, due, due + timedelta(days=7), recall=locked, key=f"{day}")
                )
            rows_insert(rows)
            locked.texted_for = day
            locked.save(update_fields=["texted_for"])
            audit_record(patient=patient.pk, series=locked.series, action="recall sent", via=SYSTEM, at=now,
                         detail=", ".join(sorted(row.channel for row in rows)) or "no channel")  # fmt: skip
            texted += 1
    return texted


def recalls_due_a_text(*, now: datetime) -> QuerySet[Recall]:
    """Open recalls near their day (widely, by UTC's date: `recalls_text` checks each clinic's)
    and not yet texted for it: those already texted are not read again on every tick."""
    near = now.date() + timedelta(days=settings.RECALL_TEXT_LEAD_DAYS + 1)
    untexted_due = Q(texted_for=None) | ~Q(texted_for=F("due_on"))
    untexted_snooze = Q(texted_for=None) | ~Q(texted_for=F("snoozed_until"))
    return Recall.objects.filter(
        Q(untexted_due, status=Recall.Status.DUE, due_on__lte=near)
        | Q(untexted_snooze, status=Recall.Status.SNOOZED, snoozed_until__lte=near)
    ).select_related("clinic", "protocol")


def _row(
    patient: Patient, purpose: str, channel: str, due: datetime, expires: datetime, *, offer: Offer | None = None,
    recall: Recall | None = None, key: str = "",
) -> Message:  # fmt: skip
    return Message(
        offer=offer, recall=recall, clinic_id=(offer or recall).clinic_id, patient=patient, purpose=purpose,
        key=key or purpose, channel=channel,
        session_version=0, due_at=due, expires_at=expires,
        recipient=patient.phone if channel == Channel.SMS else patient.email,
    )  # fmt: skip


def _moment(offer: Offer) -> str:
    return f"{offer.opening.starts_at.astimezone(offer.clinic.zone):%a %d %b %H:%M}"
