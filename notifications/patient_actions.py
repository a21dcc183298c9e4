"""What a patient may do through their link: see their session, confirm it, move it, cancel it.

The token alone decides the session. Every write goes through the booking services with
via=LINK, and they record the audit trail. Each action is safe to repeat: a second confirm,
the same move again or a second cancel changes nothing and records nothing.
"""

from datetime import date, datetime, timedelta

from sessions.calendar import BookingConflict, Slot
from sessions.clock import local_date
from sessions.models import Chair, Session
from sessions.selectors import session_slots
from sessions.services import session_cancel, session_confirm, session_reschedule

from .links import link_session

SLOT_DAYS = 14
# A phone screen holds about this many choices a day before the list stops being a choice.
SLOTS_PER_DAY = 8
MOVE_REASON = "Moved by the patient on the link"
CANCEL_REASON = "Cancelled by the patient on the link"

# Conflicts that mean the time itself is gone (someone took it meanwhile), as opposed to the
# session no longer being movable at all.
_TAKEN = {"chair_overlap", "patient_overlap", "staffing_capacity", "stagger_cap", "chair_inactive"}


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
    """The slots the session may move to, by day in the clinic's calendar, each day capped to the
    ones nearest the session's present time of day: patients mostly keep their usual hour."""
    zone = session.clinic.zone
    usual = session.starts_at.astimezone(zone)

    def distance(slot: Slot) -> int:
        local = slot.starts_at.astimezone(zone)
        return abs((local.hour - usual.hour) * 60 + local.minute - usual.minute)

    def nearest(slots: list[Slot]) -> list[Slot]:
        kept = sorted(slots, key=lambda s: (distance(s), s.starts_at))[:SLOTS_PER_DAY]
        return sorted(kept, key=lambda s: s.starts_at)

    days: dict[date, list[Slot]] = {}
    for slot in session_slots(session=session, days=SLOT_DAYS, now=now):
        days.setdefault(local_date(slot.starts_at, zone), []).append(slot)
    return [(day, nearest(slots)) for day, slots in days.items()]


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
    try:
        wanted = datetime.fromisoformat(starts_at)
    except ValueError:
        raise LinkRefused("move_pick") from None
    if wanted.tzinfo is None:
        raise LinkRefused("move_pick")
    if wanted == session.starts_at and session.is_upcoming:
        return session  # the same move posted again
    offered = {slot.starts_at: slot for slot in session_slots(session=session, days=SLOT_DAYS, now=now)}
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
        raise LinkRefused("move_taken" if exc.code in _TAKEN else "not_possible") from exc


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
