"""The move page's re-flow (rule 11): move a session and re-space the later ones, or book a
make-up for a cancelled or missed one; preview first, then commit what the preview showed."""

from datetime import datetime, time, timedelta

import pytest
from django.test import Client
from django.urls import reverse

from sessions.models import AuditEvent, ClosedDate, Series, Session
from sessions.services import series_book, session_cancel
from tests.factories import clinic_make, patient_make, protocol_make

from .builders import at, client_as, session_make, staff_user, wall

pytestmark = pytest.mark.django_db


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def reflow_url(session: Session) -> str:
    return reverse("staff:session-reflow", args=[session.pk])


def preview(client, session: Session, day, hour: int, minute: int = 0):
    return client.get(reflow_url(session), {"reflow-starts_at": wall(day, hour, minute)})


def commit(client, session: Session, page, **extra):
    """Press the commit button of a preview page: post its hidden fields, as the browser would."""
    fields = {
        "reflow-starts_at": page.context["reflow"]["starts_at"].value(),
        "reflow-chair": page.context["reflow"]["chair"].value() or "",
        "reflow-plan": page.context["preview"]["plan"],
        **extra,
    }
    return client.post(reflow_url(session), fields, follow=True)


def starts(series: Series) -> dict[int, datetime]:
    held = series.sessions.filter(status__in=Session.HOLDING)
    return {s.number: s.clinic.local(s.starts_at).replace(tzinfo=None) for s in held}


@pytest.fixture
def every_other_day(patient, induction, later) -> Series:
    """Six sessions two days apart at 09:00: room for a moved session to leave later ones alone."""
    return series_book(
        patient=patient, protocol=induction, starts=[datetime.combine(later + timedelta(days=2 * n), time(9))
                                                     for n in range(6)],
    )  # fmt: skip


@pytest.fixture
def daily(patient, induction, later) -> Series:
    return series_book(patient=patient, protocol=induction, first_start=datetime.combine(later, time(9)))


def test_the_preview_shows_each_later_session_from_and_to_or_unchanged_and_books_nothing(
    scheduler, every_other_day, later
):
    second = every_other_day.sessions.get(number=2)
    before = starts(every_other_day)

    page = preview(scheduler, second, later + timedelta(days=4), 13)

    rows = page.context["preview"]["rows"]
    assert [(r["number"], r["changes"]) for r in rows] == [(2, True), (3, True), (4, False), (5, False), (6, False)]
    assert rows[0]["to"].replace(tzinfo=None) == datetime.combine(later + timedelta(days=4), time(13))
    # Session 3 was on that day: it takes the next day the gap allows, at its own time.
    assert rows[1]["from"].replace(tzinfo=None) == datetime.combine(later + timedelta(days=4), time(9))
    assert rows[1]["to"].replace(tzinfo=None) == datetime.combine(later + timedelta(days=5), time(9))
    html = page.content.decode()
    assert html.count("Unchanged") == 3 and html.count(">Moves<") == 2
    assert "Move and re-space" in html and 'name="csrfmiddlewaretoken"' in html
    assert starts(every_other_day) == before


def test_commit_moves_the_session_and_re_spaces_the_rest_as_previewed(scheduler, every_other_day, patient, later):
    second = every_other_day.sessions.get(number=2)
    page = preview(scheduler, second, later + timedelta(days=4), 13)

    done = commit(scheduler, second, page, **{"reflow-reason": "patient away two days"})

    assert done.redirect_chain[-1][0] == f"{reverse('staff:patient', args=[patient.pk])}#series-{every_other_day.pk}"
    [message] = messages_of(done)
    assert message.startswith(f"{patient}: session 2 moved to ") and "session 3 moved to" in message
    moved = starts(every_other_day)
    assert moved[2] == datetime.combine(later + timedelta(days=4), time(13))
    assert moved[3] == datetime.combine(later + timedelta(days=5), time(9))
    assert moved[4] == datetime.combine(later + timedelta(days=6), time(9))
    third = every_other_day.sessions.get(number=3)
    assert third.moves.get().moved_by.username == "scheduler"
    assert AuditEvent.objects.filter(session=second, action="moved", detail__contains="patient away two days").exists()


def test_a_move_the_series_gap_refuses_says_why_and_previews_the_reflow_instead(scheduler, daily, later):
    second = daily.sessions.get(number=2)
    # Two days on, session 2 would come after session 3.
    wanted = wall(later + timedelta(days=3), 13)

    response = scheduler.post(reverse("staff:session-move", args=[second.pk]), {"starts_at": wanted}, follow=True)

    refused, offer = messages_of(response)
    assert refused.startswith("Not moved: Session 2: ") and "(rule 5:" in refused
    assert "move it and re-space the later sessions" in offer
    assert response.redirect_chain[-1][0].startswith(reflow_url(second))
    rows = response.context["preview"]["rows"]
    assert [r["number"] for r in rows] == [2, 3, 4, 5, 6] and all(r["changes"] for r in rows)
    assert rows[0]["to"].replace(tzinfo=None) == datetime.combine(later + timedelta(days=3), time(13))
    assert starts(daily)[2] == datetime.combine(later + timedelta(days=1), time(9))


def test_the_move_page_says_when_the_neighbours_pin_a_session_and_points_to_the_reflow(scheduler, daily, later):
    second = daily.sessions.get(number=2)

    page = scheduler.get(reverse("staff:session-move", args=[second.pk])).content.decode()

    assert f"hold this session to {(later + timedelta(days=1)):%A %-d %B}" in page
    assert "Move and re-space the rest" in page and 'href="#reflow"' in page
    assert f'action="{reflow_url(second)}#reflow"' in page


