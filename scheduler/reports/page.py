"""The reports page from a report: headline tiles beside their yardsticks, and one section per
table with its chart. The figures are in figures.py; this only arranges them."""

import csv
from dataclasses import dataclass

from django.http import HttpResponse
from django.utils.safestring import SafeString
from django.utils.text import slugify

from sessions.models import WEEKDAY_NAMES

from . import charts
from .figures import (
    VISITS_TABLE,
    Rate,
    Report,
    Scope,
    Table,
    chair_use,
    confirmed_rate,
    late_cancel_rate,
    median_lead_days,
    no_show_rate,
    reminders_delivered,
    report_build,
    series_rate,
    visits_of,
    visits_table,
)

# Infusion-centre yardsticks: a median no-show rate near 5%, chairs scheduled about 80% and used
# about 70% of their open hours.
NO_SHOW_YARDSTICK = 0.05
SCHEDULED_YARDSTICK = 0.80
ACTUAL_YARDSTICK = 0.70


@dataclass(frozen=True)
class Tile:
    label: str
    rate: Rate | None
    text: str  # the figure as shown
    detail: str  # its numerator and denominator in words
    yardstick: str = ""


@dataclass(frozen=True)
class Section:
    table: Table
    chart: SafeString | None
    note: str = ""


def scope_text(scope: Scope) -> str:
    """What the report covers, in words: "Desert Wellness, Mon 2 Nov 2026 to Sun 29 Nov 2026, Mondays"."""
    parts = [scope.clinic.name, f"{scope.first:%a %-d %b %Y} to {scope.last:%a %-d %b %Y}"]
    if scope.protocol is not None:
        parts.append(scope.protocol.name)
    if scope.weekday is not None:
        parts.append(f"{WEEKDAY_NAMES[scope.weekday]} only")
    if scope.hour is not None:
        parts.append(f"starting {scope.hour:02d}:00–{scope.hour:02d}:59")
    return ", ".join(parts)


def tiles(report: Report) -> list[Tile]:
    cells = report.cells
    shows, cancels, confirmed = no_show_rate(cells), late_cancel_rate(cells), confirmed_rate(cells)
    scheduled, actual = chair_use(report)
    series, delivered = series_rate(report.series), reminders_delivered(report)
    lead = median_lead_days(report.leads)
    return [
        Tile("No-show rate", shows, shows.percent, f"{shows.numerator} of {shows.denominator} marked visits",
             f"yardstick about {NO_SHOW_YARDSTICK:.0%}"),
        Tile("Late cancels", cancels, cancels.percent, f"{cancels.numerator} of {cancels.denominator} visits booked, "
             f"inside {report.scope.clinic.cancellation_notice_hours} h"),
        Tile("Confirmed by 24 h before", confirmed, confirmed.percent,
             f"{confirmed.numerator} of {confirmed.denominator} visits that could be"),
        Tile("Chairs scheduled", scheduled, scheduled.percent,
             f"{scheduled.numerator / 60:.0f} of {scheduled.denominator / 60:.0f} open chair-hours",
             f"yardstick about {SCHEDULED_YARDSTICK:.0%}"),
        Tile("Chairs used", actual, actual.percent,
             f"{actual.numerator / 60:.0f} chair-hours recorded at chair-in and chair-out",
             f"yardstick about {ACTUAL_YARDSTICK:.0%}"),
        Tile("Series on protocol", series, series.percent,
             f"{series.numerator} of {series.denominator} series finished"),
        Tile("Booked ahead (median)", None, "–" if lead is None else f"{lead:g} days", f"{visits_of(cells)} visits"),
        Tile("Reminder texts delivered", delivered, delivered.percent,
             f"{delivered.numerator} of {delivered.denominator} planned"),
    ]  # fmt: skip


