"""Patients through the API: a date of birth as an ISO date, and an MRN that may be left out for
the clinic to number (the same model rules as the staff form's and the admin's)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from sessions.models import Patient

pytestmark = pytest.mark.django_db


def body(clinic, **changes) -> dict:
    return {"clinic": clinic.pk, "first_name": "Ana", "last_name": "Ruiz", **changes}


def test_a_patient_created_without_an_mrn_answers_with_the_clinics_number(admin_api, clinic):
    first = admin_api.post("/api/patients/", body(clinic, date_of_birth="1984-03-12"), format="json")
    second = admin_api.post("/api/patients/", body(clinic, external_id=""), format="json")

    assert first.status_code == 201, first.json()
    assert (first.json()["external_id"], first.json()["date_of_birth"]) == ("000001", "1984-03-12")
    assert (second.status_code, second.json()["external_id"], second.json()["date_of_birth"]) == (201, "000002", None)


def test_a_future_date_of_birth_is_a_400_naming_the_field(admin_api, clinic):
    future = (timezone.localdate() + timedelta(days=2)).isoformat()

    answer = admin_api.post("/api/patients/", body(clinic, date_of_birth=future), format="json")

    assert answer.status_code == 400
    assert answer.json() == {"date_of_birth": ["Date of birth cannot be in the future."]}
    assert not Patient.objects.exists()


def test_a_put_that_leaves_out_the_mrn_keeps_it(admin_api, clinic, patient):
    answer = admin_api.put(f"/api/patients/{patient.pk}/", body(clinic, date_of_birth="1990-07-01"), format="json")

    assert answer.status_code == 200, answer.json()
    assert (answer.json()["external_id"], answer.json()["date_of_birth"]) == (patient.external_id, "1990-07-01")
    assert Patient.objects.get().external_id == patient.external_id
