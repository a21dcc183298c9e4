"""Patients' replies by text: confirm, ask to reschedule, opt out or in, ask for help, or write
something only a person can answer.

Each inbound text is stored under its Twilio MessageSid before anything acts on it, in the same
transaction as the action: a replayed webhook (Twilio retries, or an attacker replaying a
signed request) finds the row taken and does nothing twice.
"""

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from sessions.audit import untracked
from sessions.locking import lock_patients
from sessions.models import Patient, Session
from sessions.services import audit_record, session_confirm

from . import links, staff_tasks
from .metrics import inbound_count, messages_end
from .models import Channel, InboundSms, InboxText, Message, StaffFlag
from .patient_text import in_language, short_date_text, short_time_text
from .rendering import patient_url
from .wording import gsm7_safe

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
    "confirmed": _("{clinic}: thank you, your visit {date} {time} is confirmed."),
    "nothing": _("{clinic}: you have no visit waiting to be confirmed. Questions: {phone}."),
    "which": _("{clinic}: which visit? Choose here: {links}"),
    "reschedule": _("{clinic}: choose a new time here: {links}"),
    "opted_out": _("{clinic}: you will get no more texts from us. Reply START to get them again."),
    "opted_in": _("{clinic}: texts are back on. Reply STOP to stop them."),
    "help": _("{clinic}: call us at {phone}. Reply C to confirm, R to reschedule, STOP to stop texts."),
    "help_many": _("Call {clinic}. Reply C to confirm, R to reschedule, STOP to stop texts."),
    "ack": _("{clinic}: thank you, we have your message and will get back to you. Urgent? Call {phone}."),
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
    body = text_storable(incoming.body)
    with transaction.atomic():
        try:
            with transaction.atomic():
                inbound = InboundSms.objects.create(
                    sid=text_storable(incoming.sid),
                    from_number=text_storable(incoming.from_number),
                    to_number=text_storable(incoming.to_number),
                    body=body,
                    received_at=now,
                    command=command_of(body),
                )
        except IntegrityError:
            return None  # this MessageSid was handled already, or is being handled right now
        inbound_count(command=inbound.command)
        _act(inbound, now)
        inbound.save()
    return inbound.reply or None


def text_storable(text: str) -> str:
    """A carrier may deliver control characters (a NUL byte) that PostgreSQL's text cannot hold;
    the text is kept, and acted on, with each one shown as U+FFFD."""
    return "".join("\ufffd" if unicodedata.category(ch) == "Cc" and ch not in "\n\r\t" else ch for ch in text)


@dataclass
class _Text:
    """An inbound text being acted on: the patients its number belongs to and, per clinic, the
    inbox row that clinic's staff will see."""

    inbound: InboundSms
    patients: list[Patient]
    copies: dict[int, InboxText]

    def copy_for(self, patient: Patient) -> InboxText:
        return self.copies[patient.clinic_id]

    def note(self, outcome: str, *, needs_staff: bool = False) -> None:
        """The same outcome for every clinic (an opt-out, a note for staff)."""
        for copy in self.copies.values():
            copy.outcome, copy.needs_staff = outcome, needs_staff


def _act(inbound: InboundSms, now: datetime) -> None:
    patients = list(Patient.objects.select_related("clinic").filter(phone=inbound.from_number).order_by("pk"))
    if not patients:
        inbound.outcome, inbound.reply = "unknown number", UNKNOWN_NUMBER_REPLY
        return
    lock_patients(patient_ids=[p.pk for p in patients])
    text = _Text(inbound, patients, _copies(inbound, patients))
    handler = {
        Command.CONFIRM: _confirm,
        Command.RESCHEDULE: _reschedule,
        Command.OPT_OUT: _opt_out,
        Command.OPT_IN: _opt_in,
        Command.HELP: _help,
        Command.OTHER: _for_staff,
    }[inbound.command]
    handler(text, now)
    if len(text.copies) == 1:
        next(iter(text.copies.values())).reply = inbound.reply
    InboxText.objects.bulk_create(text.copies.values())


def _copies(inbound: InboundSms, patients: list[Patient]) -> dict[int, InboxText]:
    by_clinic: dict[int, list[Patient]] = {}
    for patient in patients:
        by_clinic.setdefault(patient.clinic_id, []).append(patient)
    return {
        clinic_id: InboxText(inbound=inbound, clinic_id=clinic_id, patient=own[0] if len(own) == 1 else None)
        for clinic_id, own in by_clinic.items()
    }


def _confirm(text: _Text, now: datetime) -> None:
    inbound, patients = text.inbound, text.patients
    patient = patients[0]
    if len(patients) > 1:
        # A shared phone: never guess whose visit "C" meant.
        _answer_with_links(text, now, "which", outcome="shared phone: sent links")
        return
    upcoming = _upcoming(patient, now).filter(status=Session.Status.BOOKED)
    session = upcoming.first()
    if session is None:
        inbound.outcome, inbound.reply = "nothing to confirm", _say(patient, "nothing")
        text.note(inbound.outcome)
        return
    texted_about = _last_texted_session(patient)
    if texted_about is not None and texted_about.pk != session.pk and texted_about.status == Session.Status.BOOKED:
        # Our last text was about a later visit than the next unconfirmed one: ask, don't guess.
        inbound.outcome = "ambiguous: sent links"
        inbound.reply = _say(patient, "which", links=_links([session, texted_about]))
        text.note(inbound.outcome)
        return
    session_confirm(session=session, via=Session.Channel.SMS, now=now)
    inbound.outcome = "confirmed"
    inbound.reply = _say(patient, "confirmed", session=session)
    copy = text.copy_for(patient)
    copy.session, copy.outcome = session, f"confirmed session {session.number}"


