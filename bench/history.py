"""A year of a clinic's past, for the reports page and /metrics: its visits, what became of them,
and every message about them, as the service would have left them.

The sessions are laid out by bench/clinic.py's Layout on the year up to today, so every booking
rule holds; series that began before the year, or run on past today, keep their sessions there
(before: over; after: booked or confirmed, their reminders planned). What happened to each visit
is drawn from a seeded Random: a series is booked at once, 1 to 40 days before its first visit
(most a few days ahead); about 70% of visits are confirmed 1–3 days before; about 8% are
cancelled, a third of those inside the clinic's 24 h notice; about 5% are no-shows; the rest are
completed, nearly all with chair-in and chair-out recorded a few minutes off the booked times. A
series misses a visit now and then, and is then off protocol.

Messages follow the clinic's default rules (an email 72 h before, texts 24 h and 2 h before) and
the texting rules of notifications/planning.py as each booking met them: a reminder already due
at the booking is skipped; a text in quiet hours or over the daily or weekly cap is skipped and
goes by email instead. Each series has its booking confirmation, and a patient who had heard of
a visit that was cancelled gets a cancellation notice. Then what the sends made of them, with
the service's own reasons: texts mostly delivered (some undelivered, failed or without a
receipt), emails sent, reminders of a cancelled visit withdrawn, texts to a patient who opted
out cancelled or skipped, to a number the carrier refused failed once, then skipped. Whatever
fell due in the last `behind` before now is still planned: the tick has fallen behind, which is
what /metrics' gauges are there to show. Every row is written in bulk (scheduler/bulk.py).
"""

import time as clock
from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from random import Random
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils import timezone

from notifications.models import Channel, ContactStatus, Message, Purpose, ReminderRule
from scheduler.bulk import rows_create, rows_update
from sessions.clock import local_date, wall_clock
from sessions.models import Clinic, Patient, Protocol, Series, Session

from .clinic import CELL_MINUTES, CHAIRS, OPENS, Layout, PlannedSeries, clinic_create, patient_new, protocols_create

Status = Session.Status
Sent = Message.Status

NO_SHOW_SHARE = 0.05
CANCELLED_SHARE = 0.08
LATE_CANCEL_SHARE = 0.35  # of the cancellations: inside the clinic's notice
CONFIRMED_SHARE = 0.70
RECORDED_SHARE = 0.97  # of the completed visits: chair-in and chair-out recorded
LEAD_DAYS = (1, 40, 3)  # booked this many days ahead: least, most, most often
OPTED_OUT_SHARE = 0.02  # of the patients: replied STOP at some point of the year
REFUSED_PHONE_SHARE = 0.01  # of the patients: a number the carrier refuses
# A sent text's end, by the carrier's receipt: (share, status, carrier error codes).
TEXT_ENDS = (
    (0.955, Sent.DELIVERED, ("",)),
    (0.015, Sent.SENT, ("",)),
    (0.02, Sent.UNDELIVERED, ("30003", "30005", "30006")),
    (0.01, Sent.FAILED, ("30008",)),
)
FRONT_DESK = (time(7), time(19))  # when bookings are made, clinic time
# planning.QUIET_MARGIN: a text shifted out of quiet hours goes this long before the window closes.
QUIET_MARGIN = timedelta(minutes=10)
SMS_BODY = (
    "Desert Wellness: your visit on {day} at {at}. Confirm, move or cancel: "
    "https://scheduler.example.com/r/… Reply STOP to end texts."
)
EMAIL_BODY = (
    "Hello,\n\nThis is about your visit to Desert Wellness on {day} at {at}, 1 Bench Way, Phoenix AZ.\n"
    "Please arrive ten minutes early and bring a driver: you will not be able to drive afterwards.\n"
    "To confirm, move or cancel: https://scheduler.example.com/r/…\n\nQuestions: +1 602 555 0100."
)


