"""The patient link page /r/<token>, through Django's test client with the real cache (Redis when
REDIS_URL is set). Each test comes from its own address, so the per-address limits of one test
(or of a concurrent run on the same Redis) never reach another."""

import re
import secrets
import socket
import threading
import time
from datetime import datetime, timedelta

import pytest
from django.contrib.sessions.models import Session as WebSession
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone

from notifications import ratelimit
from notifications.links import link_create
from notifications.models import Message
from notifications.patient_text import day_text, time_text
from sessions.calendar import BookingConflict
from sessions.clock import local_date, wall_clock
from sessions.models import AuditEvent, Session, SessionMove
from sessions.services import series_book, session_confirm, session_reschedule
from tests.factories import clinic_make, patient_make, protocol_make
from tests.processes import free_port

pytestmark = pytest.mark.django_db

PREVIEWERS = [
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "WhatsApp/2.23.20.0 A",
    "Twitterbot/1.0",
    # iMessage's preview fetcher announces itself as Facebook's and Twitter's bots on a Safari.
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_11_1) AppleWebKit/601.2.4 (KHTML, like Gecko) "
    "Version/9.0.1 Safari/601.2.4 facebookexternalhit/1.1 Facebot Twitterbot/1.0",
    "Mozilla/5.0 (compatible; Applebot/0.1; +http://www.apple.com/go/applebot)",
]
INSTRUCTIONS = "Wear comfortable clothes and bring a list of your medicines."


def an_address() -> str:
    return "10." + ".".join(str(secrets.randbelow(250) + 1) for _ in range(3))


@pytest.fixture
def client() -> Client:
    return Client(REMOTE_ADDR=an_address())


def days_ahead(clinic, days: int, hour: int = 10, minute: int = 0) -> datetime:
    """`hour` o'clock, `days` days from today in the clinic's calendar, in UTC."""
    day = local_date(timezone.now(), clinic.zone) + timedelta(days=days)
    return wall_clock(day, datetime.min.time().replace(hour=hour, minute=minute), clinic.zone)


def book(patient, protocol, starts: list[datetime], chair=None) -> list[Session]:
    series = series_book(patient=patient, protocol=protocol, starts=starts, chair=chair)
    return list(series.sessions.order_by("number"))


@pytest.fixture
def visit():
    """Session 3 of a six-session series, its link token, and the clinic: the sessions are two
    days apart from three days on, so session 3 may move to three days (6 to 8 days ahead)."""
    clinic = clinic_make(chairs=2, address="1 Main St, Phoenix AZ 85004", sender_name="Desert Wellness")
    protocol = protocol_make(
        clinic, kind="induction", fasting_hours=4, driver_required=True, preparation_instructions=INSTRUCTIONS
    )
    patient = patient_make(clinic)
    sessions = book(patient, protocol, [days_ahead(clinic, 3 + 2 * n) for n in range(6)])
    third = sessions[2]
    return third, link_create(session=third)


def url(token: str) -> str:
    return f"/r/{token}"


def snapshot() -> tuple:
    """Everything a request could have written."""
    return (
        list(Session.objects.order_by("pk").values()),
        AuditEvent.objects.count(),
        SessionMove.objects.count(),
        Message.objects.count(),
        WebSession.objects.count(),
    )


def offered_starts(response) -> list[str]:
    return re.findall(r'name="starts_at" value="([^"]+)"', response.content.decode())


def refreshed(session: Session) -> Session:
    return Session.objects.get(pk=session.pk)


def local_day(session: Session) -> str:
    return day_text(session.starts_at.astimezone(session.clinic.zone), "en")


# Reading


def test_the_page_shows_time_place_count_and_preparation_in_the_clinics_time(client, visit):
    session, token = visit

    page = client.get(url(token))

    text = page.content.decode()
    local = session.starts_at.astimezone(session.clinic.zone)
    assert page.status_code == 200
    assert f"{day_text(local, 'en')}" in text and "10:00 am to 12:00 pm" in text
    assert "1 Main St, Phoenix AZ 85004" in text
    assert "Visit 3 of 6" in text
    assert "Wellness visit" in text and "Depression" not in text  # the patient name, never the internal one
    assert INSTRUCTIONS in text and "Do not eat for 4 hours" in text
    assert '<html lang="en">' in text
    assert "<script" not in text and "http://" not in text and "https://" not in text


