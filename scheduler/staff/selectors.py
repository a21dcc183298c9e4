"""Reads for the staff pages.

They join the booking core with the notifications app, which is why they live in the project
and not in either app: `sessions/` must never import `notifications/`. Every read is scoped by
`sessions.access`, the one place that decides which clinics a user may see.
"""

import unicodedata
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import reduce
from operator import and_
from zoneinfo import ZoneInfo

from django.db import connection
from django.db.models import Count, Exists, F, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.db.models.functions import TruncDate
from django.utils import timezone

from notifications.models import Channel, InboxText, Message, OutboxText, StaffFlag
from sessions.access import within_clinics
from sessions.clock import day_bounds, local_date
from sessions.models import AuditEvent, Clinic, Patient, PatientNote, Series, Session, SessionMove, WaitlistEntry
from sessions.selectors import series_gaps, session_neighbours, sessions_for_day

FAILED_MESSAGE = (Message.Status.FAILED, Message.Status.UNDELIVERED)
SEARCH_LIMIT = 25
AUDIT_LIMIT = 200
NOTES_LIMIT = 50


def patients_for(user) -> QuerySet[Patient]:
    return within_clinics(Patient.objects.all(), user)


def waitlist_for(user) -> QuerySet[WaitlistEntry]:
    return within_clinics(WaitlistEntry.objects.all(), user)


def sessions_for(user) -> QuerySet[Session]:
    return within_clinics(Session.objects.all(), user).select_related("clinic", "patient", "chair", "series__protocol")


def patients_search(*, user, query: str) -> list[Patient]:
    """Patients whose name, MRN or phone holds every word of `query`, accents aside on PostgreSQL
    ("Lucia" finds "Lucía", and "Lucía" "Lucia"); digits of a phone match however it was typed
    ("602 555 0101" finds +16025550101). With no query, the patients seen to most recently."""
    if not query.split():
        return patients_recent(user=user)
    unaccented = connection.vendor == "postgresql"
    words = [_folded(word) if unaccented else word for word in query.split()]
    name = "__unaccent__icontains" if unaccented else "__icontains"
    digits = "".join(ch for ch in query if ch.isdigit())
    by_words = reduce(
        and_,
        (
            Q(**{f"first_name{name}": w}) | Q(**{f"last_name{name}": w}) | Q(external_id__icontains=w)
            | Q(phone__contains=w)
            for w in words
        ),
    )  # fmt: skip
    found = by_words | Q(phone__contains=digits) if len(digits) >= 4 else by_words
    return list(patients_for(user).filter(found).select_related("clinic")[:SEARCH_LIMIT])


def patients_recent(*, user) -> list[Patient]:
    """The patients with the latest booking activity (a series booked), then the newest registered."""
    latest = Series.objects.filter(patient=OuterRef("pk")).order_by("-created_at").values("created_at")[:1]
    return list(
        patients_for(user)
        .annotate(last_booked=Subquery(latest))
        .select_related("clinic")
        .order_by(F("last_booked").desc(nulls_last=True), "-created_at")[:SEARCH_LIMIT]
    )


def _folded(word: str) -> str:
    """The word without its accents: "Lucía" is "Lucia", as unaccent() makes the stored names."""
    return "".join(ch for ch in unicodedata.normalize("NFKD", word) if not unicodedata.combining(ch))


def board_sessions(*, clinic: Clinic, day: date) -> list[Session]:
    """The day's sessions with what their badges and buttons need, in one query however many
    there are. `number_held`: another session (a make-up) holds its number, so a cancel or a
    no-show can no longer be taken back."""
    failed = Message.objects.filter(session=OuterRef("pk"), status__in=FAILED_MESSAGE)
    return list(
        sessions_for_day(clinic=clinic, day=day)
        .select_related("patient__contact_status")
        .annotate(message_failed=Exists(failed), number_held=Exists(_number_held_by_another()))
    )


def sessions_per_day(*, clinic: Clinic, first: date, last: date) -> dict[date, int]:
    """Held sessions (booked, confirmed, arrived, completed) per day of the clinic's calendar from
    `first` to `last`, counted by the database: the month grid beside the board."""
    rows = (
        Session.objects.filter(
            clinic=clinic,
            status__in=Session.HOLDING,
            starts_at__gte=day_bounds(first, clinic.zone)[0],
            starts_at__lt=day_bounds(last, clinic.zone)[1],
        )  # fmt: skip
        .annotate(day=TruncDate("starts_at", tzinfo=clinic.zone))
        .values("day")
        .annotate(n=Count("pk"))
        .order_by()
    )
    return {row["day"]: row["n"] for row in rows}


