"""Booster recalls on the staff pages and the API: who is overdue, due and soon due, booked from
the recall with the booster chosen, "not now" and declined; each clinic sees only its own."""

from datetime import date, datetime, time, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from sessions.clock import local_date
from sessions.models import Recall
from sessions.services import series_book
from tests.factories import clinic_make, patient_make, protocol_make

from .builders import staff_user

pytestmark = pytest.mark.django_db


def recall_make(clinic, booster, due_on: date, first_name: str) -> Recall:
    patient = patient_make(clinic, first_name=first_name)
    done = series_book(patient=patient, protocol=booster, first_start=datetime.combine(due_on + timedelta(days=400),
                       time(10)))  # fmt: skip
    return Recall.objects.create(clinic=clinic, patient=patient, series=done, protocol=booster, due_on=due_on)


@pytest.fixture
def today(clinic) -> date:
    return local_date(timezone.now(), clinic.zone)


def test_the_recall_list_puts_overdue_first_and_books_the_booster(scheduler, clinic, booster, today):
    recall_make(clinic, booster, today + timedelta(days=5), "Soon")
    recall_make(clinic, booster, today, "Due")
    overdue = recall_make(clinic, booster, today - timedelta(days=20), "Late")
    recall_make(clinic, booster, today + timedelta(days=60), "Later")

    page = scheduler.get(reverse("staff:recalls"))

    rows = [row for _, rows in page.context["lists"] for row in rows]
    assert [(row.recall.patient.first_name, row.state) for row in rows] == [
        ("Late", "overdue"), ("Due", "due"), ("Soon", "soon"),
    ]  # fmt: skip
    booking = reverse("staff:book-series", args=[overdue.patient_id]) + f"?protocol={booster.pk}"
    assert booking.replace("&", "&amp;") in page.content.decode()
    assert scheduler.get(booking).context["form"]["protocol"].value() == booster.pk


def test_not_now_and_declined_from_the_page(scheduler, clinic, booster, today):
    snoozed = recall_make(clinic, booster, today, "Snoozed")
    declined = recall_make(clinic, booster, today, "Declined")
    url = "staff:recall-answer"

    scheduler.post(
        reverse(url, args=[snoozed.pk]), {"answer": "snooze", "until": (today + timedelta(days=9)).isoformat()}
    )
    scheduler.post(reverse(url, args=[declined.pk]), {"answer": "decline"})
    bad = scheduler.post(reverse(url, args=[snoozed.pk]), {"answer": "snooze", "until": "soon"}, follow=True)

    snoozed.refresh_from_db()
    declined.refresh_from_db()
    assert (snoozed.status, snoozed.snoozed_until) == ("snoozed", today + timedelta(days=9))
    assert declined.status == "declined"
    assert str(list(bad.context["messages"])[-1]).startswith("Not saved:")


def test_the_api_lists_and_answers_recalls_of_the_users_clinics_only(clinic, booster, today):
    mine = recall_make(clinic, booster, today, "Mine")
    elsewhere = clinic_make(name="Elsewhere")
    theirs = recall_make(elsewhere, protocol_make(elsewhere, kind="booster"), today, "Theirs")
    api = APIClient()
    api.force_authenticate(staff_user("Scheduler", clinics=(clinic,), username="limited"))

    listed = api.get("/api/recalls/").json()
    snoozed = api.post(
        f"/api/recalls/{mine.pk}/snooze", {"until": (today + timedelta(days=3)).isoformat()}, format="json"
    )
    past = api.post(f"/api/recalls/{mine.pk}/snooze", {"until": "2001-01-01"}, format="json")

    assert [(row["id"], row["state"]) for row in listed] == [(mine.pk, "due")]
    assert snoozed.status_code == 200 and snoozed.json()["status"] == "snoozed"
    assert past.status_code == 400 and "until" in past.json()
    assert api.post(f"/api/recalls/{theirs.pk}/decline").status_code == 404


def test_a_nurse_neither_lists_nor_answers_recalls(clinic, booster, today, nurse):
    recall = recall_make(clinic, booster, today, "Anyone")
    api = APIClient()
    api.force_authenticate(staff_user("Nurse", username="nurse-recalls"))

    assert api.get("/api/recalls/").status_code == 403
    assert api.post(f"/api/recalls/{recall.pk}/decline").status_code == 403
    assert nurse.get(reverse("staff:recalls")).status_code == 403
