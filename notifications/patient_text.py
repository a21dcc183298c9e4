"""What the patient link page says, in English and Spanish.

A phrase book rather than gettext catalogues: two languages, one page, and no compilemessages
step to forget on a worker. Dates are spelled here for the same reason as in `wording`: a
machine may not have a Spanish C locale.
"""

from datetime import date, datetime

LANGUAGES = ("en", "es")

_DAYS = {
    "en": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
    "es": ["lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo"],
}
_MONTHS = {
    "en": [
        "January", "February", "March", "April", "May", "June",
        "July", "August", "September", "October", "November", "December",
    ],
    "es": [
        "enero", "febrero", "marzo", "abril", "mayo", "junio",
        "julio", "agosto", "septiembre", "octubre", "noviembre", "diciembre",
    ],
}  # fmt: skip

PHRASES: dict[str, dict[str, str]] = {
    "en": {
        "title": "Your visit",
        "visit_count": "Visit {number} of {count}",
        "when": "When",
        "where": "Where",
        "until": "{start} to {end}",
        "clinic_time": "Times are the clinic's local time.",
        "today": "Today, {day}",
        "tomorrow": "Tomorrow, {day}",
        "visits_heading": "Your other visits",
        "status_booked": "Not confirmed yet",
        "status_confirmed": "Confirmed",
        "status_cancelled": "This visit is cancelled. To book a new time, please call {phone}.",
        "status_closed": "This visit can no longer be changed here. Questions? Call {phone}.",
        "confirm_heading": "Will you come?",
        "confirm_button": "Confirm my visit",
        "driver_label": "I have arranged a driver to take me home",
        "driver_hint": "You must not drive after this visit. Someone needs to take you home.",
        "driver_missing": "Please tick the box to tell us you have a driver to take you home.",
        "driver_add_heading": "Your driver",
        "driver_add_button": "Confirm my driver",
        "confirmed": "Thank you. Your visit is confirmed.",
        "driver_confirmed": "You told us a driver will take you home.",
        "already_confirmed": "This visit was already confirmed. Nothing has changed.",
        "change_heading": "Need another time?",
        "change_link": "Choose a new time",
        "move_heading": "Choose a new time",
        "move_now": "Your visit is now {when}.",
        "move_button": "Move my visit",
        "move_back": "Keep the current time",
        "move_none": "There are no other free times in the next two weeks. Please call {phone}.",
        "move_pick": "Please choose one of the times shown.",
        "move_taken": "That time was just taken. Please pick another.",
        "move_too_soon": "That time is too soon to choose here. Please pick a later one, or call {phone}.",
        "reflow_heading": "More days: your later visits move too",
        "reflow_text": (
            "These days are too far from your next visit to keep it. If you choose one, your later visits "
            "move with it, so they stay the right number of days apart. You will see every new time before "
            "anything changes."
        ),
        "reflow_see": "See my new times",
        "reflow_preview_heading": "Your new times",
        "reflow_preview_text": "If you accept, your visits will be:",
        "reflow_unchanged": "no change",
        "reflow_button": "Move and re-space my later visits",
        "reflow_back": "Choose another time",
        "reflow_failed": "Your later visits cannot all fit around that time. Please pick another, or call {phone}.",
        "reflowed": "Your visit is now {when}. Your later visits have new times too: see them below.",
        "moved": "Your visit is now {when}. Please confirm the new time.",
        "cancel_summary": "Cancel this visit",
        "cancel_text": "If you cancel, the clinic will contact you about a new time.",
        "cancel_button": "Yes, cancel this visit",
        "cancel_call": "To cancel this visit now, please call {phone}.",
        "cancelled": "Your visit is cancelled. To book a new time, please call {phone}.",
        "not_possible": "That could not be done. Please call {phone}.",
        "prep_heading": "Before your visit",
        "prep_fasting": "Do not eat for {hours} hours before your visit.",
        "prep_driver": "Arrange for someone to drive you home.",
        "prep_no_driving": "Do not drive for {hours} hours afterwards.",
        "questions": "Questions? Call {phone}.",
        "call": "Call {phone}",
    },
    "es": {
        "title": "Su cita",
        "visit_count": "Cita {number} de {count}",
        "when": "Cuándo",
        "where": "Dónde",
        "until": "de {start} a {end}",
        "clinic_time": "Las horas son las de la clínica.",
        "today": "Hoy, {day}",
        "tomorrow": "Mañana, {day}",
        "visits_heading": "Sus otras citas",
        "status_booked": "Sin confirmar",
        "status_confirmed": "Confirmada",
        "status_cancelled": "Esta cita está cancelada. Para reservar otra, llame al {phone}.",
        "status_closed": "Esta cita ya no se puede cambiar aquí. ¿Dudas? Llame al {phone}.",
        "confirm_heading": "¿Vendrá?",
        "confirm_button": "Confirmar mi cita",
        "driver_label": "Tengo a alguien que me llevará a casa en coche",
        "driver_hint": "No debe conducir después de esta cita. Alguien tiene que llevarle a casa.",
        "driver_missing": "Marque la casilla para indicarnos que alguien le llevará a casa.",
        "driver_add_heading": "Quién le lleva a casa",
        "driver_add_button": "Confirmar quién me lleva",
        "confirmed": "Gracias. Su cita está confirmada.",
        "driver_confirmed": "Nos ha indicado que alguien le llevará a casa.",
        "already_confirmed": "Esta cita ya estaba confirmada. No ha cambiado nada.",
        "change_heading": "¿Necesita otra hora?",
        "change_link": "Elegir otra hora",
        "move_heading": "Elija otra hora",
        "move_now": "Su cita es ahora el {when}.",
        "move_button": "Cambiar mi cita",
        "move_back": "Mantener la hora actual",
        "move_none": "No hay otras horas libres en las próximas dos semanas. Llame al {phone}.",
        "move_pick": "Elija una de las horas que se muestran.",
        "move_taken": "Esa hora se acaba de ocupar. Elija otra, por favor.",
        "move_too_soon": "Esa hora es demasiado pronto para elegirla aquí. Elija una más tarde o llame al {phone}.",
        "reflow_heading": "Más días: sus citas siguientes también cambian",
        "reflow_text": (
            "Estos días quedan demasiado lejos de su próxima cita para mantenerla. Si elige uno, sus citas "
            "siguientes se mueven con él, para que sigan con los días de separación correctos. Verá todas las "
            "horas nuevas antes de que cambie nada."
        ),
        "reflow_see": "Ver mis nuevas horas",
        "reflow_preview_heading": "Sus nuevas horas",
        "reflow_preview_text": "Si acepta, sus citas serán:",
        "reflow_unchanged": "sin cambios",
        "reflow_button": "Cambiar y reorganizar mis citas siguientes",
        "reflow_back": "Elegir otra hora",
        "reflow_failed": "Sus citas siguientes no caben con esa hora. Elija otra o llame al {phone}.",
        "reflowed": "Su cita es ahora el {when}. Sus citas siguientes también tienen horas nuevas: véalas abajo.",
        "moved": "Su cita es ahora el {when}. Confirme la nueva hora, por favor.",
        "cancel_summary": "Cancelar esta cita",
        "cancel_text": "Si cancela, la clínica se pondrá en contacto con usted para buscar otra hora.",
        "cancel_button": "Sí, cancelar esta cita",
        "cancel_call": "Para cancelar esta cita ahora, llame al {phone}.",
        "cancelled": "Su cita está cancelada. Para reservar otra, llame al {phone}.",
        "not_possible": "No se pudo hacer. Llame al {phone}, por favor.",
        "prep_heading": "Antes de su cita",
        "prep_fasting": "No coma nada en las {hours} horas anteriores a su cita.",
        "prep_driver": "Pida a alguien que le lleve a casa en coche.",
        "prep_no_driving": "No conduzca en las {hours} horas siguientes.",
        "questions": "¿Dudas? Llame al {phone}.",
        "call": "Llamar al {phone}",
    },
}


