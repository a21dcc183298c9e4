"""What a patient can do on the page of a link that opens no session yet: a waitlist offer (take
the time, say no thanks, leave the list) or a booster recall (book a booster time from the due
day on, or "not now"). Each goes through the same services as staff, with the link's channel."""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.core.exceptions import ValidationError
from django.db import transaction

from sessions.calendar import BookingConflict, ClinicCalendar, Slot
from sessions.clock import dates_between, local_date, wall_clock
from sessions.models import Chair, Offer, Opening, Recall, Series, Session, WaitlistEntry
from sessions.recalls import recall_snooze
from sessions.selectors import self_service_notice
from sessions.services import series_book

from .patient_actions import SLOT_DAYS, SLOTS_PER_DAY, LinkRefused, _wanted

# "Not now" on a recall's link: asked again this many days later.
RECALL_NOT_NOW_DAYS = 14


@dataclass(frozen=True)
class OfferState:
    # "open" (it can be taken now), "accepted", "declined", "gone" (expired or taken by another),
    # "left" (the patient is off the list)
    state: str
    waiting: bool  # the patient is still on the waitlist for it


def offer_state(*, offer: Offer, now: datetime) -> OfferState:
    waiting = offer.entry.status == WaitlistEntry.Status.WAITING
    if offer.status == Offer.Status.ACCEPTED:
        return OfferState("accepted", False)
    if offer.entry.status == WaitlistEntry.Status.REMOVED:
        return OfferState("left", False)
    if offer.status == Offer.Status.OFFERED and now < offer.expires_at and offer.opening.status == Opening.Status.OPEN:
        return OfferState("open", waiting)
    if offer.status == Offer.Status.DECLINED:
        return OfferState("declined", waiting)
    return OfferState("gone", waiting)


def link_recall_open(*, recall: Recall) -> bool:
    return recall.status in Recall.OPEN


def link_recall_earliest(*, recall: Recall, now: datetime) -> datetime:
    """The soonest a booster may start from the link: its due day, and rule 13's notice."""
    clinic = recall.clinic
    due = wall_clock(recall.due_on, time(0), clinic.zone)
    return max(due, now + self_service_notice(clinic=clinic, protocol=recall.protocol))


def link_recall_slots_by_day(*, recall: Recall, now: datetime) -> list[tuple[date, list[Slot]]]:
    """Booster start times the patient may pick alone, by day, for two weeks from the earliest;
    never before the due day. Each is checked again when booked."""
    if not link_recall_open(recall=recall):
        return []
    clinic, protocol = recall.clinic, recall.protocol
    earliest = link_recall_earliest(recall=recall, now=now)
    first = local_date(earliest, clinic.zone)
    days = dates_between(first, first + timedelta(days=SLOT_DAYS - 1))
    calendar = ClinicCalendar(
        clinic, patient_id=recall.patient_id, now=now, min_gap_days=protocol.min_gap_days, protocol_id=protocol.pk
    )
    calendar.load(days)
    length = timedelta(minutes=protocol.chair_minutes)
    found = []
    for day in days:
        slots = calendar.free_slots(day, length, None, since=earliest)
        if slots:
            found.append((day, _spread(slots)))
    return found


def _spread(slots: list[Slot]) -> list[Slot]:
    """At most SLOTS_PER_DAY times of a day, spread across it."""
    if len(slots) <= SLOTS_PER_DAY:
        return slots
    step = len(slots) / SLOTS_PER_DAY
    return [slots[int(n * step)] for n in range(SLOTS_PER_DAY)]


def link_recall_book(*, recall: Recall, starts_at: str, now: datetime) -> Series:
    """Book the booster at a time the page offered: every rule checked again by series_book,
    the recall answered by it."""
    wanted = _wanted(starts_at)
    if not link_recall_open(recall=recall):
        raise LinkRefused("not_possible")
    if wanted < link_recall_earliest(recall=recall, now=now):
        raise LinkRefused("move_too_soon")
    offered = {slot.starts_at: slot for _, slots in link_recall_slots_by_day(recall=recall, now=now) for slot in slots}
    slot = offered.get(wanted)
    if slot is None:
        raise LinkRefused("move_taken")
    try:
        with transaction.atomic():
            return series_book(
                patient=recall.patient, protocol=recall.protocol, first_start=slot.starts_at,
                chair=Chair.objects.get(pk=slot.chair_id), via=Session.Channel.LINK, now=now,
            )  # fmt: skip
    except (BookingConflict, ValidationError) as exc:
        raise LinkRefused("move_taken") from exc


def link_recall_not_now(*, recall: Recall, now: datetime) -> Recall:
    today = local_date(now, recall.clinic.zone)
    try:
        return recall_snooze(
            recall=recall, until=today + timedelta(days=RECALL_NOT_NOW_DAYS), via=Session.Channel.LINK, now=now
        )
    except ValidationError as exc:
        raise LinkRefused("not_possible") from exc