def _number_held_by_another() -> QuerySet[Session]:
    return Session.objects.filter(
        series_id=OuterRef("series_id"), number=OuterRef("number"), status__in=Session.HOLDING
    ).exclude(pk=OuterRef("pk"))


@dataclass(frozen=True)
class Marks:
    """The attendance buttons a session offers now (rule 15). `undo` is the permission its undo
    needs: mark_attendance to take back a mark, cancel_session a cancel; "" when there is none."""

    arrive: bool
    complete: bool
    no_show: bool
    undo: str

    @property
    def any(self) -> bool:
        return self.arrive or self.complete or self.no_show


def session_marks(*, session: Session, zone: ZoneInfo, now: datetime, number_held: bool) -> Marks:
    """Arrivals are marked on the session's day, a no-show once it has begun. A cancel is taken
    back only while its time is still to come and no make-up holds its number."""
    upcoming = session.status in Session.UPCOMING
    undo = ""
    if session.status in (Session.Status.ARRIVED, Session.Status.COMPLETED):
        undo = "mark_attendance"
    elif session.status == Session.Status.NO_SHOW and not number_held:
        undo = "mark_attendance"
    elif session.status == Session.Status.CANCELLED and not number_held and session.starts_at > now:
        undo = "cancel_session"
    return Marks(
        arrive=upcoming and local_date(session.starts_at, zone) == local_date(now, zone),
        complete=session.status == Session.Status.ARRIVED,
        no_show=upcoming and session.starts_at <= now,
        undo=undo,
    )


@dataclass(frozen=True)
class GapNotice:
    """Why a series is off its protocol (rule 12) and the session whose re-flow page puts it
    right: the missed one to make up, or the one still to come to re-space from. `session_id` is
    None when nothing still to come can (the sessions around the gap have taken place)."""

    number: int
    text: str
    session_id: int | None
    makeup: bool


def series_gap_notices(*, series_ids: Collection[int], now: datetime | None = None) -> dict[int, list[GapNotice]]:
    """`series_gaps` with the session to act on for each gap. Two queries however many series,
    the second only when one of them is off protocol."""
    gaps = series_gaps(series_ids=series_ids)
    if not gaps:
        return {}
    now = now or timezone.now()
    numbered: dict[tuple[int, int], list[tuple[int, str, datetime]]] = {}
    rows = Session.objects.filter(series_id__in=gaps).order_by("-starts_at")
    for series_id, number, pk, status, starts_at in rows.values_list(
        "series_id", "number", "pk", "status", "starts_at"
    ):
        numbered.setdefault((series_id, number), []).append((pk, status, starts_at))
    return {
        series_id: [
            GapNotice(gap.number, gap.text, *_remedy(numbered.get((series_id, gap.number), []), now)) for gap in found
        ]
        for series_id, found in gaps.items()
    }


def _remedy(sessions: list[tuple[int, str, datetime]], now: datetime) -> tuple[int | None, bool]:
    """Of the sessions with the gap's number (latest first): one still to come is re-flowed
    from; else, when none holds the number, the latest missed one is made up."""
    for pk, status, starts_at in sessions:
        if status in Session.UPCOMING and starts_at > now:
            return pk, False
    if any(status in Session.HOLDING for _, status, _ in sessions):
        return None, False
    missed = [pk for pk, status, _ in sessions if status in (Session.Status.CANCELLED, Session.Status.NO_SHOW)]
    return (missed[0], True) if missed else (None, False)


def session_gap_window(*, session: Session) -> tuple[date, date] | None:
    """The days the series gap leaves `session` alone, between the sessions held before and
    after it (the first may fall after the last: then no day is left). None when nothing binds."""
    previous, following = session_neighbours(session=session)
    if previous is None and following is None:
        return None
    protocol, zone = session.series.protocol, session.clinic.zone
    first, last = date.min, date.max
    if previous is not None:
        first = local_date(previous, zone) + timedelta(days=protocol.min_gap_days)
        last = local_date(previous, zone) + timedelta(days=protocol.max_gap_days)
    if following is not None:
        first = max(first, local_date(following, zone) - timedelta(days=protocol.max_gap_days))
        last = min(last, local_date(following, zone) - timedelta(days=protocol.min_gap_days))
    return first, last


