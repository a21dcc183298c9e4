"""Patients' replies by text: confirm, ask to reschedule, opt out or in, ask for help, or write
something only a person can answer.

Each inbound text is stored under its Twilio MessageSid before anything acts on it, in the same
transaction as the action: a replayed webhook (Twilio retries, or an attacker replaying a
signed request) finds the row taken and does nothing twice.
"""

import re
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from sessions.models import Patient, Session
from sessions.services import audit_record, session_confirm

from . import links
from .models import Channel, InboundSms, Message, StaffFlag
from .rendering import patient_url
from .wording import local_date_text, local_time_text

Command = InboundSms.Command

# The carriers' and Twilio's standard opt-out words. CANCEL is one of them: it stops texts, it
# never cancels an appointment (staff get a flag in case the patient meant that).
OPT_OUT_WORDS = {"STOP", "STOPALL", "UNSUBSCRIBE", "END", "QUIT", "CANCEL", "REVOKE", "OPTOUT"}
OPT_OUT_PHRASES = ("STOP TEXTING", "STOP MESSAGING", "STOP SENDING", "OPT OUT", "UNSUBSCRIBE", "NO MORE TEXTS",
                   "DONT TEXT", "DO NOT TEXT", "REMOVE ME")  # fmt: skip
OPT_IN_WORDS = {"START", "UNSTOP"}
CONFIRM_WORDS = {"C", "1", "CONFIRM", "CONFIRMED"}
RESCHEDULE_WORDS = {"R", "2", "RESCHEDULE"}
HELP_WORDS = {"HELP", "INFO"}

_REPLIES = {
    "en": {
        "confirmed": "{clinic}: thank you, your visit {date} {time} is confirmed.",
        "nothing": "{clinic}: you have no visit waiting to be confirmed. Questions: {phone}.",
        "which": "{clinic}: which visit? Choose here: {links}",
        "reschedule": "{clinic}: choose a new time here: {links}",
        "opted_out": "{clinic}: you will get no more texts from us. Reply START to get them again.",
        "opted_in": "{clinic}: texts are back on. Reply STOP to stop them.",
        "help": "{clinic}: call us at {phone}. Reply C to confirm, R to reschedule, STOP to stop texts.",
        "ack": "{clinic}: thank you, we have your message and will get back to you. Urgent? Call {phone}.",
    },
    "es": {
        "confirmed": "{clinic}: gracias, su cita {date} {time} esta confirmada.",
        "nothing": "{clinic}: no tiene citas por confirmar. Dudas: {phone}.",
        "which": "{clinic}: cual cita? Elija aqui: {links}",
        "reschedule": "{clinic}: elija otro horario aqui: {links}",
        "opted_out": "{clinic}: no recibira mas mensajes. Responda START para recibirlos de nuevo.",
        "opted_in": "{clinic}: mensajes activados. Responda STOP para detenerlos.",
        "help": "{clinic}: llamenos al {phone}. Responda C para confirmar, R para cambiar, STOP para salir.",
        "ack": "{clinic}: gracias, recibimos su mensaje y le responderemos. Urgente? Llame al {phone}.",
    },
}
UNKNOWN_NUMBER_REPLY = "We could not match this number to a booking. Please call your clinic."


@dataclass(frozen=True)
class Incoming:
    sid: str
    from_number: str
    to_number: str
    body: str


def command_of(body: str) -> str:
    """Case and punctuation do not matter: "Stop." and "stop!!" are STOP."""
    words = _words(body)
    if not words:
        return Command.OTHER
    text = " ".join(words)
    if words[0] in OPT_OUT_WORDS or any(phrase in text for phrase in OPT_OUT_PHRASES):
        return Command.OPT_OUT
    if text in CONFIRM_WORDS:
        return Command.CONFIRM
    if text in RESCHEDULE_WORDS:
        return Command.RESCHEDULE
    if text in OPT_IN_WORDS:
        return Command.OPT_IN
    if text in HELP_WORDS:
        return Command.HELP
    return Command.OTHER


def inbound_handle(*, incoming: Incoming, now: datetime | None = None) -> str | None:
    """Act on one inbound text and return the reply, or None (a replay, or nothing to say)."""
    now = now or timezone.now()
    with transaction.atomic():
        try:
            with transaction.atomic():
                inbound = InboundSms.objects.create(
                    sid=incoming.sid,
                    from_number=incoming.from_number,
                    to_number=incoming.to_number,
                    body=incoming.body,
                    received_at=now,
                    command=command_of(incoming.body),
                )
        except IntegrityError:
            return None  # this MessageSid was handled already, or is being handled right now
        _act(inbound, now)
        inbound.save()
    return inbound.reply or None


def _act(inbound: InboundSms, now: datetime) -> None:
    patients = list(
        Patient.objects.select_related("clinic").select_for_update(of=("self",)).filter(phone=inbound.from_number)
    )
    if not patients:
        inbound.outcome, inbound.reply = "unknown number", UNKNOWN_NUMBER_REPLY
        return
    inbound.patient = patients[0] if len(patients) == 1 else None
    handler = {
        Command.CONFIRM: _confirm,
        Command.RESCHEDULE: _reschedule,
        Command.OPT_OUT: _opt_out,
        Command.OPT_IN: _opt_in,
        Command.HELP: _help,
        Command.OTHER: _for_staff,
    }[inbound.command]
    handler(inbound, patients, now)