@pytest.mark.parametrize("method", ["get", "head"])
def test_link_previewers_change_nothing(client, visit, method):
    session, token = visit
    before = snapshot()

    for agent in PREVIEWERS:
        for _ in range(5):
            for path in (url(token), url(token) + "?step=move"):
                response = getattr(client, method)(path, HTTP_USER_AGENT=agent)
                assert response.status_code == 200

    assert snapshot() == before
    assert refreshed(session).status == Session.Status.BOOKED


def test_every_response_carries_the_privacy_headers(client, visit):
    session, token = visit
    responses = [
        client.get(url(token)),
        client.head(url(token)),
        client.post(url(token), {"action": "confirm", "driver": "yes"}),
        client.get(url("nothing-here-at-all")),
    ]

    for response in responses:
        assert response["Referrer-Policy"] == "no-referrer"
        assert response["Cache-Control"] == "no-store, private"
        assert response["X-Robots-Tag"] == "noindex"
        assert "script-src" not in response["Content-Security-Policy"]


def test_the_page_is_in_spanish_for_a_spanish_speaking_patient(client, visit):
    session, _ = visit
    session.patient.language = "es"
    session.patient.save()
    token = link_create(session=session)

    text = client.get(url(token)).content.decode()

    local = session.starts_at.astimezone(session.clinic.zone)
    assert '<html lang="es">' in text
    assert "Cita 3 de 6" in text and "Confirmar mi cita" in text
    assert day_text(local, "es") in text and " de " in day_text(local, "es")
    assert "de 10:00 a 12:00" in text
    assert "Tengo a alguien que me llevará a casa en coche" in text


# Confirming


def test_a_confirm_post_confirms_through_the_link_and_is_audited(client, visit):
    session, token = visit

    response = client.post(url(token), {"action": "confirm", "driver": "yes"})

    assert response.status_code == 303 and response["Location"] == url(token)
    confirmed = refreshed(session)
    assert confirmed.status == Session.Status.CONFIRMED
    assert confirmed.confirmed_via == Session.Channel.LINK and confirmed.driver_confirmed
    [event] = AuditEvent.objects.filter(session=session, action="confirmed")
    assert event.via == Session.Channel.LINK and event.actor is None and event.at == confirmed.confirmed_at
    page = client.get(url(token)).content.decode()
    assert "Thank you. Your visit is confirmed." in page
    assert client.get(url(token)).content.decode().count("Thank you.") == 0  # the flash shows once


def test_a_second_confirm_says_already_confirmed_and_records_nothing(client, visit):
    session, token = visit
    client.post(url(token), {"action": "confirm", "driver": "yes"})
    client.get(url(token))
    before = snapshot()

    page = client.post(url(token), {"action": "confirm", "driver": "yes"}, follow=True)

    assert "This visit was already confirmed. Nothing has changed." in page.content.decode()
    assert snapshot() == before


def test_the_driver_box_is_required_when_the_protocol_needs_a_driver(client, visit):
    session, token = visit
    form = client.get(url(token)).content.decode()
    assert re.search(r'<input type="checkbox" id="driver" name="driver" value="yes" required', form)
    assert '<label class="check" for="driver">' in form
    before = snapshot()

    page = client.post(url(token), {"action": "confirm"})

    assert page.status_code == 400
    assert "Please tick the box to tell us you have a driver to take you home." in page.content.decode()
    assert 'aria-invalid="true"' in page.content.decode()
    assert snapshot() == before


def test_no_driver_box_when_the_protocol_does_not_need_one(client, visit):
    session, token = visit
    session.series.protocol.driver_required = False
    session.series.protocol.save()

    assert 'name="driver"' not in client.get(url(token)).content.decode()
    client.post(url(token), {"action": "confirm"})

    assert refreshed(session).status == Session.Status.CONFIRMED
    assert not refreshed(session).driver_confirmed


def test_a_visit_confirmed_by_text_without_a_driver_asks_for_the_driver(client, visit):
    session, token = visit
    session_confirm(session=session, via=Session.Channel.SMS)

    assert "Confirm my driver" in client.get(url(token)).content.decode()
    client.post(url(token), {"action": "confirm", "driver": "yes"})

    assert refreshed(session).driver_confirmed
    assert AuditEvent.objects.filter(session=session, via=Session.Channel.LINK, detail="with a driver").exists()
    assert "Confirm my driver" not in client.get(url(token)).content.decode()


def test_a_visit_under_way_shows_no_actions(client, visit):
    session, token = visit
    under_way = timezone.now() - timedelta(minutes=30)
    ends = under_way + timedelta(hours=2)
    Session.objects.filter(pk=session.pk).update(starts_at=under_way, ends_at=ends, chair_free_at=ends)
    before = snapshot()

    text = client.get(url(token)).content.decode()
    client.post(url(token), {"action": "cancel"})
    client.post(url(token), {"action": "confirm", "driver": "yes"})

    assert "This visit can no longer be changed here." in text and "<form" not in text
    assert snapshot() == before