def test_a_makeup_for_a_cancelled_session_goes_later_and_pushes_the_sessions_after_it(scheduler, daily, patient, later):
    third = daily.sessions.get(number=3)
    scheduler.post(reverse("staff:session-cancel", args=[third.pk]), {"reason": "away"})
    makeup_day = later + timedelta(days=3)  # session 4's day: it can only come after

    page = preview(scheduler, third, makeup_day, 9)

    html = page.content.decode()
    assert "Book a make-up for session 3" in html and "new make-up" in html
    rows = page.context["preview"]["rows"]
    assert [(r["number"], r["makeup"], r["changes"]) for r in rows] == [
        (3, True, True), (4, False, True), (5, False, True), (6, False, True),
    ]  # fmt: skip
    done = commit(scheduler, third, page)

    assert "session 3 made up on" in messages_of(done)[0]
    assert starts(daily) == {
        1: datetime.combine(later, time(9)),
        2: datetime.combine(later + timedelta(days=1), time(9)),
        **{n: datetime.combine(later + timedelta(days=n), time(9)) for n in (3, 4, 5, 6)},
    }
    makeup = daily.sessions.get(number=3, status=Session.Status.BOOKED)
    assert makeup.makeup_for_id == third.pk
    assert "Off protocol" not in done.content.decode()


def test_a_commit_whose_times_changed_since_the_preview_books_nothing_and_shows_the_new_preview(
    scheduler, daily, clinic, later
):
    third = daily.sessions.get(number=3)
    session_cancel(session=third, reason="away")
    page = preview(scheduler, third, later + timedelta(days=3), 9)
    before = starts(daily)
    # Meanwhile the clinic closes on the day session 4 was to move to.
    ClosedDate.objects.create(clinic=clinic, date=later + timedelta(days=4), reason="Burst pipe")

    response = commit(scheduler, third, page)

    [message] = messages_of(response)
    assert message == "Not re-flowed: the times changed since the preview. Check them and commit again."
    assert starts(daily) == before
    assert not AuditEvent.objects.filter(action="made up").exists()
    new_fourth = next(r for r in response.context["preview"]["rows"] if r["number"] == 4)
    assert new_fourth["to"].date() == later + timedelta(days=5)


def test_a_reflow_that_breaks_a_rule_names_the_session_in_the_preview_and_on_commit(scheduler, daily, clinic, later):
    third = daily.sessions.get(number=3)
    session_cancel(session=third, reason="away")
    makeup_day = later + timedelta(days=3)
    for n in range(1, 5):  # every day session 4 could follow the make-up
        ClosedDate.objects.create(clinic=clinic, date=makeup_day + timedelta(days=n), reason="Holiday")

    page = preview(scheduler, third, makeup_day, 13)
    refused = scheduler.post(
        reflow_url(third), {"reflow-starts_at": wall(makeup_day, 13), "reflow-plan": ""}, follow=True
    )

    rows = page.context["preview"]["rows"]
    assert [(r["number"], r["conflict"] and r["conflict"].code) for r in rows] == [(3, None), (4, "no_valid_slot")]
    assert page.context["preview"]["unplanned"] == [5, 6]
    html = page.content.decode()
    assert "<strong>Session 4</strong>" in html and "Rule 7" in html and "Book the make-up" not in html
    [message] = messages_of(refused)
    assert message.startswith("Not re-flowed: Session 4 cannot be placed") and "(rule 7:" in message
    assert daily.sessions.filter(number=3, status=Session.Status.BOOKED).count() == 0


def test_a_session_already_made_good_says_so_instead_of_a_preview(scheduler, daily, later):
    third = daily.sessions.get(number=3)
    session_cancel(session=third, reason="away")
    page = preview(scheduler, third, later + timedelta(days=3), 9)
    commit(scheduler, third, page)

    again = preview(scheduler, third, later + timedelta(days=3), 13)

    assert again.status_code == 200 and again.context["preview"] is None
    [message] = messages_of(again)
    assert message.startswith("No preview: Session 3 is already made good.") and "(rule 11:" in message


def test_a_nurse_cannot_reflow_and_another_clinics_session_is_not_found(nurse, daily, later):
    second = daily.sessions.get(number=2)
    elsewhere = clinic_make()
    other = session_make(elsewhere, protocol_make(elsewhere), chair=elsewhere.chairs.first(),
                         starts_at=at(elsewhere, later, 9), patient=patient_make(elsewhere))  # fmt: skip
    limited = client_as(staff_user("Scheduler", clinics=(second.clinic,), username="limited"))

    assert preview(nurse, second, later + timedelta(days=2), 13).status_code == 403
    assert nurse.post(reflow_url(second), {"reflow-starts_at": wall(later, 13)}).status_code == 403
    assert preview(limited, other, later + timedelta(days=1), 9).status_code == 404
    assert limited.post(reflow_url(other), {"reflow-starts_at": wall(later, 13)}).status_code == 404


def test_posts_without_the_csrf_token_are_refused(daily, later):
    user = staff_user("Scheduler", username="frontdesk")
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    third = daily.sessions.get(number=3)
    session_cancel(session=third, reason="away")

    reflowed = browser.post(reflow_url(third), {"reflow-starts_at": wall(later + timedelta(days=3), 9)})
    undone = browser.post(reverse("staff:session-undo", args=[third.pk]))

    assert (reflowed.status_code, undone.status_code) == (403, 403)
    assert daily.sessions.filter(number=3, status=Session.Status.BOOKED).count() == 0
