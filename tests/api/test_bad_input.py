"""Bad input answers 400 naming the field, never 500."""

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from sessions.models import Session
from sessions.services import series_book

pytestmark = pytest.mark.django_db

HUGE = "x" * 100_000


def soon(days: int = 10) -> str:
    return (datetime.now() + timedelta(days=days)).replace(hour=10, minute=0).isoformat(timespec="minutes")


def series_body(clinic, patient, changes=None):
    body = {
        "patient": patient.pk,
        "protocol": clinic.protocols.get(name="Booster").pk,
        "starts": [soon(3)],
    }
    body.update(changes or {})
    return {k: v for k, v in body.items() if v is not ...}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"protocol": 999_999}, "protocol"),
        ({"protocol": "booster"}, "protocol"),
        ({"patient": 10**30}, "patient"),
        ({"patient": None}, "patient"),
        ({"starts": ["2001-01-01T10:00"]}, "starts"),
        ({"starts": ["next tuesday"]}, "starts"),
        ({"starts": [12345]}, "starts"),
        ({"starts": "2026-01-01T10:00"}, "starts"),
        ({"starts": [HUGE]}, "starts"),
        ({"starts": ["9999-12-31T23:59"]}, "starts"),
        ({"starts": ..., "first_start": None}, "first_start"),
        ({"starts": ..., "first_start": "2001-01-01T10:00"}, "first_start"),
        ({"first_start": soon()}, "first_start"),  # both forms at once
        ({"chair": "one"}, "chair"),
        ({"starts": [soon(), soon(11)]}, "starts"),  # a booster has one session
    ],
)
def test_bad_series_input_names_the_field(scheduler_api, clinic, patient, changes, field):
    answer = scheduler_api.post("/api/series/", series_body(clinic, patient, changes), format="json")

    assert answer.status_code == 400, answer.content[:300]
    assert field in answer.json()


def test_a_nonexistent_local_time_names_the_field(scheduler_api, db):
    from tests.factories import clinic_make, patient_make, protocol_make

    clinic = clinic_make(time_zone="America/New_York", opens=datetime.min.time())
    booster = protocol_make(clinic, kind="booster", chair_minutes=60)
    patient = patient_make(clinic)
    body = {"patient": patient.pk, "protocol": booster.pk, "starts": ["2027-03-14T02:30"]}

    answer = scheduler_api.post("/api/series/", body, format="json")

    assert answer.status_code == 400
    assert "does not exist" in answer.json()["starts"][0]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"phone": "555-0123"}, "phone"),
        ({"phone": "+1555"}, "phone"),
        ({"phone": HUGE}, "phone"),
        ({"email": "not-an-email"}, "email"),
        ({"first_name": HUGE}, "first_name"),
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"language": "fr"}, "language"),
        ({"clinic": 10**20}, "clinic"),
        ({"sms_enabled": "maybe"}, "sms_enabled"),
    ],
)
def test_bad_patient_input_names_the_field(admin_api, clinic, changes, field):
    body = {"clinic": clinic.pk, "first_name": "Ana", "last_name": "Ruiz", "external_id": "A1", "phone": "+16025550142"}

    answer = admin_api.post("/api/patients/", {**body, **changes}, format="json")

    assert answer.status_code == 400, answer.content[:300]
    assert field in answer.json()


