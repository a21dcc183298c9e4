"""The new-patient form: a date of birth, which tells two patients of one name apart, a time zone,
and an MRN that the clinic numbers when it is left empty. The admin and the API save through
the same model (tests/sessions/test_patient_numbering.py, tests/api/test_patients_api.py)."""

from datetime import date, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from sessions.clock import local_date
from sessions.models import Patient
from sessions.validators import years_before
from tests.factories import clinic_make, patient_make

pytestmark = pytest.mark.django_db


def new_patient(clinic, **changes) -> dict:
    """The form as the scheduler leaves it: no MRN, no date of birth, no zone."""
    return {"clinic": clinic.pk, "first_name": "Casey", "last_name": "Brooks", "external_id": "", "date_of_birth": "",
            "phone": "", "email": "", "language": "en", "time_zone": "", **changes}  # fmt: skip


def clinic_today(clinic) -> date:
    return local_date(timezone.now(), clinic.zone)


def test_the_form_offers_a_date_of_birth_a_time_zone_and_says_an_empty_mrn_is_numbered(scheduler, clinic):
    page = scheduler.get(reverse("staff:book")).content.decode()

    assert 'type="date" name="date_of_birth"' in page
    assert 'name="time_zone"' in page and "An IANA zone such as America/Phoenix; empty: the clinic&#x27;s." in page
    assert "Leave empty to number it automatically." in page


def test_a_date_of_birth_is_shown_with_the_age_on_the_patient_page(scheduler, clinic):
    year = clinic_today(clinic).year - 42

    created = scheduler.post(reverse("staff:book"), new_patient(clinic, date_of_birth=f"{year}-01-01"))

    patient = Patient.objects.get()
    assert created.status_code == 302 and patient.date_of_birth == date(year, 1, 1)
    page = scheduler.get(reverse("staff:patient", args=[patient.pk])).content.decode()
    assert f"born 1 Jan {year} (42)" in page


def test_search_results_tell_two_patients_of_one_name_apart_by_their_birth(scheduler, clinic):
    year = clinic_today(clinic).year
    patient_make(clinic, first_name="Casey", last_name="Brooks", date_of_birth=date(year - 30, 1, 1))
    patient_make(clinic, first_name="Casey", last_name="Brooks", date_of_birth=date(year - 61, 1, 1))

    page = scheduler.get(reverse("staff:patients"), {"q": "casey brooks"}).content.decode()

    assert f"born 1 Jan {year - 30} (30)" in page and f"born 1 Jan {year - 61} (61)" in page


@pytest.mark.parametrize(
    ("born", "error"),
    [
        (lambda today: today + timedelta(days=2), "Date of birth cannot be in the future."),
        (lambda today: years_before(today, 121), "Date of birth is more than 120 years ago: check the year."),
        (lambda today: "12/03/1984x", "Enter a valid date."),
    ],
)
def test_an_impossible_date_of_birth_is_refused_on_its_field(scheduler, clinic, born, error):
    refused = scheduler.post(reverse("staff:book"), new_patient(clinic, date_of_birth=born(clinic_today(clinic))))

    assert refused.status_code == 200
    assert refused.context["new_patient"].errors == {"date_of_birth": [error]}
    assert not Patient.objects.exists()


def test_the_patients_own_time_zone_is_kept_and_a_made_up_one_refused(scheduler, clinic):
    refused = scheduler.post(reverse("staff:book"), new_patient(clinic, time_zone="Mars/Olympus"))
    created = scheduler.post(reverse("staff:book"), new_patient(clinic, time_zone="America/Denver"))

    assert list(refused.context["new_patient"].errors) == ["time_zone"]
    assert created.status_code == 302 and Patient.objects.get().time_zone == "America/Denver"


def test_an_empty_mrn_gets_the_clinics_next_number_skipping_one_typed_by_hand(scheduler, clinic):
    first = scheduler.post(reverse("staff:book"), new_patient(clinic), follow=True)
    scheduler.post(reverse("staff:book"), new_patient(clinic, first_name="Jordan"))
    scheduler.post(reverse("staff:book"), new_patient(clinic, first_name="Quinn", external_id="000003"))
    scheduler.post(reverse("staff:book"), new_patient(clinic, first_name="Blake"))

    assert "Casey Brooks registered, MRN 000001." in first.content.decode()
    numbers = dict(Patient.objects.values_list("first_name", "external_id"))
    assert numbers == {"Casey": "000001", "Jordan": "000002", "Quinn": "000003", "Blake": "000004"}


def test_each_clinic_numbers_its_own_patients(scheduler, clinic):
    other = clinic_make(mrn_prefix="MESA-")
    for _ in range(2):
        scheduler.post(reverse("staff:book"), new_patient(clinic))
    scheduler.post(reverse("staff:book"), new_patient(other))

    assert list(clinic.patients.values_list("external_id", flat=True)) == ["000001", "000002"]
    assert list(other.patients.values_list("external_id", flat=True)) == ["MESA-000001"]


def test_a_number_given_by_the_counter_typed_again_links_to_its_patient(scheduler, clinic):
    scheduler.post(reverse("staff:book"), new_patient(clinic))
    numbered = Patient.objects.get()

    refused = scheduler.post(reverse("staff:book"), new_patient(clinic, first_name="Jordan", external_id="000001"))

    assert refused.context["new_patient"].errors["external_id"] == [
        f"MRN 000001 is already Casey Brooks's at {clinic.name}."
    ]
    assert reverse("staff:patient", args=[numbered.pk]) in refused.content.decode()
