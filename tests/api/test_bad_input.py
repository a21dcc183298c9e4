"""Bad input answers 400 naming the field, never 500."""

import json
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
        ({"weekdays": ["mon", "someday"]}, "weekdays"),
        ({"weekdays": "mon"}, "weekdays"),
        ({"weekdays": ["mon"]}, "weekdays"),  # weekdays place sessions after a first start, not given starts
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
        ({"first_name": "Ana\r\nBcc: x@example.com"}, "first_name"),
        ({"last_name": "Ruiz\x1bX"}, "last_name"),
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
        ({"sender_name": "Desert\r\nBcc: x@example.com"}, "sender_name"),
        ({"address": "1 Main St\nSuite 2"}, "address"),
        ({"name": "Desert\u2028Bloom"}, "name"),
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
        ({"patient_name": "Wellness\rvisit"}, "patient_name"),
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


# Numbers, ids and days beyond what the database and the calendar hold; nesting beyond the parser.


def post_json(api, url: str, text: str, method: str = "post"):
    """`text` sent as it is: json.dumps cannot write 1e400, only Infinity, which is not JSON."""
    return getattr(api, method)(url, text, content_type="application/json")


@pytest.mark.parametrize("number", ["1e400", "-1e400"])
def test_a_number_beyond_any_float_names_its_field(admin_api, scheduler_api, clinic, patient, number):
    booster = clinic.protocols.get(name="Booster").pk
    rule = {"clinic": clinic.pk, "channel": "sms", "offset_minutes": 60}
    cases = [
        (scheduler_api, "/api/series/", {**series_body(clinic, patient), "chair": "N"}, "chair"),
        (scheduler_api, "/api/series/", {"patient": "N", "protocol": booster, "first_start": soon()}, "patient"),
        (scheduler_api, "/api/series/", {"patient": patient.pk, "protocol": booster, "starts": ["N"]}, "starts"),
        (admin_api, "/api/chairs/", {"clinic": "N", "name": "Chair 9"}, "clinic"),
        (admin_api, "/api/reminder-rules/", {**rule, "protocol": "N"}, "protocol"),
        (admin_api, "/api/reminder-rules/", {**rule, "offset_minutes": "N"}, "offset_minutes"),
    ]

    for api, url, body, field in cases:
        answer = post_json(api, url, json.dumps(body).replace('"N"', number))
        assert answer.status_code == 400, (body, answer.content[:300])
        assert field in answer.json(), (body, answer.json())
    hours = json.dumps({"opening_hours": [{"weekday": "N"}]}).replace('"N"', number)
    answer = post_json(admin_api, f"/api/clinics/{clinic.pk}/", hours, "patch")
    assert answer.status_code == 400 and "weekday" in answer.json()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"protocol": 2**63}, "protocol"),
        ({"chair": -(10**30)}, "chair"),
        ({"patient": True}, "patient"),
    ],
)
def test_an_id_is_a_whole_number_a_database_id_can_be(scheduler_api, clinic, patient, changes, field):
    answer = scheduler_api.post("/api/series/", series_body(clinic, patient, changes), format="json")

    assert answer.status_code == 400, answer.content[:300]
    assert field in answer.json()
    assert not Session.objects.exists()


def test_a_fractional_id_is_not_taken_for_the_row_below_it(scheduler_api, clinic, patient):
    answer = scheduler_api.post(
        "/api/series/", series_body(clinic, patient, {"patient": patient.pk + 0.5}), format="json"
    )

    assert answer.status_code == 400, answer.content[:300]
    assert "patient" in answer.json()
    assert not Session.objects.exists()


@pytest.mark.parametrize("query", [f"clinic={2**63}", "clinic=1.5", "clinic=%00", f"series={10**30}", "series=-1"])
def test_an_id_in_a_query_is_a_whole_number_a_database_id_can_be(scheduler_api, clinic, query):
    answer = scheduler_api.get(f"/api/sessions/?{query}")

    assert answer.status_code == 400
    assert query.split("=")[0] in answer.json()


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01", "1899-12-31", "3000-01-01"])
def test_a_day_beyond_the_calendar_names_the_field(scheduler_api, admin_api, clinic, day):
    listed = scheduler_api.get(f"/api/sessions/?clinic={clinic.pk}&date={day}")
    closed = admin_api.patch(f"/api/clinics/{clinic.pk}/", {"closed_dates": [{"date": day}]}, format="json")

    assert listed.status_code == 400 and "date" in listed.json()
    assert closed.status_code == 400 and "date" in closed.json()["closed_dates"]["0"]


def test_the_first_and_last_days_of_the_calendar_are_answered(scheduler_api, clinic):
    for day in ("1900-01-01", "2999-12-31"):
        assert scheduler_api.get(f"/api/sessions/?clinic={clinic.pk}&date={day}").json()["count"] == 0


@pytest.mark.parametrize("opening", ["[", '{"a": '])
def test_json_nested_past_any_body_of_the_api_is_a_400(scheduler_api, opening):
    closing = "]" if opening == "[" else "}"
    deep = post_json(scheduler_api, "/api/series/", opening * 100_000 + "1" + closing * 100_000)
    just_over = post_json(scheduler_api, "/api/series/", opening * 33 + "1" + closing * 33)

    assert (deep.status_code, just_over.status_code) == (400, 400)
    assert "nested deeper than 32 levels" in deep.json()["detail"]
