"""Planning: which message rows a booking, a move or a cancellation creates or withdraws.

Runs inside the booking transaction (from the signals of `sessions.signals`), so a session and
its messages commit or roll back together: a stale reminder for an old time cannot exist.

The plan keeps the texting rules when it is made (quiet hours, the daily and weekly caps), so
what staff and the patient see as planned is what will go: a text reminder that could not go
is planned as an email instead, or stored skipped with the reason. Sending checks the same rules
again, for what planning cannot see (notices over a cap, texts planned before these rules).
"""

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, Q, QuerySet
from django.utils import timezone

from scheduler.bulk import rows_insert
from sessions.clock import LocalTimeError, to_utc
from sessions.locking import lock_patients
from sessions.models import Clinic, Patient, Session
from sessions.services import audit_record

from .metrics import messages_end, outcomes_count
from .models import Channel, Message, Purpose, ReminderRule

# The built-in rules every new clinic starts with (channel, minutes before the start).
DEFAULT_RULES = [(Channel.EMAIL, 72 * 60), (Channel.SMS, 24 * 60), (Channel.SMS, 2 * 60)]
# A reminder shifted out of quiet hours goes this long before the window closes, so that a tick
# and a busy worker still get it out inside the window.
QUIET_MARGIN = timedelta(minutes=10)
DAY_MINUTES = 24 * 60
WEEK = timedelta(days=7)
# A text goes out a little after it is due (the tick, a busy worker): planning counts a week this
# much longer, so that a text sent late still fits beside one planned a week after it.
SEND_SLACK = timedelta(hours=1)
# An email reminder of the same visit this close to a text that cannot go already tells the
# patient what the text would have: a second email would only repeat it.
EMAIL_NEARBY = timedelta(hours=3)


class _Cause(NamedTuple):
    """Why a text reminder cannot go, in staff's words: with an email instead, and alone."""

    short: str
    alone: str


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
    # One series, one clinic and protocol: the same rules for every session, read once.
    rules, texted = _series_rules(sessions, now)
    reminders = [row for session in sessions for row in _reminders(session, now, rules=rules)]
    return _save(_texts_settle(_notice(first, Purpose.BOOKED, now), reminders, texted=texted))


def messages_plan_move(*, session: Session, now: datetime | None = None) -> list[Message]:
    """Withdraw what was pending for the old time; a notice now and reminders for the new time.

    A patient whose booking confirmation had not gone out yet gets that, for the new time,
    rather than news of a move from a time they never heard of.
    """
    now = now or timezone.now()
    unconfirmed = _booking_unsent(session)
    messages_withdraw(session=session, reason="session moved", now=now)
    notice = Purpose.BOOKED if unconfirmed else Purpose.MOVED
    return _save(_texts_settle(_notice(session, notice, now), _reminders(session, now)))


def messages_plan_cancellation(*, session: Session, now: datetime | None = None) -> list[Message]:
    """Withdraw what was pending; tell the patient, unless they were never told of the session."""
    now = now or timezone.now()
    told = Message.objects.filter(session=session, status__in=Message.WENT_OUT).exists()
    messages_withdraw(session=session, reason="session cancelled", now=now)
    return _save(cancellation_notice(session=session, now=now)) if told else []


def messages_plan_series_cancellation(*, sessions: list[Session], now: datetime | None = None) -> list[Message]:
    """A whole series cancelled: one notice, on its first cancelled visit, not one per visit
    (its sessions' pending messages were withdrawn as each was cancelled)."""
    if not sessions:
        return []
    now = now or timezone.now()
    first = min(sessions, key=lambda s: s.starts_at)
    told = Message.objects.filter(session__series_id=first.series_id, status__in=Message.WENT_OUT).exists()
    return _save(_notice(first, Purpose.CANCEL_ALL, now)) if told else []


def messages_plan_reflow(*, sessions: list[Session], now: datetime | None = None) -> list[Message]:
    """A re-flow moved or booked these sessions of one series: withdraw what each had pending,
    plan reminders for every new time, and one notice, on the first of them, that lists them all."""
    if not sessions:
        return []
    now = now or timezone.now()
    _withdraw(sessions, reason="series re-flowed", now=now)
    sessions = sorted(sessions, key=lambda s: s.starts_at)
    rules, texted = _series_rules(sessions, now)
    reminders = [row for session in sessions for row in _reminders(session, now, rules=rules)]
    return _save(_texts_settle(_notice(sessions[0], Purpose.REFLOWED, now), reminders, texted=texted))


