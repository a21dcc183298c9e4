"""Turn a message row into the words that go out, in the patient's language."""

from dataclasses import dataclass
from datetime import datetime, time

from django.conf import settings
from django.utils import timezone

from sessions.clock import local_date
from sessions.models import Session

from .models import CANCELLATIONS, Channel, Message, Purpose
from .patient_text import in_language, short_date_text, short_time_text
from .transports.email import Invite
from .wording import (
    COMPACT_CANCELLED_SMS,
    COMPACT_OFFER_SMS,
    COMPACT_RECALL_SMS,
    COMPACT_SMS,
    default_wording,
    fill,
    fits_one_segment,
    gsm7_safe,
    placeholders_in,
    schedule_line,
    wording_for,
)


@dataclass(frozen=True)
class Rendered:
    subject: str
    body: str
    invites: tuple[Invite, ...] = ()


def patient_url(token: str) -> str:
    return f"{settings.PUBLIC_BASE_URL.rstrip('/')}/r/{token}"


_COMPACT = {Purpose.CANCELLED: COMPACT_CANCELLED_SMS, Purpose.CANCEL_ALL: COMPACT_CANCELLED_SMS,
            Purpose.OFFER: COMPACT_OFFER_SMS, Purpose.RECALL: COMPACT_RECALL_SMS}  # fmt: skip


def render(message: Message, *, token: str) -> Rendered | None:
    """The message's words; None for a text that cannot fit one GSM-7 segment in any wording."""
    language = message.patient.language
    clinic_id = message.owner.clinic_id
    if message.session_id is None:
        values = _owner_values(message, token, language)
    else:
        values = _values(message, token, language)
    if message.channel == Channel.EMAIL:
        wording = wording_for(clinic_id, message.purpose, Channel.EMAIL, language)
        body = fill(wording.body, values)
        if message.session_id is None:
            return Rendered(fill(wording.subject, values), body)
        instructions = message.session.series.protocol.instructions_in(language)
        if message.purpose not in CANCELLATIONS and instructions:
            body += "\n\n" + instructions
        return Rendered(fill(wording.subject, values), body, _invites(message, language))
    with in_language(language):
        compact_text = str(_COMPACT.get(message.purpose, COMPACT_SMS))
    candidates = [
        wording_for(clinic_id, message.purpose, Channel.SMS, language).body,
        default_wording(message.purpose, Channel.SMS, language).body,
        compact_text,
    ]
    for text in candidates:
        body = gsm7_safe(fill(text, values))
        # A wording saved before every text had to carry the link is passed over: the link's
        # token is the text's identity in Twilio's log.
        if "link" in placeholders_in(text) and fits_one_segment(body):
            return Rendered("", body)
    return None


class _Values(dict):
    """The placeholders' values; the series' schedule is read only by a wording that uses it."""

    def __init__(self, values: dict[str, str], session: Session, language: str) -> None:
        super().__init__(values)
        self.session, self.language = session, language

    def __missing__(self, key: str) -> str:
        if key != "schedule":
            raise KeyError(key)
        self[key] = _schedule(self.session, self.language)
        return self[key]


def _schedule(session: Session, language: str) -> str:
    """The series' visits still to come, from this one on, one a line."""
    zone, count = session.clinic.zone, session.series.protocol.session_count
    upcoming = _still_to_come(session)
    return "\n".join(schedule_line(s.number, count, s.starts_at.astimezone(zone), language) for s in upcoming)


def _still_to_come(session: Session):
    return (
        session.series.sessions.filter(status__in=Session.UPCOMING, starts_at__gte=session.starts_at)
        .select_related("clinic")
        .order_by("starts_at")
    )


def _values(message: Message, token: str, language: str) -> dict[str, str]:
    session = message.session
    count = session.series.protocol.session_count
    if message.purpose == Purpose.BOOKED:
        count = session.series.sessions.filter(status__in=session.UPCOMING).count() or 1
    values = _placeholders(session.clinic, session.starts_at, session.series.protocol, token, language)
    return _Values({**values, "number": str(session.number), "count": str(count)}, session, language)


def _owner_values(message: Message, token: str, language: str) -> dict[str, str]:
    """An offer's or a recall's placeholders: the offered time, or the first day a booster is due."""
    clinic = message.clinic
    if message.offer is not None:
        moment, protocol = message.offer.opening.starts_at, message.offer.entry.protocol
    else:
        recall = message.recall
        day = max(recall.next_on, local_date(timezone.now(), clinic.zone))
        moment, protocol = datetime.combine(day, time(12), clinic.zone), recall.protocol
    return {**_placeholders(clinic, moment, protocol, token, language), "schedule": ""}


def _placeholders(clinic, moment: datetime, protocol, token: str, language: str) -> dict[str, str]:
    """Every placeholder a wording may use, for a visit of `protocol` at `moment`: the first of
    its sessions unless the caller says which."""
    local = moment.astimezone(clinic.zone)
    return {
        "clinic": clinic.sender_name,
        "date": short_date_text(local, language),
        "time": short_time_text(local, language),
        "link": patient_url(token),
        "phone": clinic.phone,
        "address": clinic.address,
        "number": "1",
        "count": str(protocol.session_count),
        "visit": protocol.patient_name_in(language),
    }


def _invites(message: Message, language: str) -> tuple[Invite, ...]:
    """The calendar event the email adds, moves or withdraws. A series' cancellation, sent on its
    first cancelled visit, withdraws the event of every visit cancelled with it."""
    session = message.session
    if message.purpose == Purpose.REFLOWED:
        return tuple(_invite(visit, language, cancelled=False) for visit in _still_to_come(session))
    if message.purpose != Purpose.CANCEL_ALL:
        return (_invite(session, language, cancelled=message.purpose == Purpose.CANCELLED),)
    withdrawn = session.series.sessions.filter(status=session.Status.CANCELLED, starts_at__gte=session.starts_at)
    visits = withdrawn.select_related("clinic").order_by("starts_at")
    return tuple(_invite(visit, language, cancelled=True) for visit in visits)


def _invite(session: Session, language: str, *, cancelled: bool) -> Invite:
    clinic = session.clinic
    return Invite(
        uid=f"session-{session.pk}@{settings.EMAIL_MESSAGE_ID_DOMAIN}",
        sequence=session.version,
        starts_at=session.starts_at,
        ends_at=session.ends_at,
        summary=f"{session.series.protocol.patient_name_in(language)} – {clinic.sender_name}",
        location=clinic.address,
        cancelled=cancelled,
    )
