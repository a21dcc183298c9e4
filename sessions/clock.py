"""Clinic wall-clock time at the edges; aware UTC inside.

A time given without an offset is the clinic's wall-clock time (booking rule 9). A wall-clock
time that the zone skips (spring forward) or repeats (fall back) names no single instant, so it
is refused rather than guessed.
"""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


class LocalTimeError(ValueError):
    def __init__(self, value: datetime, zone: ZoneInfo, *, ambiguous: bool) -> None:
        self.ambiguous = ambiguous
        when = f"{value:%Y-%m-%d %H:%M} in {zone.key}"
        if ambiguous:
            message = f"{when} happens twice (clocks go back): add the UTC offset to say which."
        else:
            message = f"{when} does not exist (clocks go forward): pick another time."
        super().__init__(message)


def to_utc(value: datetime, zone: ZoneInfo) -> datetime:
    """An aware instant in UTC; a naive value is read as wall-clock time in `zone`."""
    if value.tzinfo is not None:
        return value.astimezone(UTC)
    first = value.replace(tzinfo=zone, fold=0)
    second = value.replace(tzinfo=zone, fold=1)
    if first.utcoffset() == second.utcoffset():
        return first.astimezone(UTC)
    round_trip = first.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
    raise LocalTimeError(value, zone, ambiguous=round_trip == value)


def wall_clock(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of `at` on `day` in `zone`, for configured times such as opening hours.

    Configured times are not user input: one that falls in a DST gap is taken at its earlier
    offset instead of being refused.
    """
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The UTC instants at which local `day` begins and the next one begins (23 or 25 hours
    apart on DST days)."""
    return wall_clock(day, time(0), zone), wall_clock(day + timedelta(days=1), time(0), zone)


def local_date(moment: datetime, zone: ZoneInfo) -> date:
    return moment.astimezone(zone).date()


def dates_between(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]
