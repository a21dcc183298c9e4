"""Gap watch (rule 12): a series off its protocol shows where staff work, with the re-flow
offered: a warning per gap on the patient page, an "Off protocol" badge on the board."""

from datetime import datetime, time, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from sessions.models import Series, Session
from sessions.services import series_book, series_cancel
from tests.factories import patient_make

pytestmark = pytest.mark.django_db


def reflow_href(session: Session) -> str:
    return f'href="{reverse("staff:session-reflow", args=[session.pk])}#reflow"'


def off_protocol(series: Series, later) -> None:
    """Session 3 cancelled and session 6 six days after 5: two gaps, written directly."""
    series.sessions.filter(number=3).update(status=Session.Status.CANCELLED)
    sixth = series.sessions.get(number=6)
    wider = timedelta(days=5)
    series.sessions.filter(pk=sixth.pk).update(
        starts_at=sixth.starts_at + wider, ends_at=sixth.ends_at + wider, chair_free_at=sixth.chair_free_at + wider
    )


@pytest.fixture
def series(patient, induction, later) -> Series:
    return series_book(patient=patient, protocol=induction, first_start=datetime.combine(later, time(9)))


def test_the_patient_page_warns_of_each_gap_with_the_page_that_puts_it_right(scheduler, patient, series, later):
    off_protocol(series, later)

    html = scheduler.get(reverse("staff:patient", args=[patient.pk])).content.decode()

    assert "Off protocol" in html
    assert "Session 3 cancelled: rebook it" in html
    assert "6 days between sessions 5 and 6; the protocol allows 1–4" in html
    third, sixth = series.sessions.get(number=3), series.sessions.get(number=6)
    assert f"{reflow_href(third)}>Book a make-up for session 3</a>" in html
    assert f"{reflow_href(sixth)}>Re-space from session 6</a>" in html


def test_a_series_on_protocol_or_cancelled_shows_no_warning(scheduler, patient, series, induction, later):
    on_time = scheduler.get(reverse("staff:patient", args=[patient.pk])).content.decode()
    off_protocol(series, later)
    series_cancel(series=series, reason="stopped treatment")

    cancelled = scheduler.get(reverse("staff:patient", args=[patient.pk])).content.decode()

    assert "Off protocol" not in on_time and "Off protocol" not in cancelled


def test_a_nurse_sees_the_warning_without_the_reflow_link(nurse, patient, series, later):
    off_protocol(series, later)

    html = nurse.get(reverse("staff:patient", args=[patient.pk])).content.decode()

    assert "Session 3 cancelled: rebook it" in html and "Book a make-up" not in html


def test_the_board_badges_each_session_of_an_off_protocol_series_with_a_link_to_the_reflow(
    scheduler, clinic, series, later
):
    off_protocol(series, later)
    second = series.sessions.get(number=2)

    response = scheduler.get(reverse("staff:board", args=[clinic.pk]), {"date": later + timedelta(days=1)})

    [card] = response.context["board"].cards
    assert [b.label for b in card.badges] == ["Off protocol"]
    html = response.content.decode()
    third = series.sessions.get(number=3)
    assert f'<a class="badge badge-offprotocol" {reflow_href(third)}' in html
    assert ">Off protocol</a>" in html and "Session 3 cancelled: rebook it" in html
    assert card.session == second


def test_the_board_and_patient_page_run_the_same_queries_for_one_off_protocol_series_or_three(
    scheduler, clinic, induction, later
):
    def queries(url: str, params: dict | None = None) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert scheduler.get(url, params).status_code == 200
        return len(captured)

    def booked(hour: int) -> Series:
        patient = patient_make(clinic)
        found = series_book(patient=patient, protocol=induction, first_start=datetime.combine(later, time(hour)))
        off_protocol(found, later)
        return found

    first = booked(8)
    board = reverse("staff:board", args=[clinic.pk])
    patient_page = reverse("staff:patient", args=[first.patient_id])
    one = (queries(board, {"date": later}), queries(patient_page))
    for hour in (11, 14):
        booked(hour)
    # The patient's own page: two more series of theirs, both off protocol.
    for weeks in (3, 6):
        again = series_book(patient=first.patient, protocol=induction, override_reason="second course",
                            first_start=datetime.combine(later + timedelta(weeks=weeks), time(9)))  # fmt: skip
        off_protocol(again, later)

    assert (queries(board, {"date": later}), queries(patient_page)) == one