# Moving


def test_it_offers_only_slots_the_booking_service_accepts_and_moves_there(client, visit):
    session, token = visit
    page = client.get(url(token) + "?step=move")
    offered = offered_starts(page)

    days = re.findall(r"<legend>([^<]+)</legend>", page.content.decode())
    assert len(days) == 3 and len(offered) == 3 * 8  # three days the series gap allows, eight a day
    for value in offered:
        with transaction.atomic():
            session_reschedule(session=session, starts_at=datetime.fromisoformat(value))
            transaction.set_rollback(True)

    response = client.post(url(token), {"action": "move", "starts_at": offered[-1]})

    moved = refreshed(session)
    assert response.status_code == 303
    assert moved.starts_at == datetime.fromisoformat(offered[-1]) and moved.status == Session.Status.BOOKED
    assert SessionMove.objects.get(session=session).via == Session.Channel.LINK
    assert AuditEvent.objects.get(session=session, action="moved").via == Session.Channel.LINK


def test_the_slots_of_a_day_are_the_ones_nearest_the_usual_time(client, visit):
    session, token = visit

    offered = offered_starts(client.get(url(token) + "?step=move"))

    zone = session.clinic.zone
    first_day = [datetime.fromisoformat(v).astimezone(zone) for v in offered[:8]]
    assert [f"{t:%H:%M}" for t in first_day] == ["09:00", "09:15", "09:30", "09:45", "10:00", "10:15", "10:30", "10:45"]


def test_after_a_move_the_same_link_shows_the_new_time(client, visit):
    session, token = visit
    offered = offered_starts(client.get(url(token) + "?step=move"))

    page = client.post(url(token), {"action": "move", "starts_at": offered[-1]}, follow=True)

    moved = refreshed(session)
    new_time = time_text(moved.starts_at.astimezone(moved.clinic.zone), "en")
    text = page.content.decode()
    assert f"Your visit is now {local_day(moved)}, {new_time}. Please confirm the new time." in text
    assert local_day(moved) in client.get(url(token)).content.decode()
    assert moved.starts_at != session.starts_at


def test_posting_the_same_move_again_changes_nothing(client, visit):
    session, token = visit
    offered = offered_starts(client.get(url(token) + "?step=move"))
    client.post(url(token), {"action": "move", "starts_at": offered[0]})
    before = snapshot()

    response = client.post(url(token), {"action": "move", "starts_at": offered[0]})

    assert response.status_code == 303
    assert snapshot() == before


@pytest.mark.parametrize("value", ["", "tomorrow", "2026-01-09T13:00:00"])
def test_a_move_to_something_not_offered_is_refused(client, visit, value):
    session, token = visit
    before = snapshot()

    page = client.post(url(token), {"action": "move", "starts_at": value})

    assert page.status_code == 400
    assert "Please choose one of the times shown." in page.content.decode()
    assert snapshot() == before


def test_a_move_to_a_time_outside_the_offer_is_refused_as_taken(client, visit):
    session, token = visit
    outside = days_ahead(session.clinic, 12).isoformat()  # a free time, but it breaks the series gap
    before = snapshot()

    page = client.post(url(token), {"action": "move", "starts_at": outside})

    assert page.status_code == 409
    assert "That time was just taken. Please pick another." in page.content.decode()
    assert snapshot() == before


def test_the_form_cannot_name_another_session(client, visit):
    session, token = visit
    other_clinic = clinic_make()
    [other] = book(
        patient_make(other_clinic), protocol_make(other_clinic, kind="booster"), [days_ahead(other_clinic, 4)]
    )

    client.post(url(token), {"action": "cancel", "session": other.pk, "session_id": other.pk})

    assert refreshed(other).status == Session.Status.BOOKED
    assert refreshed(session).status == Session.Status.CANCELLED


# Cancelling


def test_cancel_inside_the_policy_cancels_through_the_link(client, visit):
    session, token = visit

    page = client.post(url(token), {"action": "cancel"}, follow=True)

    assert refreshed(session).status == Session.Status.CANCELLED
    assert AuditEvent.objects.get(session=session, action="cancelled").via == Session.Channel.LINK
    text = page.content.decode()
    assert "Your visit is cancelled. To book a new time, please call (602) 555-0100." in text
    assert 'name="action"' not in text  # a cancelled visit offers nothing more
    before = snapshot()
    client.post(url(token), {"action": "cancel"})
    assert snapshot() == before  # and cancelling again records nothing


