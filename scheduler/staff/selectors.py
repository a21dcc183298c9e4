"""Reads for the staff pages.

They join the booking core with the notifications app, which is why they live in the project
and not in either app: `sessions/` must never import `notifications/`. Every read is scoped by
`sessions.access`, the one place that decides which clinics a user may see.
"""

from dataclasses import dataclass
from datetime import date
from functools import reduce
from operator import and_

from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet

from notifications.models import InboxText, Message, OutboxText, StaffFlag
from sessions.access import within_clinics
from sessions.models import AuditEvent, Clinic, Patient, Series, Session, SessionMove
from sessions.selectors import sessions_for_day

FAILED_MESSAGE = (Message.Status.FAILED, Message.Status.UNDELIVERED)
SEARCH_LIMIT = 25
AUDIT_LIMIT = 200


def patients_for(user) -> QuerySet[Patient]:
    return within_clinics(Patient.objects.all(), user)


def sessions_for(user) -> QuerySet[Session]:
    return within_clinics(Session.objects.all(), user).select_related("clinic", "patient", "chair", "series__protocol")


def patients_search(*, user, query: str) -> list[Patient]:
    """Patients whose name, MRN or phone holds every word of `query` (digits of a phone match
    however it was typed: "602 555 0101" finds +16025550101)."""
    words = query.split()
    if not words:
        return []
    digits = "".join(ch for ch in query if ch.isdigit())
    by_words = reduce(
        and_,
        (
            Q(first_name__icontains=w) | Q(last_name__icontains=w) | Q(external_id__icontains=w) | Q(phone__contains=w)
            for w in words
        ),
    )
    found = by_words | Q(phone__contains=digits) if len(digits) >= 4 else by_words
    return list(patients_for(user).filter(found).select_related("clinic")[:SEARCH_LIMIT])


def board_sessions(*, clinic: Clinic, day: date) -> list[Session]:
    """The day's sessions with what their badges need, in one query however many there are."""
    failed = Message.objects.filter(session=OuterRef("pk"), status__in=FAILED_MESSAGE)
    return list(
        sessions_for_day(clinic=clinic, day=day)
        .select_related("patient__contact_status")
        .annotate(message_failed=Exists(failed))
    )


@dataclass(frozen=True)
class PatientRecord:
    patient: Patient
    series: list[Series]
    messages: list[Message]
    inbound: list[InboxText]
    open_flags: list[StaffFlag]
    audit: list[AuditEvent]

    @property
    def messages_planned(self) -> list[Message]:
        """Still to go, soonest first."""
        return sorted((m for m in self.messages if m.status in Message.PENDING), key=lambda m: (m.due_at, m.pk))

    @property
    def messages_done(self) -> list[Message]:
        """Sent, failed or withdrawn, newest first."""
        return [m for m in self.messages if m.status not in Message.PENDING]


def patient_record(*, patient: Patient) -> PatientRecord:
    moves = SessionMove.objects.select_related("from_chair", "to_chair", "moved_by")
    sessions = Session.objects.select_related("chair").prefetch_related(Prefetch("moves", queryset=moves))
    series = (
        Series.objects.filter(patient=patient)
        .select_related("protocol", "clinic", "created_by")
        .prefetch_related(Prefetch("sessions", queryset=sessions.order_by("number")))
    )
    messages = Message.objects.filter(patient=patient).select_related("session__clinic").order_by("-due_at", "-id")
    # A phone shared by two of the clinic's patients leaves the text unassigned: it belongs on
    # both their pages. Another clinic's copy of the text is never shown here.
    texts = InboxText.objects.filter(clinic_id=patient.clinic_id).filter(
        Q(patient=patient) | (Q(patient=None, inbound__from_number=patient.phone) if patient.phone else Q(pk=None))
    )
    return PatientRecord(
        patient=patient,
        series=list(series),
        messages=list(messages),
        inbound=list(texts.select_related("inbound", "handled_by")),
        open_flags=list(StaffFlag.objects.filter(patient=patient, handled_at=None).select_related("session")),
        audit=list(AuditEvent.objects.filter(patient=patient).select_related("actor", "session")[:AUDIT_LIMIT]),
    )


def inbox_texts_for(user) -> QuerySet[InboxText]:
    """Patients' texts as the user's clinics received them: each clinic its own copy."""
    return within_clinics(InboxText.objects.all(), user)


def flags_for(user) -> QuerySet[StaffFlag]:
    """Flags of the user's clinics: a visit's flag belongs to the clinic of the visit."""
    return within_clinics(StaffFlag.objects.all(), user)


@dataclass(frozen=True)
class Inbox:
    texts: list[InboxText]
    flags: list[StaffFlag]


def inbox_open(*, user) -> Inbox:
    texts = (
        inbox_texts_for(user).filter(needs_staff=True, handled_at=None).select_related("inbound", "patient", "clinic")
    )
    flags = flags_for(user).filter(handled_at=None).select_related("patient__clinic", "session", "message")
    return Inbox(texts=list(texts.order_by("inbound__received_at")), flags=list(flags.order_by("created_at")))


def inbox_open_count(*, user) -> int:
    texts = inbox_texts_for(user).filter(needs_staff=True, handled_at=None).count()
    return texts + flags_for(user).filter(handled_at=None).count()


def outbox_for(user) -> QuerySet[OutboxText]:
    """Texts kept unsent, in the outbox of the clinic whose visit they are about, as the admin's
    outbox and the API's messages show them: a visiting patient's home clinic sees none of them."""
    return (
        within_clinics(OutboxText.objects.all(), user, path="message__session__clinic")
        .select_related("message__patient__clinic", "message__session")
        .order_by("-created_at", "-id")
    )
