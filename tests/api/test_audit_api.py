"""Every write through the API is in the audit trail with the user who made it, via "api"."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from notifications.models import ReminderRule
from sessions.models import AuditEvent, OpeningHours, Session
from sessions.services import series_book

pytestmark = pytest.mark.django_db


@pytest.fixture
def session(clinic, patient):
    booster = clinic.protocols.get(name="Booster")
    first_start = (timezone.now() + timedelta(days=3)).astimezone(clinic.zone).replace(hour=10, minute=0, tzinfo=None)
    return series_book(patient=patient, protocol=booster, first_start=first_start).sessions.get()


def trail(**filters) -> list[tuple]:
    events = AuditEvent.objects.filter(**filters).exclude(via="system").order_by("id")
    return [(e.action, e.via, e.actor.username if e.actor else None, e.detail) for e in events]


def test_it_records_who_cancelled_a_session(scheduler_api, session):
    answer = scheduler_api.post(f"/api/sessions/{session.pk}/cancel", {"reason": "unwell"}, format="json")

    assert answer.status_code == 200, answer.json()
    assert trail(session=session) == [("cancelled", "api", "scheduler", "unwell")]


def test_it_records_attendance_marked_through_the_api_as_api(nurse_api, session):
    # The patient sits down half an hour before their time.
    starts = timezone.now() + timedelta(minutes=30)
    length = session.ends_at - session.starts_at
    Session.objects.filter(pk=session.pk).update(
        starts_at=starts, ends_at=starts + length, chair_free_at=starts + length
    )
    answer = nurse_api.post(f"/api/sessions/{session.pk}/mark", {"status": "arrived"}, format="json")

    assert answer.status_code == 200, answer.json()
    chair_in = Session.objects.get(pk=session.pk).chair_in_at.astimezone(session.clinic.zone)
    assert trail(session=session) == [("arrived", "api", "nurse", f"chair-in {chair_in:%H:%M}")]


def test_it_records_a_patient_edit_with_the_fields_changed_never_their_values(admin_api, patient):
    answer = admin_api.patch(
        f"/api/patients/{patient.pk}/", {"phone": "+16025550199", "last_name": "Moreno"}, format="json"
    )

    assert answer.status_code == 200, answer.json()
    event = AuditEvent.objects.get(patient=patient, action="changed")
    assert (event.via, event.actor.username, event.detail) == ("api", "clinic_admin", "last_name, phone")
    assert (event.clinic_id, event.object_type, event.object_id) == (patient.clinic_id, "booking.patient", patient.pk)


def test_it_records_a_new_patient_created_through_the_api(admin_api, clinic):
    body = {"clinic": clinic.pk, "first_name": "Ana", "last_name": "Ruiz", "external_id": "A1"}

    answer = admin_api.post("/api/patients/", body, format="json")

    assert answer.status_code == 201, answer.json()
    assert trail(patient=answer.json()["id"]) == [("created", "api", "clinic_admin", "")]


def test_it_records_replaced_opening_hours_and_nothing_when_they_are_sent_unchanged(admin_api, clinic):
    hours = [{"weekday": day, "opens": "08:00", "closes": "18:00"} for day in range(7)]
    monday_off = [row for row in hours if row["weekday"] != 0]

    unchanged = admin_api.patch(f"/api/clinics/{clinic.pk}/", {"opening_hours": hours}, format="json")
    assert unchanged.status_code == 200, unchanged.json()
    assert trail(clinic=clinic) == []

    changed = admin_api.patch(f"/api/clinics/{clinic.pk}/", {"opening_hours": monday_off}, format="json")

    assert changed.status_code == 200, changed.json()
    events = AuditEvent.objects.filter(clinic=clinic, object_type="booking.openinghours").exclude(via="system")
    assert sorted(e.action for e in events) == ["created"] * 6 + ["deleted"] * 7
    assert {(e.via, e.actor.username) for e in events} == {("api", "clinic_admin")}
    assert OpeningHours.objects.filter(clinic=clinic).count() == 6


def test_it_records_a_reminder_rule_edit(admin_api, clinic):
    rule = ReminderRule.objects.filter(clinic=clinic).first()

    answer = admin_api.patch(f"/api/reminder-rules/{rule.pk}/", {"is_active": False}, format="json")

    assert answer.status_code == 200, answer.json()
    event = AuditEvent.objects.get(object_type="notifications.reminderrule", object_id=rule.pk)
    assert (event.action, event.via, event.actor, event.detail, event.clinic) == (
        "changed", "api", User.objects.get(username="clinic_admin"), "is_active", clinic,
    )  # fmt: skip
