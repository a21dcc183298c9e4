"""What messages say: built-in wording per purpose, channel and language, a clinic's own wording
where it has some, and the checks that keep a text to one neutral GSM-7 segment.

Texts name the clinic's neutral sender name, the date and time in the clinic's zone, how to
confirm or reschedule, the patient link and how to stop — never the treatment. Dates are spelled
here rather than through the C locale, which a worker may not have for Spanish.
"""

import string
import unicodedata
from dataclasses import dataclass
from datetime import datetime

from sessions.models import Session
from sessions.validators import clinical_words_in

from .models import Channel, MessageTemplate, Purpose

SMS_LIMIT = 160

# GSM 03.38 basic set plus the extension characters (which take two septets each). Anything else
# forces UCS-2, which drops a segment to 70 characters and doubles or triples the price of a text.
_GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿"
    "abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = set("^{}\\[~]|€\f")

PLACEHOLDERS = {"clinic", "date", "time", "link", "phone", "number", "count", "address", "visit", "schedule"}

_DAYS = {
    "en": ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
    "es": ["lun", "mar", "mié", "jue", "vie", "sáb", "dom"],
}
_MONTHS = {
    "en": ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"],
    "es": ["ene", "feb", "mar", "abr", "may", "jun", "jul", "ago", "sep", "oct", "nov", "dic"],
}

_SMS = {
    ("booked", "en"): "{clinic}: visit booked {date} {time}. Reply C to confirm, R to reschedule. {link} STOP to end",
    ("booked", "es"): "{clinic}: cita reservada {date} {time}. Responda C para confirmar, R para cambiar. {link} "
    "STOP para salir",
    ("reminder", "en"): "{clinic}: visit {date} {time}. Reply C to confirm, R to reschedule. {link} STOP to end",
    (
        "reminder",
        "es",
    ): "{clinic}: cita {date} {time}. Responda C para confirmar, R para cambiar. {link} STOP para salir",
    (
        "moved",
        "en",
    ): "{clinic}: your visit is now {date} {time}. Reply C to confirm, R to reschedule. {link} STOP to end",
    ("moved", "es"): "{clinic}: su cita es ahora {date} {time}. Responda C para confirmar, R para cambiar. {link} "
    "STOP para salir",
    ("cancelled", "en"): "{clinic}: visit {date} {time} cancelled. Info: {link} or {phone}. STOP to end",
    ("cancelled", "es"): "{clinic}: cita {date} {time} cancelada. Info: {link} o {phone}. STOP para salir",
    ("cancel_all", "en"): "{clinic}: visits from {date} {time} cancelled. {link} or {phone}. STOP to end",
    ("cancel_all", "es"): "{clinic}: citas desde {date} {time} canceladas. {link} o {phone}. STOP para salir",
    ("reflowed", "en"): "{clinic}: new times for your visits, next {date} {time}. All: {link} STOP to end",
    ("reflowed", "es"): "{clinic}: nuevos horarios de sus citas, la próxima {date} {time}. {link} STOP para salir",
    ("link", "en"): "{clinic}: your visit {date} {time}. Reply C to confirm, R to reschedule. {link} STOP to end",
    ("link", "es"): "{clinic}: su cita {date} {time}. Responda C para confirmar, R para cambiar. {link} "
    "STOP para salir",
}

_EMAIL_SUBJECT = {
    ("booked", "en"): "Your visits at {clinic} are booked",
    ("booked", "es"): "Sus citas en {clinic} están reservadas",
    ("reminder", "en"): "Your visit at {clinic} on {date}",
    ("reminder", "es"): "Su cita en {clinic} el {date}",
    ("moved", "en"): "Your visit at {clinic} has moved to {date}",
    ("moved", "es"): "Su cita en {clinic} cambió al {date}",
    ("cancelled", "en"): "Your visit at {clinic} on {date} is cancelled",
    ("cancelled", "es"): "Su cita en {clinic} del {date} fue cancelada",
    ("cancel_all", "en"): "Your visits at {clinic} are cancelled",
    ("cancel_all", "es"): "Sus citas en {clinic} fueron canceladas",
    ("reflowed", "en"): "New times for your visits at {clinic}",
    ("reflowed", "es"): "Nuevos horarios de sus citas en {clinic}",
    ("link", "en"): "Your link for your visit at {clinic} on {date}",
    ("link", "es"): "Su enlace para su cita en {clinic} el {date}",
}

