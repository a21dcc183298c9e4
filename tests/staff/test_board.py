"""The day board: chairs × hours, badges, the day's summary, quick actions and moves."""

from datetime import datetime, time, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from notifications.models import ContactStatus
from sessions.clock import local_date
from sessions.models import AuditEvent, Chair, Session
from sessions.services import series_book
from tests.factories import clinic_make, patient_make, protocol_make, staffing_make

from .builders import at, day_of_sessions, session_make

pytestmark = pytest.mark.django_db


def board_url(clinic, day=None) -> str:
    url = reverse("staff:board", args=[clinic.pk])
    return f"{url}?date={day.isoformat()}" if day else url


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_it_shows_each_session_with_patient_k_of_n_and_badges(scheduler, clinic, induction, patient, later):
    chair1, chair2, chair3 = clinic.chairs.order_by("name")
    session_make(clinic, induction, chair=chair1, starts_at=at(clinic, later, 9), patient=patient, number=3,
                 status=Session.Status.CONFIRMED, confirmed_at=timezone.now(), confirmed_via="sms",
                 driver_confirmed=True)  # fmt: skip
    opted_out = patient_make(clinic, first_name="Sam", last_name="Stone", sms_opted_out_at=timezone.now())
    session_make(clinic, induction, chair=chair2, starts_at=at(clinic, later, 10), patient=opted_out)
    bad_phone = patient_make(clinic, first_name="Kim", last_name="Wells")
    ContactStatus.objects.create(patient=bad_phone, phone=bad_phone.phone, sms_problem="21211")
    session_make(clinic, induction, chair=chair3, starts_at=at(clinic, later, 10, 30), patient=bad_phone)

    response = scheduler.get(board_url(clinic, later))

    assert response.status_code == 200
    cards = {c.session.patient.first_name: c for c in response.context["board"].cards}
    assert [b.label for b in cards["Avery"].badges] == ["Confirmed", "Driver"]
    assert [b.label for b in cards["Sam"].badges] == ["Opted out"]
    assert [b.label for b in cards["Kim"].badges] == ["No texts"]
    html = response.content.decode()
    assert "Avery Lane" in html and "09:00 · 3/6" in html
    summary = response.context["board"].summary
    assert (summary.sessions, summary.confirmed, summary.confirmed_percent) == (3, 1, 33)
    assert (summary.chairs_in_use, summary.chairs) == (3, 3)
    # 10:30–11:00 three in chairs; two nurses of three patients each.
    assert (summary.peak, summary.capacity_at_peak, summary.headroom) == (3, 6, 3)


def test_a_session_soon_and_unconfirmed_is_flagged_and_a_failed_text_shows(scheduler, clinic, booster):
    clinic_open_all_day = clinic
    clinic_open_all_day.opening_hours.update(opens="00:00", closes="23:59")
    soon = timezone.now().replace(second=0, microsecond=0) + timedelta(hours=3)
    session = session_make(clinic, booster, chair=clinic.chairs.first(), starts_at=soon)
    [failed] = day_of_sessions(clinic, booster, local_date(soon, clinic.zone) + timedelta(days=1), 1)

    today = scheduler.get(board_url(clinic, local_date(soon, clinic.zone)))
    following = scheduler.get(board_url(clinic, local_date(failed.starts_at, clinic.zone)))

    [card] = [c for c in today.context["board"].cards if c.session.pk == session.pk]
    assert [b.label for b in card.badges] == ["Unconfirmed"]
    [card] = following.context["board"].cards
    assert "Text failed" in [b.label for b in card.badges]


def test_it_defaults_to_today_in_the_clinic_zone_with_links_to_the_days_around(scheduler, clinic):
    today = local_date(timezone.now(), clinic.zone)

    response = scheduler.get(board_url(clinic))

    board = response.context["board"]
    assert board.day == today
    html = response.content.decode()
    assert f"?date={today - timedelta(days=1)}" in html and f"?date={today + timedelta(days=1)}" in html


def test_the_month_beside_the_board_counts_each_days_sessions_and_links_to_it(scheduler, clinic, booster, later):
    day_of_sessions(clinic, booster, later, 3)
    cancelled = session_make(clinic, booster, chair=clinic.chairs.first(), starts_at=at(clinic, later, 16))
    Session.objects.filter(pk=cancelled.pk).update(status=Session.Status.CANCELLED)

    response = scheduler.get(board_url(clinic, later))

    month = response.context["month"]
    cells = {cell.day: cell for week in month.weeks for cell in week}
    assert all(len(week) == 7 for week in month.weeks) and month.weeks[0][0].day.weekday() == 0
    assert (cells[later].sessions, cells[later].load, cells[later].is_chosen) == (3, "some", True)
    html = response.content.decode()
    assert f'aria-label="{later:%A} {later.day} {later:%B}: 3 sessions"' in html
    assert f'href="?date={later:%Y-%m-%d}"' in html and 'aria-current="date"' in html


@pytest.mark.parametrize("value", ["2026-13-40", "0001-01-01", "9999-12-31", "x" * 200])
def test_a_date_that_is_not_a_day_near_now_shows_today(scheduler, clinic, value):
    response = scheduler.get(reverse("staff:board", args=[clinic.pk]), {"date": value})

    assert response.status_code == 200
    assert response.context["board"].day == local_date(timezone.now(), clinic.zone)