def sections(report: Report) -> list[Section]:
    tables = report.tables
    return [
        Section(tables["weekday"], _attendance_chart(tables["weekday"], "No-shows and late cancels by weekday")),
        Section(tables["hour"], _attendance_chart(tables["hour"], "No-shows and late cancels by start hour")),
        Section(tables["protocol"], _attendance_chart(tables["protocol"], "No-shows and late cancels by protocol")),
        Section(tables["chair_use"], _chair_chart(tables["chair_use"]),
                "Actual use counts only visits whose chair-in and chair-out were recorded."),
        Section(tables["confirmations"], _confirmation_chart(tables["confirmations"])),
        Section(tables["lead_time"], _share_chart(tables["lead_time"], "Visits by how far ahead they were booked")),
        Section(tables["series"], _share_chart(tables["series"], "Series finished on protocol", column=4),
                "Series are not cut by weekday or hour."),
        Section(tables["funnel"], _funnel_chart(tables["funnel"]),
                "Reminders planned for these visits; a text counts as delivered on the carrier's receipt."),
        Section(tables["skipped"], None),
    ]  # fmt: skip


def _fraction(text: object) -> float | None:
    """A table's percent cell ("12.5%", or "–" for nothing to count) as a fraction."""
    return None if text == "–" else float(str(text).rstrip("%")) / 100


def _attendance_chart(table: Table, title: str) -> SafeString | None:
    if not table.rows:
        return None
    labels = [str(row[0]) for row in table.rows]
    return charts.columns(
        title=title,
        labels=labels,
        series=[
            charts.Series("No-show rate", [_fraction(row[4]) for row in table.rows], "bar-a"),
            charts.Series("Late-cancel rate", [_fraction(row[6]) for row in table.rows], "bar-b"),
        ],
        yardstick=charts.Yardstick(NO_SHOW_YARDSTICK, f"no-shows ~{NO_SHOW_YARDSTICK:.0%}"),
    )


def _chair_chart(table: Table) -> SafeString | None:
    if not table.rows:
        return None
    return charts.columns(
        title="Chair use by weekday, scheduled and actual",
        labels=[str(row[0]) for row in table.rows],
        series=[
            charts.Series("Scheduled", [_fraction(row[3]) for row in table.rows], "bar-a"),
            charts.Series("Actual", [_fraction(row[5]) for row in table.rows], "bar-b"),
        ],
        yardstick=charts.Yardstick(SCHEDULED_YARDSTICK, f"scheduled ~{SCHEDULED_YARDSTICK:.0%}"),
    )


def _confirmation_chart(table: Table) -> SafeString | None:
    if not any(row[1] for row in table.rows):
        return None
    return charts.columns(
        title="No-show rate of confirmed and unconfirmed visits",
        labels=[str(row[0]) for row in table.rows],
        series=[charts.Series("No-show rate", [_fraction(row[3]) for row in table.rows], "bar-a")],
        yardstick=charts.Yardstick(NO_SHOW_YARDSTICK, f"~{NO_SHOW_YARDSTICK:.0%}"),
    )


def _share_chart(table: Table, title: str, *, column: int = 2) -> SafeString | None:
    if not table.rows:
        return None
    return charts.columns(
        title=title,
        labels=[str(row[0]) for row in table.rows],
        series=[charts.Series(table.columns[column], [_fraction(row[column]) for row in table.rows], "bar-a")],
    )


def _funnel_chart(table: Table) -> SafeString | None:
    if not any(n for row in table.rows for n in row[1:]):
        return None
    total = {str(row[0]): sum(row[1:]) for row in table.rows}
    return charts.bars(title="Reminders by what became of them", rows=[(stage, n) for stage, n in total.items()])


def table_named(scope: Scope, name: str) -> Table | None:
    """The table a CSV download asks for; every visit's rows are read only for their own download."""
    if name == VISITS_TABLE:
        return visits_table(scope=scope)
    return report_build(scope=scope).tables.get(name)


def csv_response(table: Table, scope: Scope) -> HttpResponse:
    """The table's rows as CSV, named after the clinic, the days and the table."""
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    name = f"{slugify(scope.clinic.name)}-{scope.first}-{scope.last}-{table.name}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    writer = csv.writer(response)
    writer.writerow(table.columns)
    writer.writerows([_cell(value) for value in row] for row in table.rows)
    return response


def _cell(value: object) -> object:
    """A text cell that a spreadsheet would run as a formula (a protocol named "=…") is kept text."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return f"'{value}"
    return value
