"""A patient's MRN left empty is the clinic's next number, and a date of birth is a possible one:
both held by the model, so the admin, the staff form (tests/staff/test_new_patient.py) and the
API (tests/api/test_patients_api.py) agree."""

import threading
from datetime import date, timedelta

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import DataError, connection
from django.utils import timezone
from rest_framework.test import APIClient

from sessions.models import Clinic, Patient
from sessions.validators import validate_date_of_birth, years_before
from tests.factories import clinic_make, patient_make
from tests.sessions.test_admin import form_data

pytestmark = pytest.mark.django_db


def test_an_empty_mrn_is_numbered_after_the_clinics_prefix_and_counter():
    clinic = clinic_make(mrn_prefix="PHX-", next_mrn=123)

    first, second = patient_make(clinic, external_id=""), patient_make(clinic, external_id="")

    assert (first.external_id, second.external_id) == ("PHX-000123", "PHX-000124")
    assert Clinic.objects.get(pk=clinic.pk).next_mrn == 125


def test_the_counter_skips_every_number_already_typed_by_hand():
    clinic = clinic_make()
    for number in ("000001", "000002", "000004"):
        patient_make(clinic, external_id=number)

    numbered = [patient_make(clinic, external_id="").external_id for _ in range(2)]

    assert numbered == ["000003", "000005"]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite keeps a name of any length")
def test_a_patient_that_is_not_saved_takes_no_number():
    clinic = clinic_make()
    patient = Patient(clinic=clinic, first_name="A" * 81, last_name="Ruiz")

    with pytest.raises(DataError):
        patient.save()

    assert patient.external_id == ""
    assert Clinic.objects.get(pk=clinic.pk).next_mrn == 1
    assert patient_make(clinic, external_id="").external_id == "000001"


def test_a_date_of_birth_is_possible_from_120_years_ago_to_today():
    today = timezone.localdate()

    validate_date_of_birth(today)
    validate_date_of_birth(years_before(today + timedelta(days=1), 120))
    with pytest.raises(ValidationError, match="future"):
        validate_date_of_birth(today + timedelta(days=2))
    with pytest.raises(ValidationError, match="more than 120 years ago"):
        validate_date_of_birth(years_before(today, 120) - timedelta(days=2))


def test_a_29_february_is_taken_back_to_the_28th_in_a_year_without_one():
    assert years_before(date(2020, 2, 29), 120) == date(1900, 2, 28)
    assert years_before(date(2024, 2, 29), 120) == date(1904, 2, 29)


@pytest.fixture
def root(client) -> User:
    user = User.objects.create_superuser("root", "root@example.com", None)
    client.force_login(user)
    return user


def test_the_admin_refuses_a_future_date_of_birth_on_its_field(client, root):
    clinic = clinic_make()
    future = timezone.localdate() + timedelta(days=2)
    data = form_data(Patient(clinic=clinic, first_name="Ana", last_name="Ruiz", date_of_birth=future))

    refused = client.post("/admin/booking/patient/add/", data)

    assert refused.status_code == 200
    assert refused.context["adminform"].form.errors == {"date_of_birth": ["Date of birth cannot be in the future."]}
    assert not Patient.objects.exists()


def test_the_admin_numbers_a_patient_added_without_an_mrn(client, root):
    clinic = clinic_make()
    data = form_data(Patient(clinic=clinic, first_name="Ana", last_name="Ruiz", date_of_birth=date(1984, 3, 12)))

    added = client.post("/admin/booking/patient/add/", data)

    assert added.status_code == 302, added.context["adminform"].form.errors
    assert Patient.objects.values_list("external_id", "date_of_birth").get() == ("000001", date(1984, 3, 12))


@pytest.mark.concurrency
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL: concurrent writers and row locks")
def test_eight_patients_registered_at_once_without_an_mrn_get_eight_numbers():
    clinic = clinic_make()
    user = User.objects.create_superuser("integrator", "i@example.com", None)
    gate = threading.Barrier(8)
    answers: list[tuple[int, str]] = []
    lock = threading.Lock()

    def register(n: int) -> None:
        api = APIClient()
        api.force_authenticate(user)
        try:
            gate.wait()
            answer = api.post(
                "/api/patients/", {"clinic": clinic.pk, "first_name": "Pat", "last_name": f"Race{n}"}, format="json"
            )
            with lock:
                answers.append((answer.status_code, answer.json().get("external_id")))
        finally:
            connection.close()

    threads = [threading.Thread(target=register, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(answers) == [(201, f"{n:06d}") for n in range(1, 9)]
    assert Clinic.objects.get(pk=clinic.pk).next_mrn == 9
