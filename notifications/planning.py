"""Planning: which message rows a booking, a move or a cancellation creates or withdraws.

Runs inside the booking transaction (from the signals of `sessions.signals`), so a session and
its messages commit or roll back together: a stale reminder for an old time cannot exist.
"""

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from sessions.models import Clinic, Patient, Session

from .models import Channel, Message, Purpose, ReminderRule

# The built-in rules every new clinic starts with (channel, minutes before the start).
DEFAULT_RULES = [(Channel.EMAIL, 72 * 60), (Channel.SMS, 24 * 60), (Channel.SMS, 2 * 60)]
# A reminder shifted out of quiet hours goes this long before the window closes, so that a tick
# and a busy worker still get it out inside the window.
QUIET_MARGIN = timedelta(minutes=10)


def rules_create_defaults(*, clinic: Clinic) -> None:
    ReminderRule.objects.bulk_create(
        [ReminderRule(clinic=clinic, channel=channel, offset_minutes=offset) for channel, offset in DEFAULT_RULES],
        ignore_conflicts=True,
    )


def messages_plan_booking(*, sessions: Iterable[Session], now: datetime | None = None) -> list[Message]:
    """A booking confirmation for the series' first booked session, and reminders for each."""
    sessions = sorted(sessions, key=lambda s: s.starts_at)
    if not sessions:
        return []
    now = now or timezone.now()
    first = sessions[0]
    planned = _notice(first, Purpose.BOOKED, now)
    # One series, one clinic and protocol: the same rules for every session, read once.
    rules = rules_for(first)
    for session in sessions:
        planned += _reminders(session, now, rules=rules)
    return _save(planned)


def messages_plan_move(*, session: Session, now: datetime | None = None) -> list[Message]:
    """Withdraw what was pending for the old time; a notice now and reminders for the new time.

    A patient whose booking confirmation had not gone out yet gets that, for the new time,
    rather than news of a move from a time they never heard of.
    """
    now = now or timezone.now()
    unconfirmed = _booking_unsent(session)
    messages_withdraw(session=session, reason="session moved", now=now)
    notice = Purpose.BOOKED if unconfirmed else Purpose.MOVED
    return _save(_notice(session, notice, now) + _reminders(session, now))


def messages_plan_cancellation(*, session: Session, now: datetime | None = None) -> list[Message]:
    """Withdraw what was pending; tell the patient, unless they were never told of the session."""
    now = now or timezone.now()
    told = Message.objects.filter(session=session, status__in=Message.WENT_OUT).exists()
    messages_withdraw(session=session, reason="session cancelled", now=now)
    return _save(_notice(session, Purpose.CANCELLED, now)) if told else []


def messages_plan_series_cancellation(*, sessions: list[Session], now: datetime | None = None) -> list[Message]:
    """A whole series cancelled: one notice, on its first cancelled visit, not one per visit
    (its sessions' pending messages were withdrawn as each was cancelled)."""
    if not sessions:
        return []
    now = now or timezone.now()
    first = min(sessions, key=lambda s: s.starts_at)
    told = Message.objects.filter(session__series_id=first.series_id, status__in=Message.WENT_OUT).exists()
    return _save(_notice(first, Purpose.CANCEL_ALL, now)) if told else []


def messages_withdraw(*, session: Session, reason: str, now: datetime | None = None) -> int:
    """Cancel the session's messages that have not gone out. A claimed one whose task is already
    queued finds itself cancelled when the worker looks, and sends nothing."""
    return Message.objects.filter(session=session, status__in=Message.PENDING).update(
        status=Message.Status.CANCELLED, reason=reason, updated_at=now or timezone.now()
    )


def _booking_unsent(session: Session) -> bool:
    return Message.objects.filter(session=session, purpose=Purpose.BOOKED, status__in=Message.PENDING).exists()


def rules_for(session: Session) -> list[ReminderRule]:
    rules = ReminderRule.objects.filter(clinic_id=session.clinic_id, is_active=True)
    own = [r for r in rules if r.protocol_id == session.series.protocol_id]
    return own or [r for r in rules if r.protocol_id is None]


def channels_for(patient: Patient) -> list[str]:
    channels = []
    if patient.sms_enabled and patient.phone:
        channels.append(Channel.SMS)
    if patient.email_enabled and patient.email:
        channels.append(Channel.EMAIL)
    return channels


def shift_out_of_quiet_hours(moment: datetime, *, clinic: Clinic, patient: Patient, forward: bool) -> datetime:
    """The moment itself if texts may go then in the patient's zone; else the last allowed moment
    before it (a reminder) or the first one after it (a notice, which cannot go earlier)."""
    zone = patient.zone
    local = moment.astimezone(zone)
    opens, closes = clinic.message_window_start, clinic.message_window_end
    if opens <= local.time() < closes:
        return moment
    if forward:
        day = local.date() if local.time() < opens else local.date() + timedelta(days=1)
        return _at(day, opens, zone)
    day = local.date() if local.time() >= closes else local.date() - timedelta(days=1)
    return _at(day, closes, zone) - QUIET_MARGIN


def _at(day: date, at: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def _notice(session: Session, purpose: str, now: datetime) -> list[Message]:
    patient = session.patient
    rows = []
    for channel in channels_for(patient):
        due = now
        if channel == Channel.SMS:
            due = shift_out_of_quiet_hours(now, clinic=session.clinic, patient=patient, forward=True)
        rows.append(_row(session, purpose, purpose, channel, due, now))
    return rows


def _reminders(session: Session, now: datetime, *, rules: list[ReminderRule] | None = None) -> list[Message]:
    patient = session.patient
    channels = channels_for(patient)
    rows = []
    for rule in rules if rules is not None else rules_for(session):
        if rule.channel not in channels:
            continue
        due = session.starts_at - timedelta(minutes=rule.offset_minutes)
        if rule.channel == Channel.SMS:
            due = shift_out_of_quiet_hours(due, clinic=session.clinic, patient=patient, forward=False)
        row = _row(session, Purpose.REMINDER, f"rule-{rule.pk}", rule.channel, due, now, rule=rule)
        if due < now:
            # Booked inside the reminder's window: a late reminder is noise, not a reminder.
            row.status = Message.Status.SKIPPED
            row.reason = "booked after this reminder was due"
        rows.append(row)
    return rows


def _row(session: Session, purpose: str, key: str, channel: str, due: datetime, now: datetime, rule=None) -> Message:
    return Message(
        session=session,
        patient=session.patient,
        purpose=purpose,
        key=key,
        rule=rule,
        channel=channel,
        session_version=session.version,
        due_at=due,
        expires_at=session.starts_at,
        recipient=session.patient.phone if channel == Channel.SMS else session.patient.email,
    )


def _save(rows: list[Message]) -> list[Message]:
    saved = Message.objects.bulk_create(rows, ignore_conflicts=True)
    if any(row.status == Message.Status.PLANNED and row.due_at <= timezone.now() for row in rows):
        # Something is due now (a booking confirmation): wake the tick instead of waiting for it.
        transaction.on_commit(_kick_tick)
    return saved


def _kick_tick() -> None:
    if settings.REMINDER_KICK_ON_BOOKING:
        from .tasks import reminder_tick

        reminder_tick.delay()