def test_outside_the_policy_the_page_says_please_call_and_a_cancel_is_refused(client, visit):
    session, token = visit
    session.clinic.cancellation_notice_hours = 24 * 30
    session.clinic.save()

    page = client.get(url(token)).content.decode()
    assert 'value="cancel"' not in page
    assert "To cancel this visit now, please call (602) 555-0100." in page
    before = snapshot()

    refused = client.post(url(token), {"action": "cancel"}, follow=True)

    assert "To cancel this visit now, please call (602) 555-0100." in refused.content.decode()
    assert snapshot() == before


# Bad tokens and limits


def test_every_bad_token_gets_the_same_neutral_page(client, visit):
    session, token = visit
    [over] = book(
        patient_make(session.clinic),
        protocol_make(session.clinic, kind="booster"),
        [days_ahead(session.clinic, 2)],
    )
    over_token = link_create(session=over)
    Session.objects.filter(pk=over.pk).update(
        starts_at=timezone.now() - timedelta(hours=3),
        ends_at=timezone.now() - timedelta(hours=1),
        chair_free_at=timezone.now() - timedelta(hours=1),
    )
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    bad = [tampered, over_token, secrets.token_urlsafe(9), "A" * 12, token[:6], token * 6]

    responses = [client.get(url(t)) for t in bad] + [client.post(url(t), {"action": "confirm"}) for t in bad]

    assert {r.status_code for r in responses} == {404}
    assert len({r.content for r in responses}) == 1
    assert "Desert Wellness" not in responses[0].content.decode()
    assert refreshed(over).status == Session.Status.BOOKED


def test_a_cancelled_visit_shows_please_call_and_no_actions(client, visit):
    session, token = visit
    client.post(url(token), {"action": "cancel"})

    text = client.get(url(token)).content.decode()

    assert "This visit is cancelled. To book a new time, please call (602) 555-0100." in text
    assert "<form" not in text and "?step=move" not in text


def test_bad_tokens_from_one_address_are_refused_once_over_its_limit(settings, visit):
    settings.LINK_RATE_WINDOW_SECONDS = 3600  # one window for the whole test, whenever it runs
    limit = settings.LINK_RATE_BAD_TOKENS_PER_IP
    guesser = Client(REMOTE_ADDR=an_address())

    statuses = [guesser.get(url(secrets.token_urlsafe(9))).status_code for _ in range(limit + 10)]

    assert statuses == [404] * limit + [429] * 10
    neutral = Client(REMOTE_ADDR=an_address()).get(url("unknown-token-x"))
    assert guesser.get(url("unknown-token-y")).content == neutral.content


def test_a_valid_link_opens_from_an_address_over_its_bad_token_limit(settings, visit):
    settings.LINK_RATE_WINDOW_SECONDS = 3600
    session, token = visit
    shared_wifi = an_address()
    neighbour, patient = Client(REMOTE_ADDR=shared_wifi), Client(REMOTE_ADDR=shared_wifi)
    for _ in range(settings.LINK_RATE_BAD_TOKENS_PER_IP + 1):
        neighbour.get(url(secrets.token_urlsafe(9)))

    opened = patient.get(url(token))

    assert opened.status_code == 200
    assert "Desert Wellness" in opened.content.decode()
    assert patient.post(url(token), {"action": "confirm", "driver": "yes"}).status_code == 303
    assert neighbour.get(url(secrets.token_urlsafe(9))).status_code == 429


def test_a_flood_from_one_address_is_stopped_before_the_database(settings, visit, django_assert_num_queries):
    settings.LINK_RATE_WINDOW_SECONDS = 3600
    session, token = visit
    flooder = Client(REMOTE_ADDR=an_address())
    for _ in range(settings.LINK_RATE_PER_IP):
        flooder.head(url(token))

    with django_assert_num_queries(0):
        refused = flooder.get(url(token))

    assert refused.status_code == 429
    assert Client(REMOTE_ADDR=an_address()).get(url(token)).status_code == 200


def test_posts_on_one_link_are_limited(settings, visit):
    settings.LINK_RATE_WINDOW_SECONDS = 3600
    session, token = visit
    limit = settings.LINK_RATE_POSTS_PER_TOKEN

    statuses = [
        Client(REMOTE_ADDR=an_address()).post(url(token), {"action": "confirm", "driver": "yes"}).status_code
        for _ in range(limit + 1)
    ]

    assert statuses == [303] * limit + [429]