_EMAIL_BODY = {
    "en": "Hello,\n\n{intro}\n\nWhen: {date} at {time}\nWhere: {address}\nVisit {number} of {count}.\n\n"
    "Confirm or reschedule: {link}\nQuestions: call us at {phone}.\n\n{clinic}",
    "es": "Hola:\n\n{intro}\n\nCuándo: {date} a las {time}\nDónde: {address}\nCita {number} de {count}.\n\n"
    "Confirmar o cambiar: {link}\nDudas: llámenos al {phone}.\n\n{clinic}",
}
_EMAIL_INTRO = {
    ("booked", "en"): "Your visits are booked. Here is the first one.",
    ("booked", "es"): "Sus citas están reservadas. Esta es la primera.",
    ("reminder", "en"): "This is a reminder of your upcoming visit.",
    ("reminder", "es"): "Le recordamos su próxima cita.",
    ("moved", "en"): "Your visit has a new time.",
    ("moved", "es"): "Su cita tiene un nuevo horario.",
    ("cancelled", "en"): "Your visit has been cancelled. Call us to book a new time.",
    ("cancelled", "es"): "Su cita fue cancelada. Llámenos para reservar otra.",
    (
        "cancel_all",
        "en",
    ): "Your remaining visits have been cancelled, starting with this one. Call us to book new times.",
    ("cancel_all", "es"): "Sus citas pendientes fueron canceladas, desde esta. Llámenos para reservar otras.",
    ("reflowed", "en"): "Your visits have new times:\n\n{schedule}\n\nThe next one:",
    ("reflowed", "es"): "Sus citas tienen nuevos horarios:\n\n{schedule}\n\nLa próxima:",
    ("link", "en"): "Here is the link to your visit again: confirm it, choose another time or cancel it there.",
    ("link", "es"): "Aquí tiene de nuevo el enlace de su cita: allí puede confirmarla, elegir otra hora o cancelarla.",
}


@dataclass(frozen=True)
class Wording:
    subject: str
    body: str


def is_gsm7(text: str) -> bool:
    return all(ch in _GSM_BASIC or ch in _GSM_EXTENDED for ch in text)


def gsm7_safe(text: str) -> str:
    """`text` for one GSM-7 text: a letter the set lacks loses its accent ("sáb" is "sab", "día"
    "dia"; "é" and "ñ" are in the set and stay), so that a Spanish date or a clinic's address
    does not force UCS-2. Emails and pages keep every accent; only texts pass through here."""
    return "".join(ch if ch in _GSM_BASIC or ch in _GSM_EXTENDED else _unaccented(ch) for ch in text)


def _unaccented(ch: str) -> str:
    base = unicodedata.normalize("NFD", ch)[0]
    return base if base in _GSM_BASIC else ch


def gsm7_length(text: str) -> int:
    return sum(2 if ch in _GSM_EXTENDED else 1 for ch in text)


def fits_one_segment(text: str) -> bool:
    return is_gsm7(text) and gsm7_length(text) <= SMS_LIMIT


