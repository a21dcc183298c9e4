"""The patient link as self-service (rules 11 and 13): no time sooner than the clinic's minimum
notice, Today and Tomorrow said as such, every visit of the series in view, and "move and
re-space my later visits" where the clinic allows it."""

import re
from datetime import datetime, timedelta

import pytest
from django.test import Client
from django.utils import timezone

from notifications.links import link_create
from notifications.patient_text import day_text, when_text
from sessions.clock import local_date
from sessions.models import AuditEvent, Session
from sessions.selectors import session_slots
from sessions.services import session_cancel
from tests.factories import patient_make, protocol_make
from tests.notifications.conftest import always_open_clinic, zone_where_it_is
from tests.notifications.test_patient_link import (
    an_address,
    book,
    days_ahead,
    offered_starts,
    refreshed,
    snapshot,
    url,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def client() -> Client:
    return Client(REMOTE_ADDR=an_address())


def single_visit(*, fasting: int = 0, cancellation: int = 24, notice: int | None = None, language: str = "en"):
    """A one-visit protocol five days from now at the hour it is now (so the slots nearest the
    usual hour start right at the notice), in a clinic open around the clock where it is 06:00."""
    clinic = always_open_clinic(
        chairs=2, time_zone=zone_where_it_is(6), cancellation_notice_hours=cancellation,
        self_service_notice_hours=notice,
    )  # fmt: skip
    booster = protocol_make(clinic, kind="booster", fasting_hours=fasting, driver_required=False)
    local_now = timezone.now().astimezone(clinic.zone)
    hour = (local_now + timedelta(hours=(notice if notice is not None else max(fasting, cancellation)))).hour
    [session] = book(patient_make(clinic, language=language), booster, [days_ahead(clinic, 5, hour=hour)])
    return session, link_create(session=session)


def offered(client, token: str) -> list[datetime]:
    return [datetime.fromisoformat(value) for value in offered_starts(client.get(url(token) + "?step=move"))]


def legends(page) -> list[str]:
    return re.findall(r"<legend>([^<]+)</legend>", page.content.decode())


# Minimum notice (rule 13)


@pytest.mark.parametrize(
    ("fasting", "cancellation", "notice", "hours"),
    [
        (6, 24, None, 24),  # the cancellation notice, larger than the fasting time
        (30, 24, None, 30),  # the fasting time, larger than the cancellation notice
        (6, 24, 2, 2),  # the clinic's own minimum notice
    ],
)
def test_the_link_offers_no_time_sooner_than_the_minimum_notice(client, fasting, cancellation, notice, hours):
    session, token = single_visit(fasting=fasting, cancellation=cancellation, notice=notice)
    before = timezone.now()

    starts = offered(client, token)

    after = timezone.now()
    assert min(starts) >= before + timedelta(hours=hours)
    # The first time offered is the first one on the clinic's grid past the notice: the notice cuts.
    assert min(starts) <= after + timedelta(hours=hours, minutes=session.clinic.slot_minutes)
    assert any(slot.starts_at < before + timedelta(hours=hours) for slot in session_slots(session=session))


def test_a_posted_time_sooner_than_the_notice_is_refused_as_too_soon(client):
    session, token = single_visit(fasting=6, cancellation=24)
    soon = next(slot.starts_at for slot in session_slots(session=session) if slot.starts_at > timezone.now())
    before = snapshot()

    page = client.post(url(token), {"action": "move", "starts_at": soon.astimezone(session.clinic.zone).isoformat()})

    assert page.status_code == 409
    assert "That time is too soon to choose here. Please pick a later one, or call (602) 555-0100." in (
        page.content.decode()
    )
    assert snapshot() == before


@pytest.mark.parametrize(("language", "today", "tomorrow"), [("en", "Today", "Tomorrow"), ("es", "Hoy", "Mañana")])
def test_slots_today_and_tomorrow_are_labelled_so_in_the_patients_language(client, language, today, tomorrow):
    session, token = single_visit(notice=1, language=language)
    day = local_date(timezone.now(), session.clinic.zone)

    days = legends(client.get(url(token) + "?step=move"))

    assert days[:3] == [
        f"{today}, {day_text(day, language)}",
        f"{tomorrow}, {day_text(day + timedelta(days=1), language)}",
        day_text(day + timedelta(days=2), language),
    ]


# The series in view


@pytest.fixture
def third_of_six():
    """Session 3 of a six-session series two days apart from three days on (days 3, 5, …, 13 at
    10:00): alone it may move to days 6–8; day 9 keeps the gap from session 2 but not from 4."""
    clinic = always_open_clinic(chairs=2, time_zone="America/Phoenix")
    protocol = protocol_make(clinic, kind="induction", driver_required=False)
    sessions = book(patient_make(clinic), protocol, [days_ahead(clinic, 3 + 2 * n) for n in range(6)])
    return sessions, link_create(session=sessions[2])


def visits_listed(page) -> list[str]:
    section = re.search(r'<h2 id="visits-heading">.*?</ul>', page.content.decode(), re.S)
    assert section is not None
    return [
        f"{count} {when}"
        for count, when in re.findall(r"<li><strong>([^<]+)</strong> <span>([^<]+)</span></li>", section.group(0))
    ]


def local_when(session: Session, language: str = "en") -> str:
    return when_text(session.starts_at.astimezone(session.clinic.zone), language)


def test_the_page_lists_the_other_visits_of_the_series_still_to_come(client, third_of_six):
    sessions, token = third_of_six
    session_cancel(session=sessions[4], reason="away")

    page = client.get(url(token))

    assert "Your other visits" in page.content.decode()
    assert visits_listed(page) == [
        f"Visit {s.number} of 6 {local_when(s)}" for s in (sessions[0], sessions[1], sessions[3], sessions[5])
    ]


def test_the_page_with_its_visits_takes_two_queries(client, third_of_six, django_assert_num_queries):
    _, token = third_of_six

    with django_assert_num_queries(2):  # the link with what it opens, then the series' other visits
        page = client.get(url(token))

    assert len(visits_listed(page)) == 5


# Re-flow on the link (rule 11)


def form_offers(page, form_id: str) -> list[str]:
    form = re.search(rf'<form [^>]*id="{form_id}".*?</form>', page.content.decode(), re.S)
    return re.findall(r'name="starts_at" value="([^"]+)"', form.group(0)) if form else []


def test_where_the_clinic_allows_it_the_link_moves_and_re_spaces_the_later_visits(client, third_of_six):
    sessions, token = third_of_six
    clinic = sessions[0].clinic
    clinic.patients_may_reflow = True
    clinic.save()
    day_9 = days_ahead(clinic, 9).astimezone(clinic.zone).isoformat()

    move_page = client.get(url(token) + "?step=move")
    assert day_9 not in form_offers(move_page, "move-form")
    assert day_9 in form_offers(move_page, "reflow-form")
    assert "Move and re-space" not in move_page.content.decode()  # choosing first shows the new times
    before = snapshot()
    preview = client.get(url(token), {"step": "reflow", "starts_at": day_9})

    assert snapshot() == before  # a GET writes nothing, even a re-flow's preview
    text = preview.content.decode()
    assert "Your new times" in text
    lines = re.findall(r"<li[^>]*><strong>([^<]+)</strong> <span>([^<]+)</span>( <span class=\"note\">)?", text)
    day_10 = days_ahead(clinic, 10)
    assert [(count, when, bool(same)) for count, when, same in lines] == [
        ("Visit 3 of 6", when_text(days_ahead(clinic, 9).astimezone(clinic.zone), "en"), False),
        ("Visit 4 of 6", when_text(day_10.astimezone(clinic.zone), "en"), False),
        ("Visit 5 of 6", local_when(sessions[4]), True),
        ("Visit 6 of 6", local_when(sessions[5]), True),
    ]
    assert "Move and re-space my later visits" in text

    done = client.post(url(token), {"action": "reflow", "starts_at": day_9}, follow=True)

    assert refreshed(sessions[2]).starts_at == days_ahead(clinic, 9)
    assert refreshed(sessions[3]).starts_at == day_10
    assert [refreshed(s).starts_at for s in sessions[4:]] == [s.starts_at for s in sessions[4:]]
    assert set(AuditEvent.objects.filter(action="moved").values_list("session_id", "via")) == {
        (sessions[2].pk, Session.Channel.LINK),
        (sessions[3].pk, Session.Channel.LINK),
    }
    page = done.content.decode()
    assert "Your later visits have new times too: see them below." in page
    assert f"Visit 4 of 6 {local_when(refreshed(sessions[3]))}" in visits_listed(done)
    again = snapshot()
    client.post(url(token), {"action": "reflow", "starts_at": day_9})
    assert snapshot() == again  # the same re-flow posted again changes nothing


def test_where_the_clinic_does_not_allow_it_the_link_offers_no_re_flow_and_refuses_one(client, third_of_six):
    sessions, token = third_of_six
    clinic = sessions[0].clinic
    day_9 = days_ahead(clinic, 9).astimezone(clinic.zone).isoformat()

    move_page = client.get(url(token) + "?step=move")
    preview = client.get(url(token), {"step": "reflow", "starts_at": day_9})
    before = snapshot()
    refused = client.post(url(token), {"action": "reflow", "starts_at": day_9}, follow=True)

    assert day_9 not in offered_starts(move_page) and not form_offers(move_page, "reflow-form")
    assert "your later visits move too" not in move_page.content.decode()
    assert "Move and re-space" not in preview.content.decode()
    assert "That could not be done. Please call (602) 555-0100." in refused.content.decode()
    assert snapshot() == before
    assert refreshed(sessions[2]).starts_at == sessions[2].starts_at


def test_a_re_flow_time_sooner_than_the_notice_is_refused(client, third_of_six):
    sessions, token = third_of_six
    clinic = sessions[0].clinic
    clinic.patients_may_reflow = True
    clinic.cancellation_notice_hours = 24 * 10  # day 9 is now too soon to pick alone
    clinic.save()
    day_9 = days_ahead(clinic, 9).astimezone(clinic.zone).isoformat()
    before = snapshot()

    assert day_9 not in form_offers(client.get(url(token) + "?step=move"), "reflow-form")
    refused = client.post(url(token), {"action": "reflow", "starts_at": day_9})

    assert refused.status_code == 409
    assert "That time is too soon to choose here." in refused.content.decode()
    assert snapshot() == before