def language_of(code: str) -> str:
    return code if code in LANGUAGES else "en"


def phrase(language: str, key: str, **values: object) -> str:
    return PHRASES[language][key].format(**values)


def day_text(moment: date, language: str) -> str:
    """'Friday 9 January' / 'viernes 9 de enero', for a date or a moment already in the clinic's zone."""
    day, month = _DAYS[language][moment.weekday()], _MONTHS[language][moment.month - 1]
    return f"{day} {moment.day} {month}" if language == "en" else f"{day} {moment.day} de {month}"


def time_text(moment: datetime, language: str) -> str:
    """'1:00 pm' / '13:00'."""
    if language == "en":
        return f"{moment.hour % 12 or 12}:{moment.minute:02d} {'am' if moment.hour < 12 else 'pm'}"
    return f"{moment.hour}:{moment.minute:02d}"


def when_text(moment: datetime, language: str) -> str:
    """'Friday 9 January, 1:00 pm' / 'viernes 9 de enero, 13:00'."""
    return f"{day_text(moment, language)}, {time_text(moment, language)}"


def day_label(day: date, language: str, *, today: date) -> str:
    """day_text, led by 'Today' or 'Tomorrow' where it is one of those in the clinic's calendar:
    a patient picking a time should not have to work out that Friday is tomorrow."""
    relative = {0: "today", 1: "tomorrow"}.get((day - today).days)
    text = day_text(day, language)
    return phrase(language, relative, day=text) if relative else text


def when_label(moment: datetime, language: str, *, today: date) -> str:
    """when_text with day_label's day, for a moment already in the clinic's zone."""
    return f"{day_label(moment.date(), language, today=today)}, {time_text(moment, language)}"