def placeholders_in(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def template_problems(template: MessageTemplate) -> dict[str, str]:
    """What is wrong with a clinic's wording, by field: unknown placeholders, clinical words, and
    for a text, room for the link and one GSM-7 segment with the clinic's own name."""
    problems: dict[str, str] = {}
    for field in ("subject", "body"):
        text = getattr(template, field)
        try:
            unknown = placeholders_in(text) - PLACEHOLDERS
        except ValueError:
            problems[field] = "Unbalanced braces: write placeholders as {clinic}, {date}, {time}, {link}…"
            continue
        if unknown:
            problems[field] = (
                f"Unknown placeholder(s): {', '.join(sorted(unknown))}. Known: {', '.join(sorted(PLACEHOLDERS))}."
            )
        elif words := clinical_words_in(text):
            problems[field] = f"Texts must not name the treatment or a diagnosis: remove {', '.join(words)}."
    if template.channel == Channel.SMS and "body" not in problems:
        problems.update(_sms_problems(template))
    return problems


def _sms_problems(template: MessageTemplate) -> dict[str, str]:
    # Every text carries its own link, cancellations too: the token is how an interrupted send is
    # told apart from an earlier text of the same words in Twilio's log.
    if "link" not in placeholders_in(template.body) or "STOP" not in template.body:
        return {"body": "A text must carry the patient link ({link}) and say how to stop (STOP)."}
    # As it is sent: accents GSM-7 lacks are dropped (gsm7_safe), so "próxima" is fine, an emoji not.
    sample = gsm7_safe(fill(template.body, _longest_values(template)))
    if not is_gsm7(sample):
        return {"body": "Use only GSM-7 characters (no emoji or curly quotes): others cut a text to 70 characters."}
    if gsm7_length(sample) > SMS_LIMIT:
        return {
            "body": f"With the longest date, time and link this text is {gsm7_length(sample)} characters; "
            f"one text holds {SMS_LIMIT}."
        }
    return {}


def _longest_values(template: MessageTemplate) -> dict[str, str]:
    from django.conf import settings

    clinic = template.clinic
    return {
        "clinic": clinic.sender_name,
        "date": "Wed 30 Sep" if template.language == "en" else "mie 30 sep",
        "time": "12:45pm" if template.language == "en" else "12:45",
        "link": f"{settings.PUBLIC_BASE_URL.rstrip('/')}/r/{'x' * 12}",
        "phone": clinic.phone,
        "address": clinic.address,
        "number": "12",
        "count": "12",
        "visit": "visit",
        "schedule": "\n".join(f"Visit {n} of 12: Wed 30 Sep 12:45pm" for n in range(1, 13)),
    }


def default_wording(purpose: str, channel: str, language: str) -> Wording:
    if channel == Channel.SMS:
        return Wording("", _SMS[(purpose, language)])
    intro = _EMAIL_INTRO[(purpose, language)]
    return Wording(_EMAIL_SUBJECT[(purpose, language)], _EMAIL_BODY[language].replace("{intro}", intro))


def wording_for(session: Session, purpose: str, channel: str, language: str) -> Wording:
    own = MessageTemplate.objects.filter(
        clinic_id=session.clinic_id, purpose=purpose, channel=channel, language=language
    ).first()
    return Wording(own.subject, own.body) if own else default_wording(purpose, channel, language)


def local_date_text(moment: datetime, language: str) -> str:
    return f"{_DAYS[language][moment.weekday()]} {moment.day} {_MONTHS[language][moment.month - 1]}"


def schedule_line(number: int, count: int, moment: datetime, language: str) -> str:
    """One visit of a series' schedule, as an email lists them: "Visit 3 of 6: Thu 8 Jan 10:00am"."""
    label = "Visit {n} of {c}" if language == "en" else "Cita {n} de {c}"
    when = f"{local_date_text(moment, language)} {local_time_text(moment, language)}"
    return f"{label.format(n=number, c=count)}: {when}"


def local_time_text(moment: datetime, language: str) -> str:
    if language == "en":
        hour = moment.hour % 12 or 12
        return f"{hour}:{moment.minute:02d}{'am' if moment.hour < 12 else 'pm'}"
    return f"{moment.hour}:{moment.minute:02d}"


def fill(text: str, values: dict[str, str]) -> str:
    """Fill the known placeholders; a template may use only those (checked when it is saved)."""
    return string.Formatter().vformat(text, (), values)


def purposes() -> list[str]:
    return [p.value for p in Purpose]