def _reschedule(text: _Text, now: datetime) -> None:
    # Times are never offered or taken by text: the link does it, and holds the minimum notice (rule 13).
    _answer_with_links(text, now, "reschedule", outcome="sent the reschedule link")


def _answer_with_links(text: _Text, now: datetime, key: str, *, outcome: str) -> None:
    found = [(p, s) for p, s in ((p, _upcoming(p, now).first()) for p in text.patients) if s is not None]
    if not found:
        text.inbound.outcome, text.inbound.reply = "no upcoming visit", _say(text.patients[0], "nothing")
        text.note("no upcoming visit")
        return
    text.note("no upcoming visit here")
    for clinic_id, copy in text.copies.items():
        # Each clinic hears only of its own patients' visits.
        own = [session for patient, session in found if patient.clinic_id == clinic_id]
        if own:
            copy.session = own[0] if len(own) == 1 else None
            copy.outcome = outcome
    text.inbound.outcome = outcome
    text.inbound.reply = _say(text.patients[0], key, links=_links([s for _, s in found]))


def _opt_out(text: _Text, now: datetime) -> None:
    inbound = text.inbound
    said_cancel = _words(inbound.body)[:1] == ["CANCEL"]
    # A STOP stops every text to this phone, whichever clinic sent it: carriers block the sender
    # number for the phone, not for one clinic.
    for patient in text.patients:
        if patient.sms_opted_out_at is None:
            patient.sms_opted_out_at = now
            with untracked():  # recorded as "opted_out" below
                patient.save(update_fields=["sms_opted_out_at"])
        texts = Message.objects.filter(patient=patient, channel=Channel.SMS, status__in=Message.PENDING)
        messages_end(texts, status=Message.Status.CANCELLED, reason="patient opted out of texts", now=now)
        audit_record(patient=patient.pk, action="opted_out", via=Session.Channel.SMS, at=now, detail=inbound.body[:100])
        if said_cancel:
            StaffFlag.objects.create(
                patient=patient,
                session=_upcoming(patient, now).first(),
                kind=StaffFlag.Kind.CANCEL_WORD,
                detail="Replied CANCEL: texts are stopped, the visit is still booked. Did they mean the visit?",
            )
        else:  # the CANCEL flag above already tells staff that texts are stopped
            staff_tasks.opted_out_task_raise(patient=patient, now=now)
    inbound.outcome = "opted out" + (" (said CANCEL: staff flagged)" if said_cancel else "")
    text.note(inbound.outcome, needs_staff=said_cancel)
    inbound.reply = _say(text.patients[0], "opted_out")


def _opt_in(text: _Text, now: datetime) -> None:
    for patient in text.patients:
        patient.sms_opted_out_at = None
        with untracked():  # recorded as "opted_in" below
            patient.save(update_fields=["sms_opted_out_at"])
        audit_record(patient=patient.pk, action="opted_in", via=Session.Channel.SMS, at=now)
    text.inbound.outcome, text.inbound.reply = "opted in", _say(text.patients[0], "opted_in")
    text.note("opted in")


def _help(text: _Text, now: datetime) -> None:
    text.inbound.outcome, text.inbound.reply = "sent help", _say_help(text.patients)
    text.note("sent help")


def _for_staff(text: _Text, now: datetime) -> None:
    inbound, first = text.inbound, text.patients[0]
    text.note("in the staff inbox", needs_staff=True)
    inbound.outcome = "in the staff inbox"
    local_day = now.astimezone(first.zone).replace(hour=0, minute=0, second=0, microsecond=0)
    acknowledged = InboundSms.objects.filter(
        from_number=inbound.from_number, command=Command.OTHER, received_at__gte=local_day
    ).exclude(reply="")
    if not acknowledged.exists():  # one acknowledgement a day, however much they write
        inbound.reply = _say(first, "ack")


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
        # An offer's or a recall's text names no session: a reply to it is about their visits.
        Message.objects.filter(patient=patient, channel=Channel.SMS, status__in=Message.WENT_OUT, session__isnull=False)
        .select_related("session")
        .order_by("-sending_started_at")
        .first()
    )
    return last.session if last else None


def _links(sessions: list[Session]) -> str:
    return " ".join(patient_url(links.link_create(session=s)) for s in sessions)


def _say(patient: Patient, key: str, *, session: Session | None = None, links: str = "") -> str:
    clinic = patient.clinic
    values = {"clinic": clinic.sender_name, "phone": clinic.phone, "links": links, "date": "", "time": ""}
    if session is not None:
        local = session.starts_at.astimezone(clinic.zone)
        values.update(date=short_date_text(local, patient.language), time=short_time_text(local, patient.language))
    with in_language(patient.language):
        return gsm7_safe(str(_REPLIES[key]).format(**values))


def _say_help(patients: list[Patient]) -> str:
    """HELP names the clinic and its phone; a number that several clinics text hears of each."""
    clinics = list({p.clinic_id: p.clinic for p in patients}.values())
    if len(clinics) == 1:
        return _say(patients[0], "help")
    names = "; ".join(f"{c.sender_name} {c.phone}" for c in clinics)
    with in_language(patients[0].language):
        return gsm7_safe(str(_REPLIES["help_many"]).format(clinic=names))