@dataclass(frozen=True)
class SessionRow:
    session: Session
    marks: Marks
    # Another session (its make-up) holds its number: a cancelled or missed one is made good.
    number_held: bool

    @property
    def sid(self) -> str:
        return str(self.session.pk)


@dataclass(frozen=True)
class SeriesRow:
    series: Series
    gaps: list[GapNotice]
    sessions: list[SessionRow]


@dataclass(frozen=True)
class SeriesMessages:
    series: Series
    done: list[Message]
    planned: list[Message]


@dataclass(frozen=True)
class PatientRecord:
    patient: Patient
    series: list[Series]
    messages: list[Message]
    inbound: list[InboxText]
    open_flags: list[StaffFlag]
    audit: list[AuditEvent]
    notes: list[PatientNote]
    gaps: dict[int, list[GapNotice]] = field(default_factory=dict)
    now: datetime = field(default_factory=timezone.now)

    @property
    def series_rows(self) -> list[SeriesRow]:
        """Each series with why it is off protocol, if it is, and each session's buttons."""
        rows = []
        for series in self.series:
            sessions = list(series.sessions.all())
            held: dict[int, int] = {}
            for session in sessions:
                if session.status in Session.HOLDING:
                    held[session.number] = held.get(session.number, 0) + 1
            zone = series.clinic.zone
            session_rows = []
            for session in sessions:
                number_held = _held_by_another(session, held)
                marks = session_marks(session=session, zone=zone, now=self.now, number_held=number_held)
                session_rows.append(SessionRow(session, marks, number_held))
            rows.append(SeriesRow(series, self.gaps.get(series.pk, []), session_rows))
        return rows

    @property
    def offer_and_recall_messages(self) -> list[Message]:
        return [m for m in self.messages if m.session_id is None]

    @property
    def messages_by_series(self) -> list[SeriesMessages]:
        """Each series' messages, newest series first as the page lists them, in the order they
        were due: what went out (or was withdrawn), then what is still to go."""
        by_series: dict[int, list[Message]] = {}
        for message in self.messages:
            if message.session is not None:  # an offer's or a recall's: offer_and_recall_messages
                by_series.setdefault(message.session.series_id, []).append(message)
        return [
            SeriesMessages(
                series=series,
                done=[m for m in found if m.status not in Message.PENDING],
                planned=[m for m in found if m.status in Message.PENDING],
            )
            for series in self.series
            if (found := by_series.get(series.pk))
        ]


def _held_by_another(session: Session, held: dict[int, int]) -> bool:
    return held.get(session.number, 0) > (1 if session.status in Session.HOLDING else 0)


def patient_record(*, patient: Patient, now: datetime | None = None) -> PatientRecord:
    moves = SessionMove.objects.select_related("from_chair", "to_chair", "moved_by")
    sessions = Session.objects.select_related("chair").prefetch_related(Prefetch("moves", queryset=moves))
    series = list(
        Series.objects.filter(patient=patient)
        .select_related("protocol", "clinic", "created_by")
        .prefetch_related(Prefetch("sessions", queryset=sessions.order_by("number", "starts_at")))
    )
    messages = (
        Message.objects.filter(patient=patient).select_related("clinic", "session", "rule").order_by("due_at", "id")
    )
    # A phone shared by two of the clinic's patients leaves the text unassigned: it belongs on
    # both their pages. Another clinic's copy of the text is never shown here.
    texts = InboxText.objects.filter(clinic_id=patient.clinic_id).filter(
        Q(patient=patient) | (Q(patient=None, inbound__from_number=patient.phone) if patient.phone else Q(pk=None))
    )
    return PatientRecord(
        patient=patient,
        series=series,
        messages=list(messages),
        inbound=list(texts.select_related("inbound", "handled_by")),
        open_flags=list(StaffFlag.objects.filter(patient=patient, handled_at=None).select_related("session")),
        audit=list(AuditEvent.objects.filter(patient=patient).select_related("actor", "session")[:AUDIT_LIMIT]),
        notes=list(patient.notes.select_related("written_by")[:NOTES_LIMIT]),
        gaps=series_gap_notices(series_ids=[s.pk for s in series], now=now),
        now=now or timezone.now(),
    )


