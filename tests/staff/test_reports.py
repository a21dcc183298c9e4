"""The reports page: every figure against the week of tests/staff/reports_fixture.py, worked out
by hand, its CSV equal to its table, and who may see which clinic's."""

import csv
import io
import threading
from datetime import time, timedelta

import pytest
from django.db import connection, connections

from notifications.models import Channel, Message
from scheduler.reports.figures import Scope, chair_use, report_build
from scheduler.reports.page import tiles
from sessions.models import Series, Session
from tests.factories import clinic_make, patient_make, protocol_make

from .builders import at, client_as, staff_user
from .reports_fixture import MONDAY, SUNDAY, TUESDAY, reminder_make, report_week

pytestmark = pytest.mark.django_db


@pytest.fixture
def week():
    return report_week()


def _report(week, **narrowing):
    scope = Scope(clinic=week.clinic, first=MONDAY, last=SUNDAY, **narrowing)
    return report_build(scope=scope, now=at(week.clinic, SUNDAY + timedelta(days=10), 12))


def _figures(report) -> dict[str, tuple[int, int, str]]:
    return {tile.label: (tile.rate.numerator, tile.rate.denominator, tile.text) for tile in tiles(report) if tile.rate}


def test_headline_figures_have_the_numerators_and_denominators_worked_out_by_hand(week):
    report = _report(week)
    assert _figures(report) == {
        # s2 of the four marked (s1, s2, s5, s6)
        "No-show rate": (1, 4, "25.0%"),
        # s3, cancelled 2 h before with a 24 h notice, of the six visits
        "Late cancels": (1, 6, "16.7%"),
        # s1 and s6 confirmed 24 h or more before, of s1, s2, s3, s5, s6 (s4 was cancelled before then)
        "Confirmed by 24 h before": (2, 5, "40.0%"),
        # 120 + 120 + 120 + 300 chair-minutes of 7 days × 10 h × 2 chairs
        "Chairs scheduled": (660, 8400, "7.9%"),
        # s1's 115 and s6's 300 recorded minutes (s5 has no chair-out)
        "Chairs used": (415, 8400, "4.9%"),
        "Series on protocol": (0, 0, "–"),
        # of the five texts planned: s1's delivered
        "Reminder texts delivered": (1, 5, "20.0%"),
    }
    lead = next(tile for tile in tiles(report) if tile.label == "Booked ahead (median)")
    assert lead.text == "10 days"  # 3, 5, 10, 10, 20, 40


def test_tables_by_weekday_hour_and_protocol(week):
    tables = _report(week).tables
    assert tables["weekday"].rows == [
        ["Mon", 3, 2, 1, "50.0%", 1, "33.3%"],
        ["Tue", 3, 2, 0, "0.0%", 0, "0.0%"],
    ]
    assert [row[:4] for row in tables["hour"].rows] == [
        ["08:00", 1, 1, 0], ["09:00", 2, 2, 1], ["10:00", 2, 1, 0], ["13:00", 1, 0, 0],
    ]  # fmt: skip
    assert tables["protocol"].rows == [
        ["Depression induction", 5, 3, 1, "33.3%", 1, "20.0%", 1, 4, "25.0%"],
        ["Pain course", 1, 1, 0, "0.0%", 0, "0.0%", 1, 1, "100.0%"],
    ]


def test_chair_use_by_weekday_scheduled_and_actual(week):
    rows = _report(week).tables["chair_use"].rows
    assert rows[:2] == [
        ["Mon", "20.0", "4.0", "20.0%", "1.9", "9.6%"],
        ["Tue", "20.0", "7.0", "35.0%", "5.0", "25.0%"],
    ]
    assert [row[0] for row in rows] == ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    assert all(row[2:] == ["0.0", "0.0%", "0.0", "0.0%"] for row in rows[2:])


def test_confirmed_patients_against_unconfirmed_and_booking_lead_time(week):
    tables = _report(week).tables
    assert tables["confirmations"].rows == [["confirmed", 3, 0, "0.0%"], ["not confirmed", 1, 1, "100.0%"]]
    assert tables["lead_time"].rows == [
        ["same day", 0, "0.0%"], ["1–2 days", 0, "0.0%"], ["3–7 days", 2, "33.3%"], ["8–14 days", 2, "33.3%"],
        ["15–30 days", 1, "16.7%"], ["over 30 days", 1, "16.7%"],
    ]  # fmt: skip


