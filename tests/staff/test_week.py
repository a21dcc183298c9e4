"""The week view: seven days of a clinic at a glance, and the way between it and the day board."""

from datetime import datetime, time, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from sessions.models import ClosedDate
from sessions.services import series_book, session_cancel
from tests.factories import patient_make

pytestmark = pytest.mark.django_db


def test_it_shows_each_day_of_the_week_with_its_sessions_and_counts(scheduler, clinic, induction, patient, later):
    series = series_book(patient=patient, protocol=induction, first_start=datetime.combine(later, time(9)))
    session_cancel(session=series.sessions.get(number=2), reason="away")
    monday = later - timedelta(days=later.weekday())
    ClosedDate.objects.create(clinic=clinic, date=monday + timedelta(days=6), reason="Staff training")

    response = scheduler.get(
        reverse("staff:week", args=[clinic.pk]), {"date": (monday + timedelta(days=3)).isoformat()}
    )

    week = response.context["week"]
    assert [d.day for d in week.days] == [monday + timedelta(days=n) for n in range(7)]
    first_day = next(d for d in week.days if d.day == later)
    assert [(s.number, s.status) for s in first_day.sessions] == [(1, "booked")]
    html = response.content.decode()
    assert "Closed: Staff training" in html
    assert f"{patient}" in html and "1/6" in html
    if later + timedelta(days=1) <= week.days[-1].day:
        cancelled_day = next(d for d in week.days if d.day == later + timedelta(days=1))
        assert cancelled_day.held == [] and "Cancelled" in html
    day_link = f"{reverse('staff:board', args=[clinic.pk])}?date={later.isoformat()}"
    assert day_link in html


def test_it_reads_the_week_in_a_fixed_number_of_queries(scheduler, clinic, induction, later):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            scheduler.get(reverse("staff:week", args=[clinic.pk]), {"date": later.isoformat()})
        return len(captured)

    before = queries()
    for n in range(3):
        series_book(patient=patient_make(clinic), protocol=induction, first_start=datetime.combine(later, time(9 + n)))

    assert queries() == before


def test_the_day_board_links_to_its_week_and_to_the_same_day_next_week(scheduler, clinic, later):
    board = scheduler.get(reverse("staff:board", args=[clinic.pk]), {"date": later.isoformat()}).content.decode()

    assert f"{reverse('staff:week', args=[clinic.pk])}?date={later.isoformat()}" in board
    assert f'?date={(later + timedelta(days=7)).isoformat()}" title="The same day next week">+1 week' in board
