"""Phones as staff type them, read in the clinic's country (its own phone's), stored in E.164:
the same rule on the API and the admin (the model's clean_fields) as on the staff page
(tests/staff/test_booking.py)."""

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from rest_framework.test import APIClient

from sessions.validators import phone_in_region
from tests.factories import clinic_make, patient_make
from tests.sessions.test_admin import form_data

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("(602) 555-0101", "+16025550101"),
        ("602.555.0101", "+16025550101"),
        (" +1 602 555 0101 ", "+16025550101"),
        ("0044 20 7946 0958", "+442079460958"),
        ("+44 20 7946 0958", "+442079460958"),
        ("555-0101", "555-0101"),  # seven digits are no US number: left for the validator to refuse
        ("call me", "call me"),
    ],
)
def test_a_phone_is_read_in_the_clinics_country_unless_it_names_its_own(typed, stored):
    assert phone_in_region(typed, "US") == stored


def test_a_spanish_clinic_reads_a_national_number_as_spanish():
    clinic = clinic_make(phone="+34912345678", time_zone="Europe/Madrid")

    assert clinic.region == "ES"
    assert phone_in_region("612 34 56 78", clinic.region) == "+34612345678"


def test_the_api_takes_a_phone_typed_the_local_way_and_answers_e164(db):
    clinic = clinic_make()
    api = APIClient()
    api.force_authenticate(User.objects.create_superuser("api-root", "r@example.com", None))
    body = {"clinic": clinic.pk, "first_name": "Ana", "last_name": "Ruiz", "external_id": "A1"}

    created = api.post("/api/patients/", {**body, "phone": "602-555-0142"}, format="json")
    changed = api.patch(f"/api/patients/{created.json()['id']}/", {"phone": "(602) 555 0143"}, format="json")
    refused = api.post("/api/patients/", {**body, "external_id": "A2", "phone": "555-0142"}, format="json")

    assert (created.status_code, created.json()["phone"]) == (201, "+16025550142")
    assert (changed.status_code, changed.json()["phone"]) == (200, "+16025550143")
    assert refused.status_code == 400 and "e.g. (520) 555-0123" in refused.json()["phone"][0]


def test_the_admin_stores_a_phone_typed_the_local_way(client):
    client.force_login(User.objects.create_superuser("root", "root@example.com", None))
    patient = patient_make(clinic_make())

    client.post(reverse("admin:booking_patient_change", args=[patient.pk]), form_data(patient, phone="602 555 0144"))

    patient.refresh_from_db()
    assert patient.phone == "+16025550144"