def test_reminder_funnel_counts_each_stage_and_skips_by_reason(week):
    tables = _report(week).tables
    # columns: stage, SMS, email
    assert tables["funnel"].rows == [
        ["planned", 5, 2], ["sent", 1, 1], ["delivered", 1, 0], ["failed", 1, 0], ["skipped", 2, 1],
        ["withdrawn", 1, 0], ["expired", 0, 0], ["waiting", 0, 0],
    ]  # fmt: skip
    assert tables["skipped"].rows == [
        ["no email address to send to", "Email", 1],
        ["daily text limit (1) reached", "SMS", 1],
        ["quiet hours in the patient's time zone", "SMS", 1],
    ]


def test_narrowing_to_a_weekday_an_hour_or_a_protocol(week):
    monday = _report(week, weekday=0)
    assert _figures(monday)["No-show rate"] == (1, 2, "50.0%")
    assert _figures(monday)["Chairs scheduled"] == (240, 1200, "20.0%")
    assert monday.tables["funnel"].rows[0] == ["planned", 3, 1]
    nine = _report(week, hour=9)
    assert _figures(nine)["No-show rate"] == (1, 2, "50.0%")
    # 09:00–10:00 on 7 days × 2 chairs: s1 and s2 on Monday, s6 (08:00–13:00) on Tuesday
    assert _figures(nine)["Chairs scheduled"] == (180, 840, "21.4%")
    # s1 from 09:05, s6 the whole hour
    assert _figures(nine)["Chairs used"] == (115, 840, "13.7%")
    pain = _report(week, protocol=week.pain)
    assert _figures(pain)["No-show rate"] == (0, 1, "0.0%")
    assert chair_use(pain)[0].numerator == 300


def test_series_finished_on_protocol_need_every_session_and_every_gap_inside():
    clinic = clinic_make(opens=time(8), closes=time(18), chairs=2)
    course = protocol_make(clinic, name="Two visits", session_count=2, min_gap_days=1, max_gap_days=2)
    chair = clinic.chairs.first()

    hours = iter(range(8, 18, 2))

    def series(*days_statuses):
        patient, hour = patient_make(clinic), next(hours)
        finished = Series.objects.create(
            patient=patient, protocol=course, clinic=clinic, status=Series.Status.COMPLETED
        )
        for number, (day, status) in enumerate(days_statuses, start=1):
            starts = at(clinic, day, hour)
            Session.objects.create(
                series=finished, patient=patient, clinic=clinic, chair=chair, number=number, starts_at=starts,
                ends_at=starts + timedelta(hours=2), chair_free_at=starts + timedelta(hours=2), status=status,
            )  # fmt: skip

    done = Session.Status.COMPLETED
    series((MONDAY, done), (MONDAY + timedelta(days=2), done))  # on protocol
    series((MONDAY, done), (MONDAY + timedelta(days=4), done))  # 4 days apart: outside 1–2
    series((TUESDAY, done), (TUESDAY + timedelta(days=1), Session.Status.NO_SHOW))  # one missed
    series((SUNDAY, done), (SUNDAY + timedelta(days=1), done))  # finished after the report's days
    report = report_build(scope=Scope(clinic=clinic, first=MONDAY, last=SUNDAY))
    assert report.tables["series"].rows == [["Two visits", 3, 2, 1, "33.3%"]]


@pytest.mark.concurrency
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="one snapshot is PostgreSQL's; SQLite is development's")
def test_a_report_reads_one_moment_while_reminders_are_planned():
    """The funnel must count the visits the tables count: a reminder planned on another
    connection while the report reads is in none of its figures, and in the next report."""
    week = report_week()
    planned = _report(week).tables["funnel"].rows[0]
    committed = []

    def plan_one(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if "start_day" in sql and not committed:  # the report's first read of the visits
            worker = threading.Thread(target=_plan_a_reminder_elsewhere, args=(week.sessions["s4"], committed))
            worker.start()
            worker.join()
        return result

    with connection.execute_wrapper(plan_one):
        during = _report(week)
    assert committed == [True]
    assert during.tables["funnel"].rows[0] == planned
    assert _report(week).tables["funnel"].rows[0] == ["planned", planned[1], planned[2] + 1]


def _plan_a_reminder_elsewhere(session: Session, committed: list[bool]) -> None:
    try:
        reminder_make(session, Channel.EMAIL, Message.Status.PLANNED, "", False).save()
        committed.append(True)
    finally:
        connections.close_all()


def _csv(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.content.decode())))


