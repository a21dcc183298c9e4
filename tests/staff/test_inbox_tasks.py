"""The inbox's tasks: flags of what patients did, or of a series off protocol, each with the
session it is about, the next step and a link to the page where it is taken."""

from datetime import datetime, time

import pytest
from django.urls import reverse

from notifications.models import StaffFlag
from sessions.models import Series, Session
from sessions.services import series_book

pytestmark = pytest.mark.django_db


@pytest.fixture
def series(patient, induction, later) -> Series:
    return series_book(patient=patient, protocol=induction, first_start=datetime.combine(later, time(10)))


def flag(series: Series, kind: str, *, number: int | None = None, **fields) -> StaffFlag:
    session = series.sessions.get(number=number, status__in=Session.HOLDING) if number else None
    return StaffFlag.objects.create(
        patient=series.patient, series=series, session=session, kind=kind, detail=f"{kind} detail", **fields
    )


def item(html: str, found: StaffFlag) -> str:
    """The inbox entry of one flag, up to the next one."""
    start = html.index(f'id="flag-{found.pk}"')
    end = html.find('<div class="item"', start)
    return html[start : end if end != -1 else len(html)]


def test_each_task_shows_kind_patient_session_detail_next_step_and_its_action(scheduler, series, patient, later):
    fifth = series.sessions.get(number=5)
    no_show = flag(series, StaffFlag.Kind.NO_SHOW, number=5, next_step="Call the patient; book a make-up.")
    late = flag(series, StaffFlag.Kind.LATE_MOVE, number=2, next_step="Check the chair and the driver.")
    driver = flag(series, StaffFlag.Kind.DRIVER_UNCONFIRMED, number=1, next_step="Call about the driver.")

    html = scheduler.get(reverse("staff:inbox")).content.decode()

    entry = item(html, no_show)
    when = fifth.clinic.local(fifth.starts_at)
    assert "No-show" in entry and str(patient) in entry
    assert "Session 5 of 6, <a" in entry and f"{when:%a} {when.day} {when:%b %H:%M}</a>" in entry
    assert "no_show detail" in entry and "Next step:</strong> Call the patient; book a make-up." in entry
    assert f'href="{reverse("staff:session-reflow", args=[fifth.pk])}#reflow">Book a make-up</a>' in entry
    assert f'action="{reverse("staff:flag-handled", args=[no_show.pk])}"' in entry
    late_entry = item(html, late)
    assert "Moved by the patient at short notice" in late_entry and "Session 2 of 6" in late_entry
    second = series.sessions.get(number=2)
    assert f'href="{reverse("staff:session-move", args=[second.pk])}">Open the move page</a>' in late_entry
    driver_entry = item(html, driver)
    assert f'href="{reverse("staff:patient", args=[patient.pk])}">Open the patient page</a>' in driver_entry


def test_a_cancel_by_the_patient_leads_to_the_make_up_of_the_cancelled_session(scheduler, series):
    third = series.sessions.get(number=3)
    series.sessions.filter(pk=third.pk).update(status=Session.Status.CANCELLED)
    cancelled = StaffFlag.objects.create(
        patient=series.patient, session=third, kind=StaffFlag.Kind.PATIENT_CANCELLED, detail="Cancelled by link",
        next_step="Book a make-up for session 3.",
    )  # fmt: skip

    html = scheduler.get(reverse("staff:inbox")).content.decode()

    entry = item(html, cancelled)
    assert "Cancelled by the patient" in entry and "Session 3 of 6" in entry
    assert f'href="{reverse("staff:session-reflow", args=[third.pk])}#reflow">Book a make-up</a>' in entry


def test_a_series_off_protocol_task_leads_to_the_reflow_of_the_gap_as_it_is_now(scheduler, series):
    third = series.sessions.get(number=3)
    series.sessions.filter(pk=third.pk).update(status=Session.Status.CANCELLED)
    off = StaffFlag.objects.create(
        patient=series.patient, series=series, kind=StaffFlag.Kind.SERIES_OFF_PROTOCOL,
        detail="Session 3 cancelled: rebook it", next_step="Rebook session 3.",
    )  # fmt: skip

    response = scheduler.get(reverse("staff:inbox"))

    [task] = response.context["inbox"].tasks
    assert (task.action, task.session_id) == ("reflow", third.pk)
    entry = item(response.content.decode(), off)
    assert "Series off protocol" in entry and "Series: Depression induction" in entry
    assert f'href="{reverse("staff:session-reflow", args=[third.pk])}#reflow">Open the re-flow</a>' in entry
    assert "Next step:</strong> Rebook session 3." in entry


def test_a_nurse_sees_tasks_without_booking_links_or_the_handled_button(nurse, series):
    no_show = flag(series, StaffFlag.Kind.NO_SHOW, number=5)

    entry = item(nurse.get(reverse("staff:inbox")).content.decode(), no_show)

    assert "Book a make-up" not in entry and "Open the patient page" in entry
    assert "Mark handled" not in entry
