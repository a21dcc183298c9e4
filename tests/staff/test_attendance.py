"""Attendance on the board and the patient page (rule 15): arrived, completed and no-show with the
actual chair-in and chair-out times, each undoable; refusals read as messages."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from sessions.clock import local_date
from sessions.models import AuditEvent, Clinic, Protocol, Session
from sessions.services import session_cancel, session_mark
from tests.factories import patient_make, protocol_make

from .builders import at, clinic_at_midday, session_make

pytestmark = pytest.mark.django_db


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


@pytest.fixture
def midday() -> Clinic:
    return clinic_at_midday()


@pytest.fixture
def course(midday) -> Protocol:
    return protocol_make(midday, kind="booster")


@pytest.fixture
def this_morning(midday, course) -> Session:
    """A session that began at 10:00 today, clinic time; it is now past noon there."""
    today = local_date(timezone.now(), midday.zone)
    patient = patient_make(midday, first_name="Robin", last_name="Hale")
    return session_make(midday, course, chair=midday.chairs.first(), starts_at=at(midday, today, 10), patient=patient)


def mark(client, session: Session, status: str, when: str = ""):
    return client.post(reverse("staff:session-mark", args=[session.pk]), {"status": status, "at": when}, follow=True)


def undo(client, session: Session):
    return client.post(reverse("staff:session-undo", args=[session.pk]), follow=True)


def board_html(client, session: Session) -> str:
    day = local_date(session.starts_at, session.clinic.zone)
    return client.get(reverse("staff:board", args=[session.clinic_id]), {"date": day}).content.decode()


def test_the_board_offers_arrived_and_no_show_with_a_chair_in_time_for_a_session_under_way(nurse, this_morning):
    html = board_html(nurse, this_morning)

    assert 'value="arrived">Arrived</button>' in html and 'value="no_show">No-show</button>' in html
    assert f'<label for="at-{this_morning.pk}">Chair-in</label>' in html and 'type="time" name="at"' in html


def test_a_nurse_records_the_actual_chair_in_and_chair_out_times_and_the_pages_show_them(nurse, this_morning):
    arrived = mark(nurse, this_morning, "arrived", "10:05")
    completed = mark(nurse, this_morning, "completed", "11:50")

    this_morning.refresh_from_db()
    zone = this_morning.clinic.zone
    assert this_morning.status == Session.Status.COMPLETED
    assert f"{this_morning.chair_in_at.astimezone(zone):%H:%M}" == "10:05"
    assert f"{this_morning.chair_out_at.astimezone(zone):%H:%M}" == "11:50"
    assert messages_of(arrived) == [f"{this_morning.patient}: session 1 marked arrived, chair-in 10:05."]
    assert messages_of(completed) == [f"{this_morning.patient}: session 1 marked completed, chair-out 11:50."]
    assert "Chair-in 10:05 · chair-out 11:50" in board_html(nurse, this_morning)
    patient_page = nurse.get(reverse("staff:patient", args=[this_morning.patient_id])).content.decode()
    assert "Chair-in 10:05 · chair-out 11:50" in patient_page
    event = AuditEvent.objects.get(session=this_morning, action="completed")
    assert (event.actor.username, event.detail) == ("nurse", "chair 10:05–11:50")


def test_a_chair_out_before_chair_in_or_a_time_to_come_is_a_message_not_an_error(nurse, this_morning):
    mark(nurse, this_morning, "arrived", "10:05")

    too_early = mark(nurse, this_morning, "completed", "09:30")
    to_come = mark(nurse, this_morning, "completed", "23:59")
    garbled = mark(nurse, this_morning, "completed", "25:61")

    assert too_early.status_code == to_come.status_code == garbled.status_code == 200
    [early] = messages_of(too_early)
    assert early.startswith("Not marked: Completed needs a chair-out after the start") and "(rule 15:" in early
    assert messages_of(to_come) == [
        "Not marked: That time is still to come. (rule 15: chair-out follows chair-in, and neither is in the future.)"
    ]
    assert messages_of(garbled) == ["Not marked: Enter the time as HH:MM, e.g. 09:05."]
    this_morning.refresh_from_db()
    assert this_morning.status == Session.Status.ARRIVED and this_morning.chair_out_at is None


def test_each_mark_is_undone_from_the_board_step_by_step_and_audited(nurse, this_morning):
    mark(nurse, this_morning, "arrived", "10:05")
    mark(nurse, this_morning, "completed", "11:50")
    assert "Undo completed</button>" in board_html(nurse, this_morning)

    first = undo(nurse, this_morning)
    this_morning.refresh_from_db()
    assert (this_morning.status, this_morning.chair_out_at) == (Session.Status.ARRIVED, None)
    assert messages_of(first) == [f"{this_morning.patient}: session 1 is no longer completed; it is arrived again."]
    undo(nurse, this_morning)
    this_morning.refresh_from_db()
    assert (this_morning.status, this_morning.chair_in_at) == (Session.Status.BOOKED, None)
    mark(nurse, this_morning, "no_show")
    assert "Undo no-show</button>" in board_html(nurse, this_morning)
    undo(nurse, this_morning)

    this_morning.refresh_from_db()
    assert this_morning.status == Session.Status.BOOKED
    trail = AuditEvent.objects.filter(session=this_morning, action="undo").values_list("detail", "actor__username")
    assert sorted(trail) == [("undo arrived", "nurse"), ("undo completed", "nurse"), ("undo no_show", "nurse")]


def test_undoing_a_cancel_needs_the_cancel_permission_and_a_mark_the_attendance_one(
    scheduler, nurse, clinic, booster, later, this_morning
):
    upcoming = session_make(clinic, booster, chair=clinic.chairs.first(), starts_at=at(clinic, later, 9))
    session_cancel(session=upcoming, reason="called in")
    session_mark(session=this_morning, status=Session.Status.ARRIVED)

    assert undo(nurse, upcoming).status_code == 403
    assert undo(scheduler, this_morning).status_code == 403
    back = undo(scheduler, upcoming)

    upcoming.refresh_from_db()
    assert upcoming.status == Session.Status.BOOKED
    assert messages_of(back) == [f"{upcoming.patient}: session 1 is no longer cancelled; it is booked again."]
    this_morning.refresh_from_db()
    assert this_morning.status == Session.Status.ARRIVED


def test_undoing_a_cancel_whose_chair_was_taken_meanwhile_says_which_rule(scheduler, clinic, booster, later):
    chair = clinic.chairs.first()
    cancelled = session_make(clinic, booster, chair=chair, starts_at=at(clinic, later, 9))
    session_cancel(session=cancelled, reason="called in")
    session_make(clinic, booster, chair=chair, starts_at=at(clinic, later, 9, 30))

    response = undo(scheduler, cancelled)

    assert response.status_code == 200
    [message] = messages_of(response)
    assert message.startswith("Not undone: ") and "(rule 2:" in message
    cancelled.refresh_from_db()
    assert cancelled.status == Session.Status.CANCELLED


def test_the_patient_page_offers_the_marks_and_the_undo_where_allowed(nurse, scheduler, this_morning):
    url = reverse("staff:patient", args=[this_morning.patient_id])
    before = nurse.get(url).content.decode()
    mark(nurse, this_morning, "no_show")
    after = nurse.get(url).content.decode()
    as_scheduler = scheduler.get(url).content.decode()

    assert 'value="arrived">Arrived</button>' in before and 'value="no_show">No-show</button>' in before
    assert "Undo no-show</button>" in after and "Arrived</button>" not in after
    # The scheduler does not mark attendance, but books the make-up of a missed session.
    assert "Undo no-show" not in as_scheduler and "Make up</a>" in as_scheduler


def test_a_mark_from_the_patient_page_returns_there(nurse, this_morning):
    url = reverse("staff:patient", args=[this_morning.patient_id])

    response = nurse.post(
        reverse("staff:session-mark", args=[this_morning.pk]),
        {"status": "arrived", "at": "", "next": f"{url}#s-{this_morning.pk}"},
        follow=True,
    )

    assert response.redirect_chain[-1][0] == f"{url}#s-{this_morning.pk}"
    this_morning.refresh_from_db()
    assert this_morning.status == Session.Status.ARRIVED
    assert this_morning.chair_in_at is not None and this_morning.chair_in_at <= timezone.now()
    assert this_morning.chair_in_at > timezone.now() - timedelta(minutes=5)