def test_the_page_shows_each_table_and_its_csv_is_that_table(week):
    client = client_as(staff_user("Scheduler", clinics=(week.clinic,)))
    query = {"clinic": week.clinic.pk, "first": MONDAY.isoformat(), "last": SUNDAY.isoformat()}
    page = client.get("/staff/reports/", query)
    assert page.status_code == 200
    html = page.content.decode()
    assert "25.0%" in html and "1 of 4 marked visits" in html and "<svg" in html
    for name in (
        "weekday",
        "hour",
        "protocol",
        "chair_use",
        "confirmations",
        "lead_time",
        "funnel",
        "skipped",
    ):
        table = page.context["report"].tables[name]
        download = client.get("/staff/reports/", {**query, "csv": name})
        assert download["Content-Type"].startswith("text/csv")
        assert _csv(download) == [table.columns, *[[str(cell) for cell in row] for row in table.rows]]
    visits = _csv(client.get("/staff/reports/", {**query, "csv": "visits"}))
    s = week.sessions
    assert visits[1:] == [
        [str(s["s1"].pk), str(s["s1"].series_id), "1", "Depression induction", "Chair 1", "2026-11-02", "09:00",
         "completed", "no", "yes", "10", "120", "09:05", "11:00"],
        [str(s["s2"].pk), str(s["s2"].series_id), "1", "Depression induction", "Chair 2", "2026-11-02", "09:00",
         "no_show", "no", "no", "10", "120", "", ""],
        [str(s["s3"].pk), str(s["s3"].series_id), "1", "Depression induction", "Chair 1", "2026-11-02", "13:00",
         "cancelled", "yes", "no", "5", "0", "", ""],
        [str(s["s6"].pk), str(s["s6"].series_id), "1", "Pain course", "Chair 1", "2026-11-03", "08:00",
         "completed", "no", "yes", "40", "300", "08:00", "13:00"],
        [str(s["s4"].pk), str(s["s4"].series_id), "1", "Depression induction", "Chair 1", "2026-11-03", "10:00",
         "cancelled", "no", "", "20", "0", "", ""],
        [str(s["s5"].pk), str(s["s5"].series_id), "1", "Depression induction", "Chair 2", "2026-11-03", "10:00",
         "arrived", "no", "no", "3", "120", "10:00", ""],
    ]  # fmt: skip


def test_csv_keeps_a_formula_looking_name_as_text(week):
    week.pain.name = "=HYPERLINK(1)"
    week.pain.save()
    client = client_as(staff_user("Clinic admin", clinics=(week.clinic,)))
    query = {"clinic": week.clinic.pk, "first": MONDAY.isoformat(), "last": SUNDAY.isoformat(), "csv": "protocol"}
    rows = _csv(client.get("/staff/reports/", query))
    assert "'=HYPERLINK(1)" in [row[0] for row in rows]


def test_a_clinic_limited_user_sees_only_their_clinic_and_nurses_see_no_reports(week):
    other = clinic_make()
    client = client_as(staff_user("Scheduler", clinics=(other,)))
    refused = client.get("/staff/reports/", {"clinic": week.clinic.pk})
    assert refused.status_code == 400 and "clinic" in refused.context["form"].errors
    own = client.get("/staff/reports/")
    assert own.status_code == 200 and own.context["report"].scope.clinic == other
    assert client_as(staff_user("Nurse", clinics=(week.clinic,))).get("/staff/reports/").status_code == 403
    assert (
        client_as(staff_user("Scheduler", clinics=(other,), username="s2"))
        .get("/staff/reports/", {"clinic": other.pk, "protocol": week.pain.pk})
        .status_code
        == 400
    )


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"first": "2026-11-08", "last": "2026-11-01"}, "first"),
        ({"first": "2025-01-01", "last": "2026-11-01"}, "first"),
        ({"first": "yesterday"}, "first"),
        ({"weekday": "9"}, "weekday"),
        ({"hour": "24"}, "hour"),
    ],
)
def test_bad_choices_answer_400_naming_the_field(week, query, field):
    client = client_as(staff_user("Scheduler", clinics=(week.clinic,)))
    response = client.get("/staff/reports/", {"clinic": week.clinic.pk, **query})
    assert response.status_code == 400
    assert field in response.context["form"].errors


def test_an_unknown_csv_table_answers_400(week):
    client = client_as(staff_user("Scheduler", clinics=(week.clinic,)))
    response = client.get("/staff/reports/", {"clinic": week.clinic.pk, "csv": "patients"})
    assert response.status_code == 400 and b"patients" in response.content