def test_a_duplicate_mrn_is_refused_cleanly(admin_api, clinic, patient):
    body = {"clinic": clinic.pk, "first_name": "Ana", "last_name": "Ruiz", "external_id": patient.external_id}

    answer = admin_api.post("/api/patients/", body, format="json")

    assert answer.status_code == 400


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"opening_hours": [{"weekday": 0, "opens": "17:00", "closes": "08:00"}]}, "opening_hours"),
        ({"opening_hours": [{"weekday": 9, "opens": "08:00", "closes": "17:00"}]}, "opening_hours"),
        ({"staffing_blocks": [{"weekday": 0, "starts": "12:00", "ends": "08:00", "nurses": 1}]}, "staffing_blocks"),
        ({"time_zone": "EST5EDT-ish"}, "time_zone"),
        ({"message_window_start": "21:00", "message_window_end": "08:00"}, "message_window_end"),
        ({"slot_minutes": 0}, "slot_minutes"),
        ({"turnover_buffer_minutes": -5}, "turnover_buffer_minutes"),
        ({"turnover_buffer_minutes": 10**9}, "turnover_buffer_minutes"),
        ({"name": HUGE}, "name"),
    ],
)
def test_bad_clinic_input_names_the_field(admin_api, changes, field):
    body = {"name": "C", "time_zone": "America/Phoenix", "phone": "+16025550100", "address": "a", "sender_name": "s"}

    answer = admin_api.post("/api/clinics/", {**body, **changes}, format="json")

    assert answer.status_code == 400, answer.content[:300]
    assert field in answer.json()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"min_gap_days": 5, "max_gap_days": 2}, "max_gap_days"),
        ({"chair_minutes": 0}, "chair_minutes"),
        ({"chair_minutes": 5000}, "chair_minutes"),
        ({"session_count": "six"}, "session_count"),
        ({"preparation_instructions": HUGE}, "preparation_instructions"),
    ],
)
def test_bad_protocol_input_names_the_field(admin_api, clinic, changes, field):
    body = {"clinic": clinic.pk, "name": "New", "patient_name": "Visit", "session_count": 3, "chair_minutes": 90}

    answer = admin_api.post("/api/protocols/", {**body, **changes}, format="json")

    assert answer.status_code == 400, answer.content[:300]
    assert field in answer.json()


@pytest.mark.parametrize(
    ("query", "field"),
    [("date=2026-13-45", "date"), ("date=2026-01-01", "clinic"), ("clinic=abc", "clinic"), ("status=lost", "status")],
)
def test_bad_session_filters_name_the_field(scheduler_api, clinic, query, field):
    answer = scheduler_api.get(f"/api/sessions/?{query}")

    assert answer.status_code == 400
    assert field in answer.json()


def test_bad_action_input_names_the_field(scheduler_api, clinic, patient):
    booked = scheduler_api.post("/api/series/", series_body(clinic, patient), format="json").json()
    session = booked["sessions"][0]["id"]

    cases = [
        (f"/api/sessions/{session}/reschedule", {"starts_at": "soon"}, "starts_at"),
        (f"/api/sessions/{session}/reschedule", {"starts_at": "2001-01-01T10:00"}, "starts_at"),
        (f"/api/sessions/{session}/reschedule", {"starts_at": soon(), "chair": 10**12}, "chair"),
        (f"/api/sessions/{session}/cancel", {}, "reason"),
        (f"/api/sessions/{session}/cancel", {"reason": HUGE}, "reason"),
        (f"/api/sessions/{session}/confirm", {"driver_confirmed": "perhaps"}, "driver_confirmed"),
    ]
    for url, body, field in cases:
        answer = scheduler_api.post(url, body, format="json")
        assert answer.status_code == 400, (url, body, answer.content[:300])
        assert field in answer.json()
    assert scheduler_api.get(f"/api/sessions/{session}/slots?days=1000").status_code == 400


def test_malformed_json_is_a_400(scheduler_api):
    answer = scheduler_api.post("/api/series/", "{not json", content_type="application/json")

    assert answer.status_code == 400


def test_an_unknown_session_is_a_404(scheduler_api):
    assert scheduler_api.get(f"/api/sessions/{10**25}/").status_code == 404
    assert scheduler_api.post("/api/sessions/abc/cancel", {"reason": "x"}, format="json").status_code == 404


def test_a_boolean_must_be_true_or_false(scheduler_api, clinic, patient):
    series = series_book(patient=patient, protocol=clinic.protocols.get(name="Depression induction"),
                         first_start=(timezone.now() + timedelta(days=3)).astimezone(clinic.zone)
                         .replace(hour=9, minute=0, tzinfo=None))  # fmt: skip
    session = series.sessions.get(number=1)

    answers = [
        scheduler_api.post(f"/api/sessions/{session.pk}/confirm", {"driver_confirmed": value}, format="json")
        for value in (0, 1, "yes", "true")
    ]

    assert [a.status_code for a in answers] == [400] * 4
    assert answers[0].json()["driver_confirmed"] == ["Must be true or false."]
    session.refresh_from_db()
    assert session.status == Session.Status.BOOKED
