"""A series over time through the API (rules 10, 11, 12, 15): one active series per protocol
unless staff give a reason, re-flow and make-up with a preview, the gap report on a series,
attendance times and undo."""

import threading
from datetime import date, datetime, time, timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from sessions.models import AuditEvent, Series, Session, SessionMove
from sessions.services import series_book, series_cancel
from tests.factories import clinic_make, patient_make

pytestmark = pytest.mark.django_db


def clinic_day(clinic, days_ahead: int) -> date:
    return (timezone.now().astimezone(clinic.zone) + timedelta(days=days_ahead)).date()


def wall_clock(day: date, hour: int, minute: int = 0) -> str:
    """A time on the clinic's wall clock, as a client sends it: without an offset."""
    return datetime.combine(day, time(hour, minute)).isoformat()


def shown_at(value: str) -> tuple[date, str]:
    """A time the API shows in the clinic's zone, as its day and HH:MM."""
    local = datetime.fromisoformat(value)
    return local.date(), f"{local:%H:%M}"


def book(api: APIClient, clinic, patient, *, query: str = "", protocol: str = "Depression induction", **body):
    protocol_id = clinic.protocols.get(name=protocol).pk
    return api.post(f"/api/series/{query}", {"patient": patient.pk, "protocol": protocol_id, **body}, format="json")


@pytest.fixture
def first_day(clinic) -> date:
    return clinic_day(clinic, 3)


@pytest.fixture
def series(scheduler_api, clinic, patient, first_day) -> dict:
    """Six sessions at 10:00, one a day from three days ahead (the protocol allows 1–4 days apart)."""
    answer = book(scheduler_api, clinic, patient, first_start=wall_clock(first_day, 10))
    assert answer.status_code == 201, answer.json()
    return answer.json()


def session_id(series: dict, number: int) -> int:
    return next(s["id"] for s in series["sessions"] if s["number"] == number and s["status"] == "booked")


def reflow(api: APIClient, series: dict, *, query: str = "", **body):
    return api.post(f"/api/series/{series['id']}/reflow{query}", body, format="json")


def days_of(api: APIClient, series: dict) -> dict[int, tuple[date, str]]:
    """Each holding session of the series, by number, as its clinic day and time."""
    sessions = api.get(f"/api/series/{series['id']}/").json()["sessions"]
    return {s["number"]: shown_at(s["clinic_time"]) for s in sessions if s["status"] in Session.HOLDING}


# Rule 10: one active series per protocol, unless staff give a reason


def test_a_second_active_series_of_the_same_protocol_answers_409_on_session_1(scheduler_api, clinic, patient, series):
    later = wall_clock(clinic_day(clinic, 20), 10)

    preview = book(scheduler_api, clinic, patient, first_start=later, query="?preview=1")
    answer = book(scheduler_api, clinic, patient, first_start=later)

    assert preview.status_code == 200
    assert preview.json()["bookable"] is False
    assert preview.json()["sessions"][0]["conflict"]["code"] == "series_duplicate"
    assert answer.status_code == 409
    assert {key: answer.json()[key] for key in ("code", "rule", "session")} == {
        "code": "series_duplicate", "rule": 10, "session": 1,
    }  # fmt: skip
    assert Series.objects.filter(patient=patient).count() == 1


def test_an_override_reason_books_the_second_series_and_the_audit_trail_keeps_it(
    scheduler_api, clinic, patient, series
):
    later = wall_clock(clinic_day(clinic, 20), 10)
    reason = "restarting after a hospital stay"

    preview = book(scheduler_api, clinic, patient, first_start=later, override_reason=reason, query="?preview=1")
    answer = book(scheduler_api, clinic, patient, first_start=later, override_reason=reason)

    assert preview.json()["bookable"] is True
    assert answer.status_code == 201, answer.json()
    assert answer.json()["override_reason"] == reason
    booked = AuditEvent.objects.get(series_id=answer.json()["id"], action="booked")
    assert (booked.via, booked.actor.username) == ("api", "scheduler")
    assert booked.detail.endswith(f"beside another active series: {reason}")


def test_an_override_reason_is_one_line_of_at_most_300_characters(scheduler_api, clinic, patient, series):
    later = wall_clock(clinic_day(clinic, 20), 10)

    for reason in ("first line\nsecond line", "x" * 301):
        answer = book(scheduler_api, clinic, patient, first_start=later, override_reason=reason)
        assert answer.status_code == 400
        assert "override_reason" in answer.json()


