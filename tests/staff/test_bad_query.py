"""Query parameters a staff page never offers (a NUL byte, a day at either end of the calendar,
an id beyond any database's) answer the page's usual answer, never a server error."""

from datetime import date, timedelta

import pytest

from sessions.services import series_book
from tests.staff.builders import at

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


@pytest.mark.parametrize(
    "starts", ["9999-12-31T23:59:59+00:00", "0001-01-01T00:00:00+00:00", "2100-01-04T17:00:00+00:00"]
)
def test_it_refuses_a_move_to_a_posted_time_beyond_the_booking_horizon(scheduler, clinic, booster, patient, starts):
    # The move form posts "<chair>@<UTC start>"; a hand-made post can name any start at all.
    session = series_book(patient=patient, protocol=booster, first_start=at(clinic, date.today() + timedelta(3), 10))
    session = session.sessions.get()

    answer = scheduler.post(
        f"/staff/sessions/{session.pk}/move/", {"slot": f"{session.chair_id}@{starts}", "reason": "x"}
    )

    assert answer.status_code == 302
    session.refresh_from_db()
    assert session.version == 1
