"""Query parameters a staff page never offers (a NUL byte, a day at either end of the calendar,
an id beyond any database's) answer the page's usual answer, never a server error."""

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "query",
    [
        "/staff/patients/?q=%00",
        "/staff/book/?q=Ana%00",
        "/staff/board/{clinic}/?date=9999-12-31",
        "/staff/board/{clinic}/?date=0001-01-01",
        "/staff/board/{clinic}/?date=%00",
        "/staff/outbox/?page=%00",
        "/staff/outbox/?page=1000000000000000000000000000000",
        "/staff/book/{patient}/?protocol=1000000000000000000000000000000&first_start=9999-12-31T10:00",
        "/staff/book/{patient}/?protocol={booster}&first_start=0001-01-01T10:00",
        "/staff/login/?next=%00",
    ],
)
def test_it_answers_a_hostile_query_with_the_page(clinic_admin, clinic, patient, booster, query):
    answer = clinic_admin.get(query.format(clinic=clinic.pk, patient=patient.pk, booster=booster.pk))

    assert answer.status_code in (200, 302)