def test_the_board_runs_the_same_few_queries_for_20_or_80_sessions(scheduler, django_assert_max_num_queries, later):
    clinic = clinic_make(chairs=24, opens=time(7), closes=time(19))
    staffing_make(clinic, nurses=8, per_nurse=3)
    protocol = protocol_make(clinic, kind="booster")
    day_of_sessions(clinic, protocol, later, 20)
    quiet_day = later + timedelta(days=1)
    day_of_sessions(clinic, protocol, quiet_day, 80)

    counts = []
    for day, expected in ((later, 20), (quiet_day, 80)):
        with CaptureQueriesContext(connection) as queries:
            response = scheduler.get(board_url(clinic, day))
        assert len(response.context["board"].cards) == expected
        counts.append(len(queries))
    with django_assert_max_num_queries(16):  # the month beside the board is one of them
        scheduler.get(board_url(clinic, quiet_day))

    assert counts[0] == counts[1]


def test_a_nurse_marks_arrival_from_the_board(nurse, clinic, booster):
    starts = timezone.now() + timedelta(minutes=20)
    session = session_make(clinic, booster, chair=clinic.chairs.first(), starts_at=starts)

    response = nurse.post(reverse("staff:session-mark", args=[session.pk]), {"status": "arrived"}, follow=True)

    session.refresh_from_db()
    assert session.status == Session.Status.ARRIVED
    assert session.chair_in_at is not None
    assert response.redirect_chain[-1][0] == board_url(clinic, local_date(starts, clinic.zone))
    assert "marked arrived" in messages_of(response)[0]


def test_marking_a_future_session_completed_shows_the_refusal_not_an_error(nurse, clinic, booster, later):
    session = session_make(clinic, booster, chair=clinic.chairs.first(), starts_at=at(clinic, later, 9))

    response = nurse.post(reverse("staff:session-mark", args=[session.pk]), {"status": "no_show"}, follow=True)

    assert response.status_code == 200
    assert messages_of(response) == ["Not marked: The session has not started yet."]
    session.refresh_from_db()
    assert session.status == Session.Status.BOOKED


def test_a_scheduler_cancels_with_a_reason_and_the_audit_trail_names_them(scheduler, clinic, booster, later):
    session = session_make(clinic, booster, chair=clinic.chairs.first(), starts_at=at(clinic, later, 9))

    refused = scheduler.post(reverse("staff:session-cancel", args=[session.pk]), {"reason": ""}, follow=True)
    done = scheduler.post(reverse("staff:session-cancel", args=[session.pk]), {"reason": "called in sick"}, follow=True)

    assert "give a reason" in messages_of(refused)[0]
    session.refresh_from_db()
    assert (session.status, session.cancellation_reason) == (Session.Status.CANCELLED, "called in sick")
    assert "cancelled" in messages_of(done)[0]
    event = AuditEvent.objects.get(session=session)
    assert (event.action, event.via, event.actor.username) == ("cancelled", "staff", "scheduler")


def test_a_scheduler_moves_a_session_to_an_offered_slot(scheduler, clinic, induction, patient, later):
    series = series_book(patient=patient, protocol=induction, first_start=datetime.combine(later, time(9)))
    second = series.sessions.get(number=2)
    url = reverse("staff:session-move", args=[second.pk])

    page = scheduler.get(url)
    offered = [slot for _, slots in page.context["days"] for slot in slots]
    wanted = next(s for s in offered if s["starts"].hour == 14)
    response = scheduler.post(url, {"slot": wanted["value"], "reason": "work"}, follow=True)

    second.refresh_from_db()
    assert second.clinic.local(second.starts_at) == wanted["starts"]
    assert second.moves.get().reason == "work"
    assert "moved to" in messages_of(response)[0]


def test_after_a_move_the_scheduler_is_back_where_the_move_began(scheduler, clinic, induction, patient, later):
    series = series_book(patient=patient, protocol=induction, first_start=datetime.combine(later, time(9)))
    second = series.sessions.get(number=2)
    board = f"{reverse('staff:board', args=[clinic.pk])}?date={later + timedelta(days=1)}"  # session 2's day
    move = reverse("staff:session-move", args=[second.pk])

    link = scheduler.get(board).content.decode()
    page = scheduler.get(move, {"next": board})
    wanted = next(s for _, slots in page.context["days"] for s in slots if s["starts"].hour == 14)
    from_board = scheduler.post(move, {"slot": wanted["value"], "next": board})
    last = series.sessions.get(number=6)  # on later + 5: it may go up to 4 days on
    without_next = scheduler.post(
        reverse("staff:session-move", args=[last.pk]), {"starts_at": f"{later + timedelta(days=7)}T15:00"}
    )

    assert f'href="{move}?next=' in link
    assert f'name="next" value="{board}"' in page.content.decode().replace("&amp;", "&")
    assert from_board["Location"] == board
    # With no page to go back to: the board of the day the session was on, not the day it went to.
    last.refresh_from_db()
    assert last.clinic.local(last.starts_at).date() == later + timedelta(days=7)
    assert without_next["Location"] == f"{reverse('staff:board', args=[clinic.pk])}?date={later + timedelta(days=5)}"


def test_a_move_into_a_slot_taken_meanwhile_shows_the_rule_broken(scheduler, clinic, booster, later):
    chair = Chair.objects.filter(clinic=clinic).order_by("name").first()
    session = session_make(clinic, booster, chair=chair, starts_at=at(clinic, later, 9))
    url = reverse("staff:session-move", args=[session.pk])
    slot = next(
        s
        for _, slots in scheduler.get(url).context["days"]
        for s in slots
        if s["starts"] == at(clinic, later, 13).astimezone(clinic.zone)
    )
    taken = session_make(clinic, booster, chair=chair, starts_at=at(clinic, later, 13))

    response = scheduler.post(url, {"slot": slot["value"]}, follow=True)

    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == url
    [message] = messages_of(response)
    assert message.startswith("Not moved: ") and "(rule 2:" in message
    session.refresh_from_db()
    assert session.starts_at == at(clinic, later, 9) and taken.chair == chair
