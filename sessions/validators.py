import unicodedata
from datetime import date, timedelta
from zoneinfo import available_timezones

import phonenumbers
from django.core.exceptions import ValidationError
from django.utils import timezone

_E164_HINT = "Enter a phone number, e.g. (520) 555-0123, or +44 20 7946 0958 for another country."


def validate_time_zone(value: str) -> None:
    if value not in available_timezones():
        raise ValidationError(f"{value!r} is not an IANA time zone such as America/Phoenix.")


OLDEST_AGE_YEARS = 120


def validate_date_of_birth(value: date) -> None:
    """Not in the future, not more than OLDEST_AGE_YEARS ago. "Today" is the date where it is
    latest (UTC+14): a date of birth is possible once it has begun somewhere, whatever the zone
    of the server or of the clinic that types it."""
    today = (timezone.now() + timedelta(hours=14)).date()
    if value > today:
        raise ValidationError("Date of birth cannot be in the future.", code="future")
    if value < years_before(today, OLDEST_AGE_YEARS):
        raise ValidationError(
            f"Date of birth is more than {OLDEST_AGE_YEARS} years ago: check the year.", code="too_old"
        )


def years_before(day: date, years: int) -> date:
    """The same day `years` earlier; 29 February falls back to the 28th in a year without one."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)


# Control characters (CR, LF, NUL, tab, ...) and Unicode's line and paragraph separators.
_NOT_ONE_LINE = {"Cc", "Zl", "Zp"}


def validate_single_line(value: str) -> None:
    """One line of text. Names and addresses go into email headers and texts: a line break there
    makes Python's email refuse every message of the clinic (or, unchecked, inject a header)."""
    if any(unicodedata.category(character) in _NOT_ONE_LINE for character in value):
        raise ValidationError("Write this on one line, without line breaks or control characters.")


def validate_e164(value: str) -> None:
    """A phone in E.164 form (+15205550123) that is a valid number for its country."""
    if not value.startswith("+") or not value[1:].isdigit() or len(value) > 16:
        raise ValidationError(_E164_HINT)
    try:
        parsed = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException as exc:
        raise ValidationError(_E164_HINT) from exc
    if not phonenumbers.is_valid_number(parsed):
        raise ValidationError(f"{value} is not a valid phone number.")


def phone_in_region(value: str, region: str | None) -> str:
    """`value` as E.164 where it is a valid number as typed, read in `region` (a country such as
    "US": the clinic's) unless it starts with + or 00; else as typed, for validate_e164 to refuse.
    "(602) 555-0101", "602.555.0101" and "+1 602 555 0101" are all +16025550101 for a US clinic."""
    text = value.strip()
    if not text or len(text) > 40:
        return text
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return text
    if not phonenumbers.is_valid_number(parsed):
        return text
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def phone_region(phone: str) -> str | None:
    """The country of an E.164 number ("US" for +1602…), or None."""
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(phone, None))
    except phonenumbers.NumberParseException:
        return None


# Words that would tell a reader of a patient's phone what the visit is for. Names patients see
# (a clinic's sender name, a protocol's patient-facing name) and every text must avoid them.
CLINICAL_WORDS = (
    "ketamine", "ketamina", "infusion", "infusión", "depression", "depresión", "pain", "dolor", "crps",
    "esketamine", "spravato", "psychiatr", "anesthe",
)  # fmt: skip


def clinical_words_in(text: str) -> list[str]:
    lowered = text.lower()
    return [word for word in CLINICAL_WORDS if word in lowered]


def validate_neutral(value: str) -> None:
    if found := clinical_words_in(value):
        raise ValidationError(f"Patients' phones show this: it must not name the treatment ({', '.join(found)}).")
