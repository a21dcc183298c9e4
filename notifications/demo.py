"""The demo's messages, beside `sessions.demo`.

Today's demo visits were booked as of before the clinic opened, so reminders that were due
between then and the seeding are stored skipped, as any reminder is that was due before its
booking, rather than sent late when `make run` starts (`demo_messages_settle`).

The past four weeks' visits get the messages a clinic would hold for them
(`demo_history_messages`): each series' booking confirmation and reminders, planned by
planning.py's own steps as of its booking (quiet hours, the daily and weekly text limits, an
email where a text could not go), then as the tick and the sends left them. Texts were
delivered, emails sent; a cancelled visit's messages still pending were withdrawn and the
patient told, where anything had reached them; a send met the limits again where a notice had
used the day's text; Twilio refused the numbers of a few patients as invalid (21211), so their
first text went by email instead and no later one was sent; and one evening the worker fell
behind, so texts due just before quiet hours met them. Written in bulk, once: `sessions.demo`
hands over only the visits it has just written.
"""

import heapq
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from random import Random

from django.conf import settings
from django.db import transaction

from scheduler.bulk import rows_create
from sessions.clock import local_date, wall_clock
from sessions.models import Session

from . import planning, sending
from .metrics import messages_end
from .models import CANCELLATIONS, Channel, ContactStatus, Message, ReminderRule

Status = Message.Status

SEED = 20260105
DELIVERY_RECEIPT_SHARE = 0.97  # of the texts sent: the carrier's receipt came back "delivered"
INVALID_PHONES = 3  # patients whose number Twilio refuses as invalid: a digit mistyped at intake
# The evening the worker fell behind: from this time, this long, in the clinic's zone.
WORKER_BEHIND = (time(19, 40), timedelta(minutes=45))


def demo_messages_settle(*, sessions: list[Session], now: datetime) -> int:
    overdue = Message.objects.filter(session__in=sessions, status=Message.Status.PLANNED, due_at__lt=now)
    return messages_end(overdue, status=Message.Status.SKIPPED, reason="booked after this reminder was due", now=now)