def _confirm(inbound: InboundSms, patients: list[Patient], now: datetime) -> None:
    patient = patients[0]
    if len(patients) > 1:
        # A shared phone: never guess whose visit "C" meant.
        _answer_with_links(inbound, patients, now, "which", outcome="shared phone: sent links")
        return
    upcoming = _upcoming(patient, now).filter(status=Session.Status.BOOKED)
    session = upcoming.first()
    if session is None:
        inbound.outcome, inbound.reply = "nothing to confirm", _say(patient, "nothing")
        return
    texted_about = _last_texted_session(patient)
    if texted_about is not None and texted_about.pk != session.pk and texted_about.status == Session.Status.BOOKED:
        # Our last text was about a later visit than the next unconfirmed one: ask, don't guess.
        inbound.outcome = "ambiguous: sent links"
        inbound.reply = _say(patient, "which", links=_links([session, texted_about]))
        return
    session_confirm(session=session, via=Session.Channel.SMS, now=now)
    inbound.session = session
    inbound.outcome = "confirmed"
    inbound.reply = _say(patient, "confirmed", session=session)


def _reschedule(inbound: InboundSms, patients: list[Patient], now: datetime) -> None:
    _answer_with_links(inbound, patients, now, "reschedule", outcome="sent the reschedule link")


def _answer_with_links(inbound: InboundSms, patients: list[Patient], now: datetime, key: str, *, outcome: str) -> None:
    sessions = [s for s in (_upcoming(p, now).first() for p in patients) if s is not None]
    if not sessions:
        inbound.outcome, inbound.reply = "no upcoming visit", _say(patients[0], "nothing")
        return
    inbound.session = sessions[0] if len(sessions) == 1 else None
    inbound.outcome = outcome
    inbound.reply = _say(patients[0], key, links=_links(sessions))


def _opt_out(inbound: InboundSms, patients: list[Patient], now: datetime) -> None:
    said_cancel = _words(inbound.body)[:1] == ["CANCEL"]
    for patient in patients:
        if patient.sms_opted_out_at is None:
            patient.sms_opted_out_at = now
            patient.save(update_fields=["sms_opted_out_at"])
        Message.objects.filter(patient=patient, channel=Channel.SMS, status__in=Message.PENDING).update(
            status=Message.Status.CANCELLED, reason="patient opted out of texts", updated_at=now
        )
        audit_record(patient=patient.pk, action="opted_out", via=Session.Channel.SMS, at=now, detail=inbound.body[:100])
        if said_cancel:
            StaffFlag.objects.create(
                patient=patient,
                session=_upcoming(patient, now).first(),
                kind=StaffFlag.Kind.CANCEL_WORD,
                detail="Replied CANCEL: texts are stopped, the visit is still booked. Did they mean the visit?",
            )
    inbound.needs_staff = said_cancel
    inbound.outcome = "opted out" + (" (said CANCEL: staff flagged)" if said_cancel else "")
    inbound.reply = _say(patients[0], "opted_out")


def _opt_in(inbound: InboundSms, patients: list[Patient], now: datetime) -> None:
    for patient in patients:
        patient.sms_opted_out_at = None
        patient.save(update_fields=["sms_opted_out_at"])
        audit_record(patient=patient.pk, action="opted_in", via=Session.Channel.SMS, at=now)
    inbound.outcome, inbound.reply = "opted in", _say(patients[0], "opted_in")


def _help(inbound: InboundSms, patients: list[Patient], now: datetime) -> None:
    inbound.outcome, inbound.reply = "sent help", _say(patients[0], "help")


def _for_staff(inbound: InboundSms, patients: list[Patient], now: datetime) -> None:
    inbound.needs_staff = True
    inbound.outcome = "in the staff inbox"
    local_day = now.astimezone(patients[0].zone).replace(hour=0, minute=0, second=0, microsecond=0)
    acknowledged = InboundSms.objects.filter(
        from_number=inbound.from_number, command=Command.OTHER, received_at__gte=local_day
    ).exclude(reply="")
    if not acknowledged.exists():  # one acknowledgement a day, however much they write
        inbound.reply = _say(patients[0], "ack")


def _words(body: str) -> list[str]:
    return re.sub(r"[^\w\s]", " ", body.upper().replace("'", "")).split()


def _upcoming(patient: Patient, now: datetime):
    return (
        Session.objects.filter(patient=patient, status__in=Session.UPCOMING, starts_at__gt=now)
        .select_related("clinic")
        .order_by("starts_at")
    )


def _last_texted_session(patient: Patient) -> Session | None:
    last = (
        Message.objects.filter(patient=patient, channel=Channel.SMS, status__in=Message.WENT_OUT)
        .select_related("session")
        .order_by("-sending_started_at")
        .first()
    )
    return last.session if last else None


def _links(sessions: list[Session]) -> str:
    return " ".join(patient_url(links.link_create(session=s)) for s in sessions)


def _say(patient: Patient, key: str, *, session: Session | None = None, links: str = "") -> str:
    clinic = patient.clinic
    language = patient.language if patient.language in _REPLIES else "en"
    values = {"clinic": clinic.sender_name, "phone": clinic.phone, "links": links, "date": "", "time": ""}
    if session is not None:
        local = session.starts_at.astimezone(clinic.zone)
        values.update(date=local_date_text(local, language), time=local_time_text(local, language))
    return _REPLIES[language][key].format(**values)
