"""What messages say: built-in wording per purpose, channel and language, a clinic's own wording
where it has some, and the checks that keep a text to one neutral GSM-7 segment.

Texts name the clinic's neutral sender name, the date and time in the clinic's zone, how to
confirm or reschedule, the patient link and how to stop — never the treatment. The built-in
wording is in the translation catalogs, like every word a patient reads; dates are spelled by
`patient_text`.
"""

import string
import unicodedata
from dataclasses import dataclass
from datetime import datetime

from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from sessions.validators import clinical_words_in

from .models import Channel, MessageTemplate, Purpose
from .patient_text import in_language, short_date_text, short_time_text

SMS_LIMIT = 160

# GSM 03.38 basic set plus the extension characters (which take two septets each). Anything else
# forces UCS-2, which drops a segment to 70 characters and doubles or triples the price of a text.
_GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿"
    "abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = set("^{}\\[~]|€\f")

# The longest date and time a text may carry (for the one-segment check): Wednesday 30 September, 12:45.
_LONGEST_MOMENT = datetime(2026, 9, 30, 12, 45)

PLACEHOLDERS = {"clinic", "date", "time", "link", "phone", "number", "count", "address", "visit", "schedule"}

# The built-in wording: English here, other languages in the translation catalogs.
_SMS = {
    "booked": _("{clinic}: visit booked {date} {time}. Reply C to confirm, R to reschedule. {link} STOP to end"),
    "reminder": _("{clinic}: visit {date} {time}. Reply C to confirm, R to reschedule. {link} STOP to end"),
    "moved": _("{clinic}: your visit is now {date} {time}. Reply C to confirm, R to reschedule. {link} STOP to end"),
    "cancelled": _("{clinic}: visit {date} {time} cancelled. Info: {link} or {phone}. STOP to end"),
    "cancel_all": _("{clinic}: visits from {date} {time} cancelled. {link} or {phone}. STOP to end"),
    "reflowed": _("{clinic}: new times for your visits, next {date} {time}. All: {link} STOP to end"),
    "link": _("{clinic}: your visit {date} {time}. Reply C to confirm, R to reschedule. {link} STOP to end"),
    "offer": _("{clinic}: a visit time opened up, {date} {time}. Want it? Book it first here: {link} STOP to end"),
    "recall": _("{clinic}: it is time to book your next visit, from {date}. Pick a time: {link} STOP to end"),
}
# Last resort when a clinic's long name or address leaves no room: still one segment, still says
# how to confirm (or that the visit is off) and how to stop.
COMPACT_SMS = _("{clinic}: {date} {time}. C=confirm R=reschedule {link} STOP=end")
COMPACT_CANCELLED_SMS = _("{clinic}: {date} {time} cancelled. {link} STOP=end")
COMPACT_OFFER_SMS = _("{clinic}: {date} {time} is free. Book: {link} STOP=end")
COMPACT_RECALL_SMS = _("{clinic}: book your next visit: {link} STOP=end")

_EMAIL_SUBJECT = {
    "booked": _("Your visits at {clinic} are booked"),
    "reminder": _("Your visit at {clinic} on {date}"),
    "moved": _("Your visit at {clinic} has moved to {date}"),
    "cancelled": _("Your visit at {clinic} on {date} is cancelled"),
    "cancel_all": _("Your visits at {clinic} are cancelled"),
    "reflowed": _("New times for your visits at {clinic}"),
    "link": _("Your link for your visit at {clinic} on {date}"),
    "offer": _("A visit time opened up at {clinic} on {date}"),
    "recall": _("Time to book your next visit at {clinic}"),
}
_EMAIL_BODY = _(
    "Hello,\n\n{intro}\n\nWhen: {date} at {time}\nWhere: {address}\nVisit {number} of {count}.\n\n"
    "Confirm or reschedule: {link}\nQuestions: call us at {phone}.\n\n{clinic}"
)
_EMAIL_INTRO = {
    "booked": _("Your visits are booked. Here is the first one."),
    "reminder": _("This is a reminder of your upcoming visit."),
    "moved": _("Your visit has a new time."),
    "cancelled": _("Your visit has been cancelled. Call us to book a new time."),
    "cancel_all": _("Your remaining visits have been cancelled, starting with this one. Call us to book new times."),
    "reflowed": _("Your visits have new times:\n\n{schedule}\n\nThe next one:"),
    "link": _("Here is the link to your visit again: confirm it, choose another time or cancel it there."),
}


# An offer and a recall name no booked visit: their emails have words of their own.
_EMAIL_OWN_BODY = {
    "offer": _(
        "Hello,\n\nA time you were waiting for has opened up:\n\nWhen: {date} at {time}\nWhere: {address}\n\n"
        "The first person on our list to book it gets it. Book it here: {link}\n"
        "Questions: call us at {phone}.\n\n{clinic}"
    ),
    "recall": _(
        "Hello,\n\nIt is time to book your next visit, from {date} on.\n\nPick a time that suits you here: {link}\n"
        "Not now? You can tell us there too. Questions: call us at {phone}.\n\n{clinic}"
    ),
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
        "date": short_date_text(_LONGEST_MOMENT, template.language),
        "time": short_time_text(_LONGEST_MOMENT, template.language),
        "link": f"{settings.PUBLIC_BASE_URL.rstrip('/')}/r/{'x' * 12}",
        "phone": clinic.phone,
        "address": clinic.address,
        "number": "12",
        "count": "12",
        "visit": "visit",
        "schedule": "\n".join(schedule_line(n, 12, _LONGEST_MOMENT, template.language) for n in range(1, 13)),
    }


def default_wording(purpose: str, channel: str, language: str) -> Wording:
    with in_language(language):
        if channel == Channel.SMS:
            return Wording("", str(_SMS[purpose]))
        if purpose in _EMAIL_OWN_BODY:
            return Wording(str(_EMAIL_SUBJECT[purpose]), str(_EMAIL_OWN_BODY[purpose]))
        body = str(_EMAIL_BODY).replace("{intro}", str(_EMAIL_INTRO[purpose]))
        return Wording(str(_EMAIL_SUBJECT[purpose]), body)


def wording_for(clinic_id: int, purpose: str, channel: str, language: str) -> Wording:
    own = MessageTemplate.objects.filter(
        clinic_id=clinic_id, purpose=purpose, channel=channel, language=language
    ).first()
    return Wording(own.subject, own.body) if own else default_wording(purpose, channel, language)


def schedule_line(number: int, count: int, moment: datetime, language: str) -> str:
    """One visit of a series' schedule, as an email lists them: "Visit 3 of 6: Thu 8 Jan 10:00am"."""
    when = f"{short_date_text(moment, language)} {short_time_text(moment, language)}"
    with in_language(language):
        return f"{gettext('Visit {number} of {count}').format(number=number, count=count)}: {when}"


def fill(text: str, values: dict[str, str]) -> str:
    """Fill the known placeholders; a template may use only those (checked when it is saved)."""
    return string.Formatter().vformat(text, (), values)


def purposes() -> list[str]:
    return [p.value for p in Purpose]