def inbox_texts_for(user) -> QuerySet[InboxText]:
    """Patients' texts as the user's clinics received them: each clinic its own copy."""
    return within_clinics(InboxText.objects.all(), user)


def flags_for(user) -> QuerySet[StaffFlag]:
    """Flags of the user's clinics: a visit's flag belongs to the clinic of the visit."""
    return within_clinics(StaffFlag.objects.all(), user)


@dataclass(frozen=True)
class FlagTask:
    """An open flag as the inbox shows it, with the page where its next step is taken: "reflow"
    (re-space the series or make up a missed visit), "move" or "patient"."""

    flag: StaffFlag
    action: str
    session_id: int | None


# A missed or cancelled visit is made up, and a series off protocol re-spaced, on the re-flow page.
FLAG_ACTIONS = {
    StaffFlag.Kind.SERIES_OFF_PROTOCOL: "reflow",
    StaffFlag.Kind.NO_SHOW: "reflow",
    StaffFlag.Kind.PATIENT_CANCELLED: "reflow",
    StaffFlag.Kind.LATE_MOVE: "move",
}


@dataclass(frozen=True)
class Inbox:
    texts: list[InboxText]
    flags: list[StaffFlag]
    tasks: list[FlagTask]


def inbox_open(*, user) -> Inbox:
    texts = (
        inbox_texts_for(user).filter(needs_staff=True, handled_at=None).select_related("inbound", "patient", "clinic")
    )
    flags = list(
        flags_for(user)
        .filter(handled_at=None)
        .select_related("clinic", "patient", "session__series__protocol", "series__protocol", "message")
        .order_by("created_at")
    )
    off_protocol = {f.series_id for f in flags if f.kind == StaffFlag.Kind.SERIES_OFF_PROTOCOL and f.series_id}
    notices = series_gap_notices(series_ids=off_protocol)
    return Inbox(
        texts=list(texts.order_by("inbound__received_at")),
        flags=flags,
        tasks=[_flag_task(flag, notices) for flag in flags],
    )


def _flag_task(flag: StaffFlag, notices: dict[int, list[GapNotice]]) -> FlagTask:
    """A series flag leads to the gap as it is now, which may have moved since the flag was raised."""
    target = flag.session_id
    if flag.kind == StaffFlag.Kind.SERIES_OFF_PROTOCOL:
        target = next((n.session_id for n in notices.get(flag.series_id, []) if n.session_id), target)
    action = FLAG_ACTIONS.get(flag.kind, "patient")
    return FlagTask(flag, action if target is not None else "patient", target)


def inbox_open_count(*, user) -> int:
    """Open texts and flags together, in one query: every staff page shows it."""
    # Unordered: SQLite refuses an ORDER BY inside a UNION.
    texts = inbox_texts_for(user).filter(needs_staff=True, handled_at=None).order_by().values("pk")
    flags = flags_for(user).filter(handled_at=None).order_by().values("pk")
    return texts.union(flags, all=True).count()


def outbox_for(user) -> QuerySet[OutboxText]:
    """Texts kept unsent, in the outbox of the clinic whose visit they are about, as the admin's
    outbox and the API's messages show them: a visiting patient's home clinic sees none of them."""
    return (
        within_clinics(OutboxText.objects.all(), user, path="message__session__clinic")
        .select_related("message__patient__clinic", "message__session")
        .order_by("-created_at", "-id")
    )


@dataclass(frozen=True)
class TextsWaiting:
    """Texts planned but not yet due: before the message window opens an empty outbox is no fault."""

    count: int
    next_due: Message | None


def texts_waiting_for(user, *, now: datetime | None = None) -> TextsWaiting:
    planned = within_clinics(
        Message.objects.filter(channel=Channel.SMS, status=Message.Status.PLANNED, due_at__gt=now or timezone.now()),
        user,
        path="session__clinic",
    )
    next_due = planned.select_related("patient__clinic").order_by("due_at", "id").first()
    return TextsWaiting(count=planned.count() if next_due else 0, next_due=next_due)