def messages_plan_reinstated(*, session: Session, now: datetime | None = None) -> list[Message]:
    """A cancel taken back: the session is booked again, and the patient hears so."""
    now = now or timezone.now()
    return _save(_texts_settle(_notice(session, Purpose.BOOKED, now), _reminders(session, now)))


def messages_plan_link(*, session: Session, now: datetime | None = None) -> list[Message]:
    """Staff send the patient the link to their visit again (the text was lost, the phone
    changed): by text and by email where the patient takes each, due now, the text inside the
    message window; sending checks the caps as for any text. Each time is a message of its own."""
    now = now or timezone.now()
    rows = _notice(session, Purpose.LINK, now)
    for row in rows:
        row.key = f"link-{now:%Y%m%d%H%M%S%f}"
    return _save(rows)


def link_send_again(*, session: Session, actor, now: datetime | None = None) -> list[Message]:
    """Staff's "send the link again": the messages under the patient's lock, as every planning
    runs, and the audit line that says by which channels (empty: the patient takes neither)."""
    now = now or timezone.now()
    with transaction.atomic():
        lock_patients(patient_ids=[session.patient_id])
        planned = messages_plan_link(session=session, now=now)
        audit_record(
            patient=session.patient_id, session=session, action="link sent again", via=Session.Channel.STAFF,
            actor=actor, at=now, detail=", ".join(sorted(m.channel for m in planned)),
        )  # fmt: skip
    return planned


def messages_withdraw(*, session: Session, reason: str, now: datetime | None = None) -> int:
    """Cancel the session's messages that have not gone out. A claimed one whose task is already
    queued finds itself cancelled when the worker looks, and sends nothing."""
    return _withdraw([session], reason=reason, now=now or timezone.now())


def _withdraw(sessions: list[Session], *, reason: str, now: datetime) -> int:
    """messages_withdraw for several sessions at once."""
    pending = Message.objects.filter(session__in=sessions, status__in=Message.PENDING)
    return messages_end(pending, status=Message.Status.CANCELLED, reason=reason, now=now)


def _booking_unsent(session: Session) -> bool:
    return Message.objects.filter(session=session, purpose=Purpose.BOOKED, status__in=Message.PENDING).exists()


def rules_for(session: Session) -> list[ReminderRule]:
    return _rules_of(session, _clinic_rules(session))


def _series_rules(sessions: list[Session], now: datetime) -> tuple[list[ReminderRule], bool]:
    """rules_for the series of `sessions` (in start order), and whether the patient has a text
    sent or due within reach of their reminders' caps, in the same query: most have none, and
    then _texts_settle need not look for them. Reminders still to plan are due from now to the
    last start, so the texts that can count against them lie in _texts_near of those."""
    first = sessions[0]
    near = _texts_near(first.patient, first=now, last=sessions[-1].starts_at)
    rules = list(_clinic_rules(first).annotate(texted=Exists(near)))
    return _rules_of(first, rules), any(rule.texted for rule in rules)


def _clinic_rules(session: Session) -> QuerySet[ReminderRule]:
    # The model's ordering, less its joins: within one clinic and one protocol (or none) it is this.
    return ReminderRule.objects.filter(clinic_id=session.clinic_id, is_active=True).order_by(
        "-offset_minutes", "channel", "pk"
    )


def _rules_of(session: Session, rules: Iterable[ReminderRule]) -> list[ReminderRule]:
    """The protocol's own rules where it has some, else the clinic's."""
    rules = list(rules)
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
    if _texts_allowed(moment, clinic=clinic, patient=patient):
        return moment
    zone = patient.zone
    local = moment.astimezone(zone)
    opens, closes = clinic.message_window_start, clinic.message_window_end
    if forward:
        day = local.date() if local.time() < opens else local.date() + timedelta(days=1)
        return _at(day, opens, zone)
    day = local.date() if local.time() >= closes else local.date() - timedelta(days=1)
    return _at(day, closes, zone) - QUIET_MARGIN


def _texts_allowed(moment: datetime, *, clinic: Clinic, patient: Patient) -> bool:
    return clinic.message_window_start <= moment.astimezone(patient.zone).time() < clinic.message_window_end


