from datetime import date, datetime, timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from sessions.models import Series, Session

pytestmark = pytest.mark.django_db


def next_weekday_at(hour: int, days_ahead: int = 3) -> str:
    return (
        (datetime.now() + timedelta(days=days_ahead)).replace(hour=hour, minute=0, second=0, microsecond=0).isoformat()
    )


def book(api: APIClient, clinic, patient, *, protocol="Depression induction", query="", **body):
    protocol_id = clinic.protocols.get(name=protocol).pk
    return api.post(f"/api/series/{query}", {"patient": patient.pk, "protocol": protocol_id, **body}, format="json")


def test_a_scheduler_books_a_series_with_auto_placement(scheduler_api, clinic, patient):
    answer = book(scheduler_api, clinic, patient, first_start=next_weekday_at(10))

    assert answer.status_code == 201, answer.json()
    sessions = answer.json()["sessions"]
    assert [(s["number"], s["of"], s["status"]) for s in sessions] == [(k, 6, "booked") for k in range(1, 7)]
    assert {s["clinic_time"][11:16] for s in sessions} == {"10:00"}
    assert {s["clinic_time"][-6:] for s in sessions} == {"-07:00"}  # Phoenix


def test_preview_plans_without_booking(scheduler_api, clinic, patient):
    answer = book(scheduler_api, clinic, patient, first_start=next_weekday_at(10), query="?preview=1")

    assert answer.status_code == 200
    assert answer.json()["bookable"] is True
    assert [s["conflict"] for s in answer.json()["sessions"]] == [None] * 6
    assert Series.objects.count() == 0


def test_a_conflict_answers_409_with_code_and_rule(scheduler_api, clinic, patient):
    starts = [next_weekday_at(10, days) for days in (2, 3, 4, 12, 13, 14)]

    answer = book(scheduler_api, clinic, patient, starts=starts)

    assert answer.status_code == 409
    assert answer.json()["code"] == "series_gap"
    assert answer.json()["rule"] == 5
    assert answer.json()["session"] == 4
    assert Session.objects.count() == 0


def test_sessions_are_listed_by_clinic_and_clinic_day(scheduler_api, clinic, patient):
    book(scheduler_api, clinic, patient, first_start=next_weekday_at(10))
    day = (datetime.now() + timedelta(days=3)).date()

    listed = scheduler_api.get(f"/api/sessions/?clinic={clinic.pk}&date={day.isoformat()}").json()

    assert listed["count"] == 1
    assert listed["results"][0]["number"] == 1
    assert scheduler_api.get(f"/api/sessions/?clinic={clinic.pk}&date={date(2020, 1, 1)}").json()["count"] == 0


def test_reschedule_cancel_confirm_and_slots(scheduler_api, clinic, patient):
    sessions = book(scheduler_api, clinic, patient, first_start=next_weekday_at(10)).json()["sessions"]
    second = sessions[1]["id"]

    slots = scheduler_api.get(f"/api/sessions/{second}/slots?days=7").json()
    assert slots
    moved = scheduler_api.post(
        f"/api/sessions/{second}/reschedule", {"starts_at": slots[-1]["starts_at"]}, format="json"
    )
    assert moved.status_code == 200, moved.json()
    assert moved.json()["version"] == 2
    assert moved.json()["starts_at"].startswith(slots[-1]["starts_at"][:16])

    confirmed = scheduler_api.post(f"/api/sessions/{second}/confirm", {"driver_confirmed": True}, format="json")
    assert (confirmed.json()["status"], confirmed.json()["driver_confirmed"]) == ("confirmed", True)

    cancelled = scheduler_api.post(f"/api/sessions/{second}/cancel", {"reason": "family event"}, format="json")
    assert (cancelled.json()["status"], cancelled.json()["cancellation_reason"]) == ("cancelled", "family event")
    again = scheduler_api.post(f"/api/sessions/{second}/cancel", {"reason": "again"}, format="json")
    assert (again.status_code, again.json()["code"]) == (409, "invalid_status")


def test_a_taken_slot_answers_409(scheduler_api, clinic, patient):
    from tests.factories import patient_make

    first = book(scheduler_api, clinic, patient, first_start=next_weekday_at(10)).json()["sessions"][0]
    holder = patient_make(clinic, first_name="Jordan", last_name="Reyes")
    other = book(scheduler_api, clinic, holder, protocol="Booster", starts=[next_weekday_at(14)])
    chair = other.json()["sessions"][0]["chair"]

    answer = scheduler_api.post(
        f"/api/sessions/{first['id']}/reschedule", {"starts_at": next_weekday_at(14), "chair": chair}, format="json"
    )

    assert (answer.status_code, answer.json()["code"]) == (409, "chair_overlap")
    assert "Held by Jordan Reyes's Booster (1 of 1), 14:00–" in answer.json()["detail"]


def test_roles_limit_what_each_user_may_do(nurse_api, clinic, patient):
    anonymous = APIClient().post("/api/series/", {}, format="json")
    assert anonymous.status_code == 401

    assert book(nurse_api, clinic, patient, first_start=next_weekday_at(10)).status_code == 403
    assert nurse_api.get("/api/sessions/").status_code == 200


def test_a_nurse_marks_attendance_but_cannot_cancel(nurse_api, scheduler_api, clinic, patient):
    session = book(scheduler_api, clinic, patient, first_start=next_weekday_at(10)).json()["sessions"][0]

    assert nurse_api.post(f"/api/sessions/{session['id']}/cancel", {"reason": "x"}, format="json").status_code == 403
    starts = timezone.now() + timedelta(minutes=20)  # the day comes; the patient sits down
    Session.objects.filter(pk=session["id"]).update(
        starts_at=starts, ends_at=starts + timedelta(hours=1), chair_free_at=starts + timedelta(hours=1)
    )
    arrived = nurse_api.post(f"/api/sessions/{session['id']}/mark", {"status": "arrived"}, format="json")
    assert (arrived.status_code, arrived.json()["status"]) == (200, "arrived")


def test_a_clinic_is_created_with_its_hours_and_staffing(admin_api):
    answer = admin_api.post(
        "/api/clinics/",
        {
            "name": "North Clinic",
            "time_zone": "America/New_York",
            "phone": "+12125550123",
            "address": "2 Side St",
            "sender_name": "North Wellness",
            "opening_hours": [{"weekday": d, "opens": "08:00", "closes": "17:00"} for d in range(5)],
            "staffing_blocks": [{"weekday": 0, "starts": "08:00", "ends": "17:00", "nurses": 2}],
            "closed_dates": [{"date": "2026-12-25", "reason": "holiday"}],
        },
        format="json",
    )

    assert answer.status_code == 201, answer.json()
    assert len(answer.json()["opening_hours"]) == 5
    assert answer.json()["staffing_blocks"][0]["patients_per_nurse"] == 4