@dataclass(frozen=True)
class ClinicHistory:
    clinic: Clinic
    protocols: dict[str, Protocol]
    first_date: date  # the year's first day (clinic date); its last is today
    last_date: date
    sessions: int  # visits on the year's days
    statuses: dict[str, int]  # those visits by status
    sessions_outside: int  # visits of the same series before the year or after today
    series: int
    patients: int
    messages: int
    message_statuses: dict[str, int]
    seconds: float


def clinic_history_build(
    *,
    seed: int,
    days: int = 365,
    chairs: int = CHAIRS,
    sessions: int = 20_000,
    patients: int | None = None,
    name: str = "History Clinic",
    now: datetime | None = None,
    behind: timedelta = timedelta(hours=1),
) -> ClinicHistory:
    """A clinic of `chairs` chairs with exactly `sessions` visits on the `days` days up to today."""
    began = clock.perf_counter()
    now = now or timezone.now()
    patients = patients or max(sessions // 5, 20)
    clinic = clinic_create(name, chairs=chairs)
    protocols = protocols_create(clinic)
    first_date = local_date(now, clinic.zone) - timedelta(days=days - 1)
    layout = Layout(days=days, patients=patients, chairs=chairs, today=days - 1, counted=range(days))
    layout.fill(Random(seed), sessions)
    people = _patients_create(clinic, patients, Random(seed + 2), first_date, now)
    visits = _visits_draw(layout, clinic.zone, first_date, Random(seed + 1), now)
    saved = _visits_create(clinic, protocols, layout, visits, people, now)
    drafts = _messages_draw(clinic, visits, people, Random(seed + 3), now=now, behind=behind)
    _messages_create(clinic, drafts, saved, people)
    last_date = first_date + timedelta(days=days - 1)
    year = [v for drawn in visits for v in drawn if first_date <= local_date(v.starts, clinic.zone) <= last_date]
    return ClinicHistory(
        clinic=clinic,
        protocols=protocols,
        first_date=first_date,
        last_date=last_date,
        sessions=len(year),
        statuses=dict(Counter(v.status for v in year)),
        sessions_outside=sum(map(len, visits)) - len(year),
        series=len(visits),
        patients=patients,
        messages=len(drafts),
        message_statuses=dict(Counter(d.status for d in drafts)),
        seconds=clock.perf_counter() - began,
    )


# The visits -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Patient:
    row: Patient
    opted_out_at: datetime | None
    phone_refused: bool


@dataclass(frozen=True)
class _Visit:
    series: int  # index in the layout's series
    number: int
    chair: int
    patient: int
    starts: datetime
    ends: datetime
    booked: datetime
    status: str
    confirmed_at: datetime | None
    confirmed_via: str
    changed: datetime | None
    chair_in: datetime | None
    chair_out: datetime | None

    @property
    def cancelled_at(self) -> datetime | None:
        return self.changed if self.status == Status.CANCELLED else None


def _patients_create(clinic: Clinic, count: int, rng: Random, first_date: date, now: datetime) -> list[_Patient]:
    year_start = wall_clock(first_date, OPENS, clinic.zone)
    people = []
    for n in range(count):
        row = patient_new(clinic, n, prefix="H")
        if rng.random() < OPTED_OUT_SHARE:
            row.sms_opted_out_at = year_start + (now - year_start) * rng.random()
        people.append(_Patient(row, row.sms_opted_out_at, rng.random() < REFUSED_PHONE_SHARE))
    Patient.objects.bulk_create(p.row for p in people)
    ContactStatus.objects.bulk_create(
        ContactStatus(patient=p.row, phone=p.row.phone, sms_problem=ContactStatus.Problem.INVALID, sms_problem_at=now)
        for p in people
        if p.phone_refused
    )
    return people


def _visits_draw(layout: Layout, zone: ZoneInfo, first_date: date, rng: Random, now: datetime) -> list[list[_Visit]]:
    """Each series' visits, with what became of them by `now`."""
    drawn = []
    for index, planned in enumerate(layout.series):
        starts = [
            wall_clock(first_date + timedelta(days=day), OPENS, zone) + timedelta(minutes=cell * CELL_MINUTES)
            for day, _, cell in planned.sessions
        ]
        booked = _booking_moment(rng, starts[0], zone, now)
        length = timedelta(minutes=planned.preset.chair_minutes)
        drawn.append([
            _visit_draw(rng, index, planned, number, starts_at, starts_at + length, booked, now)
            for number, starts_at in enumerate(starts, 1)
        ])  # fmt: skip
    return drawn


def _booking_moment(rng: Random, first_start: datetime, zone: ZoneInfo, now: datetime) -> datetime:
    """When the front desk booked the series: days ahead of its first visit, in desk hours."""
    ahead = round(rng.triangular(*LEAD_DAYS))
    day = first_start.astimezone(zone).date() - timedelta(days=ahead)
    opens, closes = (wall_clock(day, at, zone) for at in FRONT_DESK)
    return min(opens + (closes - opens) * rng.random(), now - timedelta(minutes=rng.uniform(5, 600)))


def _visit_draw(
    rng: Random,
    series: int,
    planned: PlannedSeries,
    number: int,
    starts: datetime,
    ends: datetime,
    booked: datetime,
    now: datetime,
) -> _Visit:
    _, chair, _ = planned.sessions[number - 1]
    drawn = rng.random()
    no_show = drawn < NO_SHOW_SHARE
    cancelled = None
    if not no_show and drawn < NO_SHOW_SHARE + CANCELLED_SHARE:
        cancelled = _cancel_moment(rng, booked, starts)
    confirmed = _confirm_moment(rng, booked, starts) if rng.random() < CONFIRMED_SHARE else None
    if confirmed is not None and (confirmed > now or (cancelled is not None and confirmed >= cancelled)):
        confirmed = None
    via = rng.choices((Session.Channel.SMS, Session.Channel.LINK, Session.Channel.STAFF), (6, 3, 1))[0]
    visit = _Visit(
        series, number, chair, planned.patient, starts, ends, booked, Status.BOOKED, confirmed,
        via if confirmed else "", confirmed, None, None,
    )  # fmt: skip
    if confirmed is not None:
        visit = replace(visit, status=Status.CONFIRMED)
    if cancelled is not None and cancelled <= now:
        return replace(visit, status=Status.CANCELLED, changed=cancelled)
    if starts > now:
        return visit
    if no_show:
        marked = starts + timedelta(minutes=rng.uniform(30, 90))
        return replace(visit, status=Status.NO_SHOW, changed=marked) if marked <= now else visit
    return _attended(rng, visit, now)


def _attended(rng: Random, visit: _Visit, now: datetime) -> _Visit:
    """Arrived (still in the chair) or completed, with chair-in and chair-out as the nurses marked them."""
    chair_in = visit.starts + timedelta(minutes=round(rng.uniform(-10, 15)))
    chair_out = chair_in + (visit.ends - visit.starts) + timedelta(minutes=round(rng.uniform(-10, 20)))
    if chair_in > now:
        chair_in = visit.starts
    if visit.ends > now or chair_out > now:
        return replace(visit, status=Status.ARRIVED, changed=chair_in, chair_in=chair_in)
    if rng.random() >= RECORDED_SHARE:
        return replace(visit, status=Status.COMPLETED, changed=visit.ends)
    return replace(visit, status=Status.COMPLETED, changed=chair_out, chair_in=chair_in, chair_out=chair_out)


def _cancel_moment(rng: Random, booked: datetime, starts: datetime) -> datetime:
    notice = starts - timedelta(hours=24)
    if rng.random() < LATE_CANCEL_SHARE or notice <= booked:
        moment = starts - timedelta(hours=rng.uniform(1, 23))
    else:
        moment = booked + (notice - booked) * rng.random()
    return moment if moment > booked else booked + (starts - booked) / 2


def _confirm_moment(rng: Random, booked: datetime, starts: datetime) -> datetime:
    moment = starts - timedelta(hours=rng.uniform(24, 72))
    return moment if moment > booked else booked + (starts - booked) * rng.uniform(0.2, 0.8)


def _visits_create(
    clinic: Clinic,
    protocols: dict[str, Protocol],
    layout: Layout,
    visits: list[list[_Visit]],
    people: list[_Patient],
    now: datetime,
) -> list[list[Session]]:
    """The series and their sessions; each row's created_at is when it was booked."""
    chair_ids = list(clinic.chairs.order_by("name").values_list("pk", flat=True))
    series = [
        Series(
            patient_id=people[planned.patient].row.pk,
            protocol=protocols[planned.preset.key],
            clinic=clinic,
            status=Series.Status.ACTIVE if any(v.ends > now for v in drawn) else Series.Status.COMPLETED,
        )
        for planned, drawn in zip(layout.series, visits, strict=True)
    ]
    rows_create(series)
    buffer = timedelta(minutes=clinic.turnover_buffer_minutes)
    sessions = [
        [
            Session(
                series_id=series[v.series].pk, patient_id=series[v.series].patient_id, clinic_id=clinic.pk,
                chair_id=chair_ids[v.chair], number=v.number, starts_at=v.starts, ends_at=v.ends,
                chair_free_at=v.ends + buffer, status=v.status, confirmed_at=v.confirmed_at,
                confirmed_via=v.confirmed_via, status_changed_at=v.changed, chair_in_at=v.chair_in,
                chair_out_at=v.chair_out,
            )
            for v in drawn
        ]
        for drawn in visits
    ]  # fmt: skip
    flat = [session for group in sessions for session in group]
    rows_create(flat)
    # Django stamps created_at at the insert: put back when each was booked.
    for row, drawn in zip(series, visits, strict=True):
        row.created_at = drawn[0].booked
    for group, drawn in zip(sessions, visits, strict=True):
        for session, visit in zip(group, drawn, strict=True):
            session.created_at = visit.booked
    rows_update(series, ["created_at"])
    rows_update(flat, ["created_at"])
    return sessions


# The messages ---------------------------------------------------------------------------------


@dataclass
class _Draft:
    """A message as planning made it, then as sending left it."""

    visit: _Visit
    purpose: str
    key: str
    channel: str
    due: datetime
    planned_at: datetime
    rule_id: int | None = None
    status: str = Sent.PLANNED
    reason: str = ""
    attempts: int = 0
    started_at: datetime | None = None
    sent_at: datetime | None = None
    delivered_at: datetime | None = None
    provider_error: str = ""


def _messages_draw(
    clinic: Clinic,
    visits: list[list[_Visit]],
    people: list[_Patient],
    rng: Random,
    *,
    now: datetime,
    behind: timedelta,
) -> list[_Draft]:
    rules = list(ReminderRule.objects.filter(clinic=clinic).values_list("pk", "channel", "offset_minutes"))
    window = (clinic.message_window_start, clinic.message_window_end)
    zone = clinic.zone
    by_patient: dict[int, list[_Draft]] = defaultdict(list)
    for drawn in visits:
        first = drawn[0]
        by_patient[first.patient] += _notices(first, Purpose.BOOKED, first.booked, zone, window)
        for visit in drawn:
            by_patient[visit.patient] += [_reminder(visit, *rule, zone, window) for rule in rules]
    every = []
    sending = _Sending(rng, now=now, behind=behind)
    for patient, drafts in by_patient.items():
        drafts += _texts_settle(drafts, zone, window)
        drafts.sort(key=lambda d: d.due)
        for draft in drafts:
            sending.end(draft, people[patient])
        notices = []
        for visit, cancelled in _told_of_cancellation(drafts):
            notices += _notices(visit, Purpose.CANCELLED, cancelled, zone, window)
        for notice in notices:
            sending.end(notice, people[patient])
        every += drafts + notices
    return every


def _notices(visit: _Visit, purpose: str, at: datetime, zone: ZoneInfo, window: tuple[time, time]) -> list[_Draft]:
    """A notice by text and by email, due at once: the text from the window's opening if that is later."""
    text_due = at if _in_window(at, zone, window) else _window_opening_after(at, zone, window)
    return [
        _Draft(visit, purpose, purpose, Channel.SMS, text_due, at),
        _Draft(visit, purpose, purpose, Channel.EMAIL, at, at),
    ]


def _reminder(
    visit: _Visit, rule_id: int, channel: str, minutes: int, zone: ZoneInfo, window: tuple[time, time]
) -> _Draft:
    due = visit.starts - timedelta(minutes=minutes)
    if channel == Channel.SMS and not _in_window(due, zone, window):
        shifted = _window_closing_before(due, zone, window)
        # A reminder for the visit's own day keeps its time and goes by email (planning._reminder_due).
        if minutes >= 24 * 60 or shifted.astimezone(zone).date() == due.astimezone(zone).date():
            due = shifted
    draft = _Draft(visit, Purpose.REMINDER, f"rule-{rule_id}", channel, due, visit.booked, rule_id)
    if due < visit.booked:
        draft.status, draft.reason = Sent.SKIPPED, "booked after this reminder was due"
    return draft


def _texts_settle(drafts: list[_Draft], zone: ZoneInfo, window: tuple[time, time]) -> list[_Draft]:
    """planning._texts_settle over the patient's year: text reminders taken earliest first, each
    one in quiet hours or over a cap skipped and sent by email instead. Returns those emails."""
    texts = sorted((d for d in drafts if d.channel == Channel.SMS and d.status == Sent.PLANNED), key=lambda d: d.due)
    taken: list[datetime] = []
    emails = []
    for text in texts:
        cause = None if text.purpose != Purpose.REMINDER else _text_refusal(text.due, taken, zone, window)
        if cause is None:
            taken.append(text.due)
            continue
        text.status, text.reason = Sent.SKIPPED, f"{cause}: sent by email instead"
        email = _Draft(text.visit, text.purpose, text.key, Channel.EMAIL, text.due, text.planned_at, text.rule_id)
        emails.append(email)
    return emails


def _text_refusal(due: datetime, taken: list[datetime], zone: ZoneInfo, window: tuple[time, time]) -> str | None:
    if not _in_window(due, zone, window):
        return "quiet hours"
    daily, weekly = settings.SMS_DAILY_CAP, settings.SMS_WEEKLY_CAP
    day = due.astimezone(zone).date()
    if sum(t.astimezone(zone).date() == day for t in taken) >= daily:
        return f"text limit ({daily} a day)"
    # planning.WEEK + SEND_SLACK, looking back from this text: the texts planned before it.
    week = timedelta(days=7, hours=1)
    if sum(due - week < t <= due for t in taken) >= weekly:
        return f"text limit ({weekly} a week)"
    return None


def _told_of_cancellation(drafts: list[_Draft]) -> list[tuple[_Visit, datetime]]:
    """The cancelled visits, with when, of which the patient had been sent something before then
    (planning.messages_plan_cancellation)."""
    told = {}
    for draft in drafts:
        cancelled = draft.visit.cancelled_at
        if cancelled is not None and draft.sent_at is not None and draft.sent_at < cancelled:
            told[draft.visit.series, draft.visit.number] = (draft.visit, cancelled)
    return list(told.values())


class _Sending:
    """What the ticks and the workers made of each planned message by `now`."""

    def __init__(self, rng: Random, *, now: datetime, behind: timedelta) -> None:
        self.rng = rng
        self.now = now
        self.since = now - behind
        # Patients whose number the carrier refused, once their first text failed.
        self.refused: set[int] = set()

    def end(self, draft: _Draft, patient: _Patient) -> None:
        if draft.status != Sent.PLANNED:
            return
        cancelled = draft.visit.cancelled_at
        if cancelled is not None and draft.due > cancelled and draft.purpose != Purpose.CANCELLED:
            draft.status, draft.reason = Sent.CANCELLED, "session cancelled"
        elif draft.due > self.since:
            if draft.visit.starts <= self.now:
                draft.status, draft.reason = Sent.EXPIRED, "not sent before the session started"
        elif draft.channel == Channel.SMS and patient.opted_out_at is not None and draft.due >= patient.opted_out_at:
            planned_before = draft.planned_at < patient.opted_out_at
            draft.status = Sent.CANCELLED if planned_before else Sent.SKIPPED
            draft.reason = "patient opted out of texts"
        elif draft.channel == Channel.SMS and patient.phone_refused:
            self._refused(draft, patient)
        else:
            self._sent(draft)

    def _refused(self, draft: _Draft, patient: _Patient) -> None:
        """The first text fails at Twilio (21211); sending skips every later one."""
        if patient.row.pk not in self.refused:
            self.refused.add(patient.row.pk)
            draft.status, draft.reason, draft.provider_error = Sent.FAILED, "Twilio 400 21211", "21211"
            draft.attempts, draft.started_at = 1, self._went(draft)
        else:
            draft.status, draft.reason = Sent.SKIPPED, "phone refused earlier: invalid phone number"

    def _sent(self, draft: _Draft) -> None:
        draft.attempts = 1
        draft.started_at = self._went(draft)
        draft.sent_at = draft.started_at + timedelta(seconds=self.rng.uniform(0.2, 2))
        draft.status = Sent.SENT
        if draft.channel != Channel.SMS:
            return
        _, status, codes = self.rng.choices(TEXT_ENDS, [end[0] for end in TEXT_ENDS])[0]
        draft.status, draft.provider_error = status, self.rng.choice(codes)
        if status == Sent.DELIVERED:
            draft.delivered_at = draft.sent_at + timedelta(seconds=self.rng.uniform(2, 30))

    def _went(self, draft: _Draft) -> datetime:
        """The tick runs each minute: a message goes out within a minute of falling due."""
        return draft.due + timedelta(seconds=self.rng.uniform(1, 60))


def _in_window(moment: datetime, zone: ZoneInfo, window: tuple[time, time]) -> bool:
    return window[0] <= moment.astimezone(zone).time() < window[1]


def _window_opening_after(moment: datetime, zone: ZoneInfo, window: tuple[time, time]) -> datetime:
    local = moment.astimezone(zone)
    day = local.date() if local.time() < window[0] else local.date() + timedelta(days=1)
    return wall_clock(day, window[0], zone)


def _window_closing_before(moment: datetime, zone: ZoneInfo, window: tuple[time, time]) -> datetime:
    local = moment.astimezone(zone)
    day = local.date() if local.time() >= window[1] else local.date() - timedelta(days=1)
    return wall_clock(day, window[1], zone) - QUIET_MARGIN


def _messages_create(
    clinic: Clinic, drafts: list[_Draft], sessions: list[list[Session]], people: list[_Patient]
) -> None:
    zone = clinic.zone
    rows = []
    for n, draft in enumerate(drafts):
        visit = draft.visit
        session = sessions[visit.series][visit.number - 1]
        patient = people[visit.patient].row
        text = draft.channel == Channel.SMS
        local = visit.starts.astimezone(zone)
        body = (SMS_BODY if text else EMAIL_BODY).format(day=f"{local:%a %-d %b}", at=f"{local:%H:%M}")
        rows.append(
            Message(
                session_id=session.pk, clinic_id=clinic.pk, patient_id=patient.pk, purpose=draft.purpose,
                rule_id=draft.rule_id, key=draft.key, channel=draft.channel, session_version=1, due_at=draft.due,
                expires_at=visit.starts, status=draft.status, reason=draft.reason, attempts=draft.attempts,
                recipient=patient.phone if text else patient.email,
                body_redacted=body if draft.started_at else "",
                provider_id=_provider_id(clinic, n, text=text) if draft.sent_at else None,
                provider_error=draft.provider_error, sending_started_at=draft.started_at, sent_at=draft.sent_at,
                delivered_at=draft.delivered_at,
            )
        )  # fmt: skip
    rows_create(rows)
    for row, draft in zip(rows, drafts, strict=True):
        row.created_at = draft.planned_at
    rows_update(rows, ["created_at"])


def _provider_id(clinic: Clinic, n: int, *, text: bool) -> str:
    """A Twilio message SID or an email's Message-ID: unique, as the database requires."""
    return f"SM{clinic.pk:08x}{n:024x}" if text else f"<history-{clinic.pk}-{n}@mail.example.com>"
