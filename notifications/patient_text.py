"""Dates and times as a patient reads them, in their language.

Every word a patient sees is in the translation catalogs (`locale/<language>/LC_MESSAGES/django.po`),
these included: the names of days and months, and the patterns that put a date or a clock time
together ("Friday 9 January" against "viernes 9 de enero", "1:00 pm" against "13:00"). They are
spelled from the catalogs rather than through the C library's locale, which a worker may not
have for Spanish.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from functools import lru_cache

import phonenumbers
from django.http import HttpRequest
from django.utils import translation
from django.utils.translation import gettext, pgettext, pgettext_lazy

LANGUAGES = ("en", "es")
# The tag of the link pages' own flash messages: a staff member's admin messages must not show there.
LINK_FLASH = "patient-link"

_DAYS = [
    pgettext_lazy("weekday", "Monday"), pgettext_lazy("weekday", "Tuesday"), pgettext_lazy("weekday", "Wednesday"),
    pgettext_lazy("weekday", "Thursday"), pgettext_lazy("weekday", "Friday"), pgettext_lazy("weekday", "Saturday"),
    pgettext_lazy("weekday", "Sunday"),
]  # fmt: skip
_MONTHS = [
    pgettext_lazy("month", "January"), pgettext_lazy("month", "February"), pgettext_lazy("month", "March"),
    pgettext_lazy("month", "April"), pgettext_lazy("month", "May"), pgettext_lazy("month", "June"),
    pgettext_lazy("month", "July"), pgettext_lazy("month", "August"), pgettext_lazy("month", "September"),
    pgettext_lazy("month", "October"), pgettext_lazy("month", "November"), pgettext_lazy("month", "December"),
]  # fmt: skip
# The short forms a text's 160 characters have room for.
_SHORT_DAYS = [
    pgettext_lazy("weekday, short", "Mon"), pgettext_lazy("weekday, short", "Tue"),
    pgettext_lazy("weekday, short", "Wed"), pgettext_lazy("weekday, short", "Thu"),
    pgettext_lazy("weekday, short", "Fri"), pgettext_lazy("weekday, short", "Sat"),
    pgettext_lazy("weekday, short", "Sun"),
]  # fmt: skip
_SHORT_MONTHS = [
    pgettext_lazy("month, short", "Jan"), pgettext_lazy("month, short", "Feb"), pgettext_lazy("month, short", "Mar"),
    pgettext_lazy("month, short", "Apr"), pgettext_lazy("month, short", "May"), pgettext_lazy("month, short", "Jun"),
    pgettext_lazy("month, short", "Jul"), pgettext_lazy("month, short", "Aug"), pgettext_lazy("month, short", "Sep"),
    pgettext_lazy("month, short", "Oct"), pgettext_lazy("month, short", "Nov"), pgettext_lazy("month, short", "Dec"),
]  # fmt: skip


def language_of(code: str) -> str:
    return code if code in LANGUAGES else "en"


@contextmanager
def in_language(code: str) -> Iterator[str]:
    """Words looked up inside come from the patient's catalog (English where it has no other)."""
    language = language_of(code)
    with translation.override(language):
        yield language


def _clock(moment: datetime, pattern: str) -> str:
    """Fill a catalog's clock pattern: a 12-hour clock for English, a 24-hour one for Spanish."""
    return pattern.format(
        hour12=moment.hour % 12 or 12,
        hour24=moment.hour,
        minute=f"{moment.minute:02d}",
        ampm=pgettext("before noon", "am") if moment.hour < 12 else pgettext("after noon", "pm"),
    )


def _date(moment: date, pattern: str, days: list, months: list) -> str:
    """Fill a catalog's date pattern with the day's names from `days` and `months`."""
    return pattern.format(weekday=days[moment.weekday()], day=moment.day, month=months[moment.month - 1])


def day_text(moment: date, language: str) -> str:
    """'Friday 9 January' / 'viernes 9 de enero', for a date or a moment already in the clinic's zone."""
    with in_language(language):
        return _date(moment, pgettext("date on a page", "{weekday} {day} {month}"), _DAYS, _MONTHS)


def time_text(moment: datetime, language: str) -> str:
    """'1:00 pm' / '13:00'."""
    with in_language(language):
        # Translators: a 12-hour clock ({hour12}, {ampm}) or a 24-hour one ({hour24}), and {minute}.
        # xgettext:no-python-brace-format
        return _clock(moment, pgettext("time on a page", "{hour12}:{minute} {ampm}"))


def when_text(moment: datetime, language: str) -> str:
    """'Friday 9 January, 1:00 pm' / 'viernes 9 de enero, 13:00'."""
    return f"{day_text(moment, language)}, {time_text(moment, language)}"


def day_label(day: date, language: str, *, today: date) -> str:
    """day_text, led by 'Today' or 'Tomorrow' where it is one of those in the clinic's calendar:
    a patient picking a time should not have to work out that Friday is tomorrow."""
    text = day_text(day, language)
    with in_language(language):
        if day == today:
            return gettext("Today, {day}").format(day=text)
        if (day - today).days == 1:
            return gettext("Tomorrow, {day}").format(day=text)
    return text


def when_label(moment: datetime, language: str, *, today: date) -> str:
    """when_text with day_label's day, for a moment already in the clinic's zone."""
    return f"{day_label(moment.date(), language, today=today)}, {time_text(moment, language)}"


def short_date_text(moment: datetime, language: str) -> str:
    """'Wed 30 Sep' / 'mié 30 sep', as a text spells a date."""
    with in_language(language):
        return _date(moment, pgettext("date in a text", "{weekday} {day} {month}"), _SHORT_DAYS, _SHORT_MONTHS)


def short_time_text(moment: datetime, language: str) -> str:
    """'12:45pm' / '12:45', as a text spells a time."""
    with in_language(language):
        # Translators: a 12-hour clock ({hour12}, {ampm}) or a 24-hour one ({hour24}), and {minute}.
        # xgettext:no-python-brace-format
        return _clock(moment, pgettext("time in a text", "{hour12}:{minute}{ampm}"))


def page_language(request: HttpRequest, patient) -> tuple[str, str]:
    """A link page's language: the patient's, unless they chose the other on the page (`?lang=`,
    which only shows the page in it and changes nothing); and the query that keeps the choice."""
    chosen = request.GET.get("lang", "")
    if chosen in LANGUAGES and chosen != language_of(patient.language):
        return chosen, f"lang={chosen}"
    return language_of(patient.language), ""


def day_choices(days: list, zone, language: str, today: date) -> list[tuple[str, list[tuple[str, str]]]]:
    """(day label, (value, label) per slot) for `days` of (day, slots): the value is the start with
    the clinic's offset, which also says which of two equal wall-clock times on the night clocks
    go back is meant."""
    choices = []
    for day, slots in days:
        local_starts = [slot.starts_at.astimezone(zone) for slot in slots]
        times = [(start.isoformat(), time_text(start, language)) for start in local_starts]
        choices.append((day_label(day, language, today=today), times))
    return choices


# phonenumbers' parse took a few percent of every link page, and a server only sees its clinics' few numbers.
@lru_cache(maxsize=256)
def phone_text(phone: str) -> str:
    """+16025550100 as (602) 555-0100: the way the clinic's patients write their number."""
    try:
        return phonenumbers.format_number(phonenumbers.parse(phone), phonenumbers.PhoneNumberFormat.NATIONAL)
    except phonenumbers.NumberParseException:
        return phone