@pytest.fixture
def redis_at(settings):
    """Point the rate limits at another Redis for one test; fresh counters before and after."""

    def point(url: str) -> None:
        settings.REDIS_URL = url
        ratelimit._redis_counters.cache_clear()

    yield point
    ratelimit._redis_counters.cache_clear()


def test_the_page_still_opens_while_the_rate_limits_store_is_down(redis_at, visit, client):
    session, token = visit
    redis_at(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there

    response = client.get(url(token))

    assert response.status_code == 200
    assert "Desert Wellness" in response.content.decode()


def test_a_hung_rate_limits_store_delays_the_page_a_moment_not_until_the_worker_timeout(redis_at, visit, client):
    session, token = visit
    with socket.socket() as silent:  # accepts connections (the backlog does), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        redis_at(f"redis://127.0.0.1:{silent.getsockname()[1]}/0")

        began = time.monotonic()
        first = client.get(url(token))
        waited = time.monotonic() - began
        began = time.monotonic()
        second = client.get(url(token))  # the limits stay open a few seconds: no second wait
        waited_again = time.monotonic() - began

    assert (first.status_code, second.status_code) == (200, 200)
    assert waited < 5, waited  # a quarter of a second's timeout, not gunicorn's 30 s
    assert waited_again < waited


# CSRF


def test_a_post_without_the_csrf_token_is_refused(visit):
    session, token = visit
    browser = Client(enforce_csrf_checks=True, REMOTE_ADDR=an_address())
    browser.get(url(token))
    before = snapshot()

    refused = browser.post(url(token), {"action": "confirm", "driver": "yes"})

    assert refused.status_code == 403
    assert snapshot() == before


@pytest.mark.parametrize(
    ("origin", "status"),
    [
        ("null", 303),  # what a browser sends from a page with Referrer-Policy: no-referrer
        ("https://testserver", 303),
        ("https://elsewhere.example", 403),
    ],
)
def test_a_post_with_the_csrf_token_is_judged_by_its_origin(visit, origin, status):
    session, token = visit
    browser = Client(enforce_csrf_checks=True, REMOTE_ADDR=an_address())
    form = browser.get(url(token), secure=True).content.decode()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)

    response = browser.post(
        url(token), {"action": "confirm", "driver": "yes", "csrfmiddlewaretoken": csrf}, secure=True, HTTP_ORIGIN=origin
    )

    assert response.status_code == status
    assert refreshed(session).status == (Session.Status.CONFIRMED if status == 303 else Session.Status.BOOKED)
    assert response["Referrer-Policy"] == "no-referrer"


# Racing


@pytest.mark.django_db(transaction=True)
@pytest.mark.concurrency
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL: row locks between connections")
def test_two_patients_racing_for_the_last_slot_one_wins_and_the_other_is_told():
    clinic = clinic_make(chairs=1)
    booster = protocol_make(clinic, kind="booster")
    chair = clinic.chairs.get()
    [first] = book(patient_make(clinic), booster, [days_ahead(clinic, 3, hour=8)], chair=chair)
    [second] = book(patient_make(clinic), booster, [days_ahead(clinic, 3, hour=10)], chair=chair)
    tokens = {first.pk: link_create(session=first), second.pk: link_create(session=second)}
    # Among the times both are shown, written as the page writes it: with the clinic's offset.
    wanted = days_ahead(clinic, 4, hour=9, minute=30).astimezone(clinic.zone).isoformat()
    for token in tokens.values():
        assert wanted in offered_starts(Client(REMOTE_ADDR=an_address()).get(url(token) + "?step=move"))
    gate = threading.Barrier(2)
    results: dict[int, object] = {}

    def move(pk: int) -> None:
        patient = Client(REMOTE_ADDR=an_address())
        try:
            gate.wait()
            results[pk] = patient.post(url(tokens[pk]), {"action": "move", "starts_at": wanted})
        finally:
            connection.close()

    threads = [threading.Thread(target=move, args=(pk,)) for pk in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    statuses = sorted(r.status_code for r in results.values())
    assert statuses == [303, 409]
    [(loser_pk, loser)] = [(pk, r) for pk, r in results.items() if r.status_code == 409]
    assert "That time was just taken. Please pick another." in loser.content.decode()
    assert wanted not in offered_starts(loser)  # the fresh list, without the taken time
    original = first if loser_pk == first.pk else second
    unchanged = refreshed(original)
    assert (unchanged.starts_at, unchanged.version) == (original.starts_at, 1)
    assert not SessionMove.objects.filter(session_id=loser_pk).exists()
    with pytest.raises(BookingConflict):
        session_reschedule(session=unchanged, starts_at=datetime.fromisoformat(wanted))