@transaction.atomic
def demo_history_messages(*, sessions: list[Session]) -> int:
    """Every message of the past visits `sessions` (their series and patients loaded), each in
    the state it ended in. Returns how many were written."""
    if not sessions:
        return 0
    clinic = sessions[0].clinic
    rules = list(
        ReminderRule.objects.filter(clinic=clinic, is_active=True).order_by("-offset_minutes", "channel", "pk")
    )
    rng = Random(SEED)
    by_patient: dict[int, dict[int, list[Session]]] = defaultdict(lambda: defaultdict(list))
    for session in sorted(sessions, key=lambda s: s.starts_at):
        by_patient[session.patient_id][session.series_id].append(session)
    # Among the patients who never confirmed by text: Twilio refuses their number.
    texted_back = {s.patient_id for s in sessions if s.confirmed_via == Session.Channel.SMS}
    candidates = sorted(set(by_patient) - texted_back)
    invalid = set(rng.sample(candidates, min(INVALID_PHONES, len(candidates))))
    evening = local_date(sessions[len(sessions) // 2].starts_at, clinic.zone)
    behind_from = wall_clock(evening, WORKER_BEHIND[0], clinic.zone)
    sends = _Sends(rng, behind=(behind_from, behind_from + WORKER_BEHIND[1]))
    for patient_id, series in sorted(by_patient.items()):
        sends.patient(_planned(list(series.values()), rules), invalid=patient_id in invalid)
    return sends.save()


def _planned(series: list[list[Session]], rules: list[ReminderRule]) -> list[tuple[Message, datetime]]:
    """One patient's messages as planning made them at each booking (planning.booking_plan), each
    with when. The patient's texts of earlier bookings, which a booking reads from the database,
    are here the ones planned in this loop, less those a cancel had withdrawn."""
    texts: list[tuple[datetime, Session]] = []
    planned = []
    for visits in sorted(series, key=lambda v: v[0].series.created_at):
        booked = visits[0].series.created_at
        taken = [due for due, session in texts if not _withdrawn_by(booked, session, due)]
        rows = planning.booking_plan(sessions=visits, rules=rules, now=booked, texts_taken=taken)
        texts += [(row.due_at, row.session) for row in rows if planning.is_planned_text(row)]
        planned += [(row, booked) for row in rows]
    return planned


def _withdrawn_by(at: datetime, session: Session, due: datetime) -> bool:
    """Was a message of `session` due at `due` withdrawn by `at` (the visit cancelled before it was due)?"""
    cancelled = session.status_changed_at if session.status == Session.Status.CANCELLED else None
    return cancelled is not None and cancelled <= at and cancelled <= due


@dataclass
class _Phone:
    """One patient's texts as the sends met them."""

    invalid: bool  # Twilio refuses the number
    went_out: list[datetime] = field(default_factory=list)
    refused_at: datetime | None = None


@dataclass
class _Sends:
    """What the ticks and the sends made of each planned message, patient by patient."""

    rng: Random
    behind: tuple[datetime, datetime]
    rows: list[tuple[Message, datetime]] = field(default_factory=list)  # each with when it was planned
    fallbacks: list[tuple[Message, Message]] = field(default_factory=list)  # a refused text and its email
    refused_phones: list[ContactStatus] = field(default_factory=list)

    def patient(self, planned: list[tuple[Message, datetime]], *, invalid: bool) -> None:
        """In the order the tick met them: by due time, each cancellation at its moment."""
        queue: list[tuple[datetime, int, Message | Session, datetime]] = []
        for row, at in planned:
            heapq.heappush(queue, (row.due_at, len(queue), row, at))
        cancelled = {row.session for row, _ in planned if row.session.status == Session.Status.CANCELLED}
        for session in sorted(cancelled, key=lambda s: s.starts_at):
            heapq.heappush(queue, (session.status_changed_at, len(queue), session, session.status_changed_at))
        phone = _Phone(invalid)
        added = len(queue)
        while queue:
            at, _, item, planned_at = heapq.heappop(queue)
            if isinstance(item, Session):
                later = [(notice, at) for notice in self._cancellation_notices(item, at)]
            else:
                self.rows.append((item, planned_at))
                later = self._end(item, phone) if item.status == Status.PLANNED else []
            for row, made_at in later:
                added += 1
                heapq.heappush(queue, (row.due_at, added, row, made_at))

    def _end(self, row: Message, phone: _Phone) -> list[tuple[Message, datetime]]:
        """sending._refusal, then the send, with the sends' own reasons; returns the email that goes
        instead of a refused text, with when it was made."""
        went = self._went(row.due_at)
        if self._withdrawn(row, went):
            row.status, row.reason = Status.CANCELLED, "session cancelled"
        elif went >= row.expires_at:
            row.status, row.reason = Status.EXPIRED, "not sent before the session started"
        elif row.channel == Channel.EMAIL:
            self._sent(row, went)
        elif (refusal := _text_refusal(row, went, phone)) is not None:
            row.status, row.reason = Status.SKIPPED, refusal
        elif phone.invalid:
            phone.refused_at = went
            return [(self._refuse(row, went), went)]
        else:
            self._sent(row, went)
            phone.went_out.append(went)
        return []

    def _cancellation_notices(self, session: Session, at: datetime) -> list[Message]:
        """planning.messages_plan_cancellation: the patient is told where anything had reached them."""
        told = any(
            row.session is session and row.status in Message.WENT_OUT and row.sending_started_at < at
            for row, _ in self.rows
        )
        return planning.cancellation_notice(session=session, now=at) if told else []

    def _went(self, due: datetime) -> datetime:
        """When the tick handed the message to a worker: within the minute, but not while it lagged."""
        start, end = self.behind
        went = end if start <= due < end else due
        return went + timedelta(seconds=self.rng.uniform(2, 55))

    def _withdrawn(self, row: Message, went: datetime) -> bool:
        session = row.session
        return (
            row.purpose not in CANCELLATIONS
            and session.status == Session.Status.CANCELLED
            and session.status_changed_at <= went
        )

    def _sent(self, row: Message, went: datetime) -> None:
        row.status, row.reason, row.attempts = Status.SENT, "", 1
        row.sending_started_at = went
        row.sent_at = went + timedelta(seconds=self.rng.uniform(0.3, 2))
        if row.channel == Channel.EMAIL:
            row.provider_id = f"<{self.rng.getrandbits(96):024x}@{settings.EMAIL_MESSAGE_ID_DOMAIN}>"
            return
        row.provider_id = f"SM{self.rng.getrandbits(128):032x}"
        if self.rng.random() < DELIVERY_RECEIPT_SHARE:
            row.status = Status.DELIVERED
            row.delivered_at = row.sent_at + timedelta(seconds=self.rng.uniform(2, 25))

    def _refuse(self, row: Message, went: datetime) -> Message:
        """Twilio refuses the number for good (sending._fail_permanently): the text fails, the phone
        is marked, and the same message goes by email instead."""
        row.status, row.reason, row.provider_error = Status.FAILED, "Twilio 400 21211", "21211"
        row.attempts, row.sending_started_at = 1, went
        patient = row.patient
        self.refused_phones.append(
            ContactStatus(patient=patient, phone=patient.phone, sms_problem=ContactStatus.Problem.INVALID,
                          sms_problem_at=went)
        )  # fmt: skip
        fallback = Message(
            session=row.session, clinic_id=row.clinic_id, patient=patient, purpose=row.purpose, rule=row.rule,
            channel=Channel.EMAIL, session_version=row.session_version, due_at=went, expires_at=row.expires_at,
            recipient=patient.email,
        )  # fmt: skip
        self.fallbacks.append((row, fallback))
        return fallback

    def save(self) -> int:
        """Write every row; the fallback emails' keys name their text (sending._email_fallback), so
        they are written once the texts have their ids."""
        fallbacks = {id(email) for _, email in self.fallbacks}
        first = [row for row, _ in self.rows if id(row) not in fallbacks]
        rows_create(first)
        for text, email in self.fallbacks:
            email.key = f"fallback-{text.pk}"
        rows_create([email for _, email in self.fallbacks])
        ContactStatus.objects.bulk_create(self.refused_phones)
        # Django stamps created_at at the insert: each row gets back when it was planned.
        for row, planned_at in self.rows:
            row.created_at = planned_at
        Message.objects.bulk_update([row for row, _ in self.rows], ["created_at"])
        return len(self.rows)


def _text_refusal(row: Message, went: datetime, phone: _Phone) -> str | None:
    """sending.sms_refusal at `went`, given the patient's texts that went out before."""
    patient = row.patient
    if phone.refused_at is not None:
        return f"phone refused earlier: {ContactStatus.Problem.INVALID.label.lower()}"
    quiet = sending.quiet_hours_refusal(patient=patient, clinic=row.session.clinic, now=went)
    if quiet is not None:
        return quiet
    week = [t for t in phone.went_out if went - timedelta(days=7) < t <= went]
    day = went.astimezone(patient.zone).date()
    return sending.caps_refusal(today=sum(t.astimezone(patient.zone).date() == day for t in week), week=len(week))