def _at(day: date, at: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def _notice(session: Session, purpose: str, now: datetime) -> list[Message]:
    patient = session.patient
    rows = []
    for channel in channels_for(patient):
        due = now
        if channel == Channel.SMS:
            due = shift_out_of_quiet_hours(now, clinic=session.clinic, patient=patient, forward=True)
        row = _row(session, purpose, purpose, channel, due)
        if due != now:
            # Staff see why a text they expected now has not gone: it waits for the window.
            row.reason = _waits_for_window(session.clinic)
        rows.append(row)
    return rows


def _waits_for_window(clinic: Clinic) -> str:
    opens, closes = clinic.message_window_start, clinic.message_window_end
    return f"waits for the message window ({opens:%H:%M}–{closes:%H:%M} patient time)"


def _reminders(session: Session, now: datetime, *, rules: list[ReminderRule] | None = None) -> list[Message]:
    channels = channels_for(session.patient)
    rows = []
    for rule in rules if rules is not None else rules_for(session):
        if rule.channel not in channels:
            continue
        due = _reminder_due(session, rule)
        row = _row(session, Purpose.REMINDER, f"rule-{rule.pk}", rule.channel, due, rule=rule)
        if due < now:
            # Booked inside the reminder's window: a late reminder is noise, not a reminder.
            row.status = Message.Status.SKIPPED
            row.reason = "booked after this reminder was due"
        rows.append(row)
    return rows


def _reminder_due(session: Session, rule: ReminderRule) -> datetime:
    due = _before_start(session, rule.offset_minutes)
    if rule.channel != Channel.SMS:
        return due
    patient = session.patient
    shifted = shift_out_of_quiet_hours(due, clinic=session.clinic, patient=patient, forward=False)
    if (
        rule.offset_minutes < DAY_MINUTES
        and shifted.astimezone(patient.zone).date() < due.astimezone(patient.zone).date()
    ):
        # A reminder for the visit's own day (2 h before a 10:00 visit) is no use the evening
        # before: it keeps its time, in quiet hours, and `_texts_settle` sends it by email.
        return due
    return shifted


def _before_start(session: Session, minutes: int) -> datetime:
    """The session's start less the offset. Whole days keep the visit's wall-clock time in the
    clinic's zone: the reminder "a day before" a 09:00 visit comes at 09:00 across a DST change."""
    plain = session.starts_at - timedelta(minutes=minutes)
    days, rest = divmod(minutes, DAY_MINUTES)
    if rest:
        return plain
    zone = session.clinic.zone
    local = session.starts_at.astimezone(zone)
    try:
        return to_utc(datetime.combine(local.date() - timedelta(days=days), local.time()), zone)
    except LocalTimeError:
        return plain


def _texts_settle(notices: list[Message], reminders: list[Message], *, texted: bool = True) -> list[Message]:
    """The plan's rows, with each text reminder that cannot go declined (`_decline`). `texted`
    false: the patient is known to have no text that could count against these (_series_rules).

    Texts are taken greedily, earliest due first: that is the order in which sending meets
    them, so the plan shows what sending will do, and the patient's texts already planned
    (another series, an earlier booking) keep their place rather than being skipped later.
    On consecutive days this keeps the first text of each day, the 2 h one of the day's visit.
    """
    texts = sorted((r for r in reminders if is_planned_text(r)), key=lambda r: r.due_at)
    if not texts:
        return notices + reminders
    sent = _texts_around(texts[0].patient, first=texts[0].due_at, last=texts[-1].due_at) if texted else []
    return _settle(notices, reminders, taken=sent)


def _settle(notices: list[Message], reminders: list[Message], *, taken: list[datetime]) -> list[Message]:
    """`_texts_settle` against `taken`, when the patient's other texts go out."""
    rows = notices + reminders
    taken = taken + [r.due_at for r in notices if is_planned_text(r)]
    for text in sorted((r for r in reminders if is_planned_text(r)), key=lambda r: r.due_at):
        cause = _text_refusal(text, taken)
        if cause is None:
            taken.append(text.due_at)
        else:
            rows += _decline(text, cause, rows)
    return rows


def booking_plan(
    *, sessions: Iterable[Session], rules: Iterable[ReminderRule], now: datetime, texts_taken: list[datetime]
) -> list[Message]:
    """What booking `sessions` at `now` plans, unsaved and read from nothing but the arguments:
    the booking confirmation, each session's reminders under `rules` (the clinic's, with its
    protocols' own), and the texts that cannot go declined against `texts_taken` (when the
    patient's other texts go out). The demo's past is planned with it, as the service would have."""
    sessions = sorted(sessions, key=lambda s: s.starts_at)
    rules = list(rules)
    reminders = [row for s in sessions for row in _reminders(s, now, rules=_rules_of(s, rules))]
    return _settle(_notice(sessions[0], Purpose.BOOKED, now), reminders, taken=texts_taken)


def cancellation_notice(*, session: Session, now: datetime) -> list[Message]:
    """The cancellation notice's rows, unsaved (messages_plan_cancellation saves them)."""
    return _notice(session, Purpose.CANCELLED, now)


def is_planned_text(row: Message) -> bool:
    return row.channel == Channel.SMS and row.status == Message.Status.PLANNED


def _texts_around(patient: Patient, *, first: datetime, last: datetime) -> list[datetime]:
    """When the patient's texts went out or are due, from a week before `first` to a week after
    `last`, in one query: the patient lock the booking holds keeps them from changing meanwhile."""
    found = _texts_near(patient, first=first, last=last)
    return [
        sent if status in Message.WENT_OUT else due
        for status, due, sent in found.values_list("status", "due_at", "sending_started_at")
    ]


def _texts_near(patient: Patient, *, first: datetime, last: datetime) -> QuerySet[Message]:
    """The patient's texts that count against the caps of texts due from `first` to `last`: those
    that went out or are due from a week before `first` to a week after `last`."""
    since, until = first - WEEK - SEND_SLACK, last + WEEK + SEND_SLACK
    went_out = Q(status__in=Message.WENT_OUT, sending_started_at__range=(since, until))
    pending = Q(status__in=Message.PENDING, due_at__range=(since, until))
    return Message.objects.filter(went_out | pending, patient=patient, channel=Channel.SMS)


def _text_refusal(text: Message, taken: list[datetime]) -> _Cause | None:
    due, zone = text.due_at, text.patient.zone
    if not _texts_allowed(due, clinic=text.session.clinic, patient=text.patient):
        return _Cause("quiet hours", "would fall in quiet hours")
    daily, weekly = settings.SMS_DAILY_CAP, settings.SMS_WEEKLY_CAP
    if sum(t.astimezone(zone).date() == due.astimezone(zone).date() for t in taken) >= daily:
        return _Cause(f"text limit ({daily} a day)", f"text limit ({daily} a day) reached at planning")
    if _over_a_week(taken, due, cap=weekly):
        return _Cause(f"text limit ({weekly} a week)", f"text limit ({weekly} a week) reached at planning")
    return None


def _over_a_week(taken: list[datetime], due: datetime, *, cap: int) -> bool:
    """Would a text at `due` put more than `cap` texts in some rolling week? Only the weeks that
    end at a text from `due` on can hold it."""
    week = WEEK + SEND_SLACK
    moments = [*taken, due]
    ends = (end for end in moments if due <= end < due + week)
    return any(sum(end - week < t <= end for t in moments) > cap for end in ends)


def _decline(text: Message, cause: _Cause, rows: list[Message]) -> list[Message]:
    """Skip the text, with the reason; the same reminder by email at its time where the patient
    takes email (email has no caps or quiet hours) and no email reminder of the visit is near it."""
    text.status = Message.Status.SKIPPED
    patient = text.patient
    if Channel.EMAIL not in channels_for(patient):
        text.reason = f"{cause.alone}; {'emails are off' if patient.email else 'no email address'}"
        return []
    if any(_email_near(row, text) for row in rows):
        text.reason = f"{cause.short}: an email reminder goes near that time"
        return []
    text.reason = f"{cause.short}: sent by email instead"
    # The key stays the text's rule: with the email channel it is a row of its own.
    return [_row(text.session, Purpose.REMINDER, text.key, Channel.EMAIL, text.due_at, rule=text.rule)]


def _email_near(row: Message, text: Message) -> bool:
    return (
        row.session_id == text.session_id
        and row.channel == Channel.EMAIL
        and row.purpose == Purpose.REMINDER
        and row.status == Message.Status.PLANNED
        and abs(row.due_at - text.due_at) <= EMAIL_NEARBY
    )


def _row(
    session: Session, purpose: str, key: str, channel: str, due: datetime, rule: ReminderRule | None = None
) -> Message:
    return Message(
        session=session,
        clinic_id=session.clinic_id,
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
    rows_insert(rows)
    outcomes_count(rows=[row for row in rows if row.status == Message.Status.SKIPPED], outcome=Message.Status.SKIPPED)
    if any(row.status == Message.Status.PLANNED and row.due_at <= timezone.now() for row in rows):
        # Something is due now (a booking confirmation): wake the tick instead of waiting for it.
        transaction.on_commit(_kick_tick)
    return rows


def tick_kick() -> None:
    """Wake the tick now (after the commit) for what a person just made due: a staff offer."""
    transaction.on_commit(_kick_tick)


def _kick_tick() -> None:
    if settings.REMINDER_KICK_ON_BOOKING:
        from .tasks import reminder_tick

        reminder_tick.delay()