@pytest.mark.django_db(transaction=True)
@pytest.mark.concurrency
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL: row locks")
def test_two_desks_booking_a_patients_second_series_at_once_give_one_booking(settings, scheduler_api, clinic, patient):
    settings.REMINDER_KICK_ON_BOOKING = False  # no broker here; nothing is sent
    induction = clinic.protocols.get(name="Depression induction")
    first_start = datetime.combine(clinic_day(clinic, 2), time(10))
    first = series_book(patient=patient, protocol=induction, first_start=first_start)
    series_cancel(series=first, reason="paused")
    desks = [APIClient(), APIClient()]
    for desk in desks:
        desk.force_authenticate(User.objects.get(username="scheduler"))
    gate = threading.Barrier(len(desks), timeout=30)
    answers: list = []

    def book_from(desk: APIClient, days_ahead: int) -> None:
        try:
            gate.wait()
            answers.append(book(desk, clinic, patient, first_start=wall_clock(clinic_day(clinic, days_ahead), 10)))
        finally:
            connection.close()

    threads = [threading.Thread(target=book_from, args=(desk, 10 * n)) for n, desk in enumerate(desks, start=1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(answer.status_code for answer in answers) == [201, 409]
    refused = next(answer.json() for answer in answers if answer.status_code == 409)
    assert (refused["code"], refused["session"]) == ("series_duplicate", 1)
    assert Series.objects.filter(patient=patient, protocol=induction, status=Series.Status.ACTIVE).count() == 1


# Rule 11: re-flow and make-up


def test_a_reflow_preview_shows_every_step_and_books_nothing(scheduler_api, series, first_day):
    third = session_id(series, 3)
    before = days_of(scheduler_api, series)

    answer = reflow(scheduler_api, series, session=third, starts_at=wall_clock(first_day + timedelta(5), 10),
                    query="?preview=1")  # fmt: skip

    assert answer.status_code == 200, answer.json()
    assert answer.json()["fits"] is True
    steps = answer.json()["steps"]
    assert [(s["number"], s["changes"], s["conflict"]) for s in steps] == [(n, True, None) for n in (3, 4, 5, 6)]
    assert steps[0]["session"] == third
    assert shown_at(steps[0]["from"]) == (first_day + timedelta(2), "10:00")
    assert shown_at(steps[0]["to"]) == (first_day + timedelta(5), "10:00")
    assert steps[0]["to"].endswith("-07:00")  # the clinic's wall clock (Phoenix)
    assert days_of(scheduler_api, series) == before
    assert not SessionMove.objects.exists()


def test_a_reflow_moves_the_session_and_re_spaces_the_later_ones_within_the_protocol(scheduler_api, series, first_day):
    answer = reflow(scheduler_api, series, session=session_id(series, 3),
                    starts_at=wall_clock(first_day + timedelta(5), 10), reason="patient away")  # fmt: skip

    assert answer.status_code == 200, answer.json()
    assert [(s["number"], s["version"], s["status"]) for s in answer.json()["sessions"]] == [
        (n, 2, "booked") for n in (3, 4, 5, 6)
    ]
    assert days_of(scheduler_api, series) == {
        number: (first_day + timedelta(days), "10:00") for number, days in {1: 0, 2: 1, 3: 5, 4: 6, 5: 7, 6: 8}.items()
    }
    assert scheduler_api.get(f"/api/series/{series['id']}/").json()["off_protocol"] == []


def test_a_cancelled_session_is_made_up_under_its_number_and_the_series_is_back_on_protocol(
    scheduler_api, series, first_day
):
    third = session_id(series, 3)
    scheduler_api.post(f"/api/sessions/{third}/cancel", {"reason": "unwell"}, format="json")
    off = scheduler_api.get(f"/api/series/{series['id']}/").json()["off_protocol"]
    assert off == [{"number": 3, "text": "session 3 cancelled: rebook it"}]
    makeup_at = wall_clock(first_day + timedelta(2), 15)

    preview = reflow(scheduler_api, series, session=third, starts_at=makeup_at, query="?preview=1")
    answer = reflow(scheduler_api, series, session=third, starts_at=makeup_at)

    first_step = preview.json()["steps"][0]
    assert (first_step["session"], first_step["from"]) == (None, None)
    assert shown_at(first_step["to"]) == (first_day + timedelta(2), "15:00")
    assert [s["changes"] for s in preview.json()["steps"][1:]] == [False, False, False]  # 4–6 keep their gaps
    assert answer.status_code == 200, answer.json()
    [made] = answer.json()["sessions"]
    assert (made["number"], made["makeup_for"], made["status"]) == (3, third, "booked")
    assert shown_at(made["clinic_time"]) == (first_day + timedelta(2), "15:00")
    assert scheduler_api.get(f"/api/series/{series['id']}/").json()["off_protocol"] == []


def test_a_reflow_that_cannot_place_a_session_answers_409_naming_it_and_books_nothing(
    scheduler_api, clinic, series, first_day
):
    # Session 4 moves to day 6; session 5 would need one of days 7–10, all closed.
    for days in range(7, 11):
        clinic.closed_dates.create(date=first_day + timedelta(days), reason="inventory")
    body = {"session": session_id(series, 4), "starts_at": wall_clock(first_day + timedelta(6), 10)}
    before = days_of(scheduler_api, series)

    preview = reflow(scheduler_api, series, query="?preview=1", **body)
    answer = reflow(scheduler_api, series, **body)

    assert preview.json()["fits"] is False
    assert [(s["number"], (s["conflict"] or {}).get("code")) for s in preview.json()["steps"]] == [
        (4, None), (5, "no_valid_slot")
    ]  # fmt: skip
    assert preview.json()["steps"][1]["to"] is None
    assert answer.status_code == 409
    assert (answer.json()["code"], answer.json()["rule"], answer.json()["session"]) == ("no_valid_slot", 7, 5)
    assert days_of(scheduler_api, series) == before


def test_a_reflow_of_a_session_of_another_series_is_refused_naming_the_session(
    scheduler_api, clinic, series, first_day
):
    other = book(scheduler_api, clinic, patient_make(clinic), first_start=wall_clock(first_day, 12)).json()

    answer = reflow(scheduler_api, series, session=session_id(other, 2), starts_at=wall_clock(first_day, 15))

    assert answer.status_code == 400
    assert answer.json() == {"session": ["That session belongs to another series."]}


def test_another_clinics_series_cannot_be_reflowed(series, first_day):
    elsewhere = clinic_make(chairs=1)
    user = User.objects.create_user(username="scheduler-elsewhere")
    user.groups.add(Group.objects.get(name="Scheduler"), Group.objects.create(name=f"clinic:{elsewhere.pk}"))
    api = APIClient()
    api.force_authenticate(user)

    answer = reflow(api, series, session=session_id(series, 3), starts_at=wall_clock(first_day + timedelta(5), 10))

    assert answer.status_code == 404
    assert not SessionMove.objects.exists()


def test_a_nurse_may_not_reflow(nurse_api, series, first_day):
    answer = reflow(
        nurse_api, series, session=session_id(series, 3), starts_at=wall_clock(first_day + timedelta(5), 10)
    )

    assert answer.status_code == 403


# Rule 12: the gap report on a series


def test_listing_series_reads_the_gap_report_once_for_the_whole_page(scheduler_api, clinic, first_day):
    hours = iter(range(8, 18, 2))

    def listing_queries(more_series: int) -> int:
        for _ in range(more_series):
            book(scheduler_api, clinic, patient_make(clinic), first_start=wall_clock(first_day, next(hours)))
        with CaptureQueriesContext(connection) as queries:
            listed = scheduler_api.get("/api/series/").json()
        assert all(row["off_protocol"] == [] for row in listed["results"])
        return len(queries)

    assert listing_queries(1) == listing_queries(3)


# Rule 15: attendance times and undo


@pytest.fixture
def started(clinic, patient) -> Session:
    """A booster session that began an hour ago (booked inside opening hours, whatever the hour
    the test runs, then put back in time)."""
    starts = timezone.now().replace(second=0, microsecond=0) - timedelta(hours=1)
    booster = clinic.protocols.get(name="Booster")
    booked_at = datetime.combine(timezone.localdate(timezone=clinic.zone) + timedelta(days=3), time(10))
    session = series_book(patient=patient, protocol=booster, first_start=booked_at).sessions.get()
    Session.objects.filter(pk=session.pk).update(
        starts_at=starts, ends_at=starts + timedelta(hours=2), chair_free_at=starts + timedelta(hours=2)
    )
    session.refresh_from_db()
    return session


def test_arrived_and_completed_record_the_chair_times_given(nurse_api, clinic, started):
    sat_down = (started.starts_at - timedelta(minutes=5)).astimezone(clinic.zone)
    got_up = (started.starts_at + timedelta(minutes=50)).astimezone(clinic.zone)

    arrived = nurse_api.post(
        f"/api/sessions/{started.pk}/mark",
        {"status": "arrived", "at": sat_down.replace(tzinfo=None).isoformat()},
        format="json",
    )
    completed = nurse_api.post(f"/api/sessions/{started.pk}/mark",
                               {"status": "completed", "at": got_up.isoformat()}, format="json")  # fmt: skip

    assert arrived.status_code == 200, arrived.json()
    assert completed.status_code == 200, completed.json()
    assert datetime.fromisoformat(completed.json()["chair_in_at"]) == sat_down
    assert datetime.fromisoformat(completed.json()["chair_out_at"]) == got_up
    assert completed.json()["chair_out_at"].endswith("-07:00")


def test_a_chair_time_still_to_come_is_refused(nurse_api, clinic, started):
    later = (timezone.now() + timedelta(minutes=30)).astimezone(clinic.zone).replace(tzinfo=None)

    answer = nurse_api.post(f"/api/sessions/{started.pk}/mark", {"status": "arrived", "at": later.isoformat()},
                            format="json")  # fmt: skip

    assert answer.status_code == 409
    assert (answer.json()["code"], answer.json()["rule"]) == ("attendance_times", 15)
    assert nurse_api.get(f"/api/sessions/{started.pk}/").json()["status"] == "booked"


@pytest.mark.parametrize("at", ["just now", "0001-01-01T00:00+14:00", "2001-01-01T10:00"])
def test_a_chair_time_that_cannot_be_read_or_is_years_off_names_the_field(nurse_api, started, at):
    answer = nurse_api.post(f"/api/sessions/{started.pk}/mark", {"status": "arrived", "at": at}, format="json")

    assert answer.status_code == 400
    assert "at" in answer.json()


def test_a_nurse_undoes_a_mark_and_the_undo_is_audited(nurse_api, started):
    nurse_api.post(f"/api/sessions/{started.pk}/mark", {"status": "arrived"}, format="json")

    answer = nurse_api.post(f"/api/sessions/{started.pk}/undo")

    assert answer.status_code == 200, answer.json()
    assert (answer.json()["status"], answer.json()["chair_in_at"]) == ("booked", None)
    undo = AuditEvent.objects.get(session=started, action="undo")
    assert (undo.via, undo.actor.username, undo.detail) == ("api", "nurse", "undo arrived")


def test_undoing_a_cancel_books_the_time_again_and_needs_the_cancel_permission(scheduler_api, nurse_api, series):
    third = session_id(series, 3)
    scheduler_api.post(f"/api/sessions/{third}/cancel", {"reason": "unwell"}, format="json")

    by_nurse = nurse_api.post(f"/api/sessions/{third}/undo")
    by_scheduler = scheduler_api.post(f"/api/sessions/{third}/undo")

    assert by_nurse.status_code == 403
    assert by_scheduler.status_code == 200, by_scheduler.json()
    assert (by_scheduler.json()["status"], by_scheduler.json()["cancellation_reason"]) == ("booked", "")


def test_a_scheduler_may_not_undo_a_nurses_mark(scheduler_api, nurse_api, started):
    nurse_api.post(f"/api/sessions/{started.pk}/mark", {"status": "arrived"}, format="json")

    answer = scheduler_api.post(f"/api/sessions/{started.pk}/undo")

    assert answer.status_code == 403
    assert Session.objects.get(pk=started.pk).status == Session.Status.ARRIVED


def test_a_session_with_nothing_to_undo_answers_409(nurse_api, started):
    answer = nurse_api.post(f"/api/sessions/{started.pk}/undo")

    assert answer.status_code == 409
    assert answer.json()["code"] == "invalid_status"
