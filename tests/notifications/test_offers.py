"""Waitlist offers: a cancel frees chair time, the next tick offers it by text (and email) to the
best-ranked waiting patient it fits, the link books it; an offer ends on time (never past the
minimum notice) and the time passes on; 20 accepts at once book once; quiet hours, caps and an
opt-out pass a patient over for the round."""

import re
from datetime import datetime, time, timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from notifications import offers, sending
from notifications.links import link_create
from notifications.models import Channel, Message, Purpose
from notifications.rendering import render
from notifications.wording import fits_one_segment
from sessions.clock import local_date, wall_clock
from sessions.models import AuditEvent, Offer, Opening, Series, Session, WaitlistEntry
from sessions.services import series_book, session_cancel, session_undo
from sessions.waitlist import offer_accept, offer_decline, waitlist_join
from tests.factories import patient_make, protocol_make, staffing_make
from tests.notifications.conftest import always_open_clinic
from tests.notifications.test_patient_link import an_address
from tests.notifications.test_send import tick
from tests.sessions.test_concurrency import race

pytestmark = pytest.mark.django_db
LINK = re.compile(r"/r/([A-Za-z0-9_-]{10,})")


@pytest.fixture
def clinic(settings):
    settings.PUBLIC_BASE_URL = "https://go.example.com"
    clinic = always_open_clinic(chairs=1, cancellation_notice_hours=24, sender_name="Desert Bloom")
    staffing_make(clinic, nurses=2, per_nurse=4)
    return clinic


@pytest.fixture
def booster(clinic):
    return protocol_make(clinic, kind="booster", driver_required=False, fasting_hours=0)


@pytest.fixture
def now() -> datetime:
    return timezone.now()


def tomorrow_at(clinic, hour: int, now: datetime) -> datetime:
    return wall_clock(local_date(now, clinic.zone) + timedelta(days=1), time(hour), clinic.zone)


def freed(clinic, booster, starts_at: datetime, now: datetime) -> Session:
    """Another patient's visit, cancelled now: its chair time is an opening."""
    series = series_book(patient=patient_make(clinic, first_name="Gone"), protocol=booster, starts=[starts_at],
                         now=now - timedelta(days=3))  # fmt: skip
    return session_cancel(session=series.sessions.get(), reason="travelling", now=now)


def waiting(clinic, booster, now: datetime, name: str, **fields) -> WaitlistEntry:
    patient = patient_make(clinic, first_name=name, **fields.pop("patient_fields", {}))
    today = local_date(now, clinic.zone)
    return waitlist_join(patient=patient, protocol=booster, earliest=today, latest=today + timedelta(days=10),
                         now=now - timedelta(days=fields.pop("days_ago", 1)), **fields)  # fmt: skip


def offer_of(entry: WaitlistEntry) -> Offer:
    return Offer.objects.get(entry=entry)


def test_a_cancel_is_offered_at_the_next_tick_and_the_link_books_it(clinic, booster, now, twilio, smtp):
    gone = freed(clinic, booster, tomorrow_at(clinic, 10, now), now)
    waiting(clinic, booster, now, "Early", days_ago=5)
    urgent = waiting(clinic, booster, now, "Urgent", needed_by=local_date(now, clinic.zone) + timedelta(days=2))

    assert offers.offers_tick(now=now) == 1
    sent = [sending.message_send(message_id=pk, now=now) for pk in tick(now)]

    offer = offer_of(urgent)
    assert (offer.status, offer.opening.starts_at, offer.expires_at) == (
        "offered",
        gone.starts_at,
        now + timedelta(hours=1),
    )
    assert sorted(sent) == ["sent", "sent"] and not Offer.objects.exclude(pk=offer.pk).exists()
    [text] = [t for t in twilio.messages if t.to == urgent.patient.phone]
    assert text.body.startswith("Desert Bloom: a visit time opened up,")
    assert [m["Subject"] for m in smtp.messages if m["To"] == urgent.patient.email][0].startswith("A visit time opened")
    page = Client(REMOTE_ADDR=an_address()).get(f"/r/{LINK.search(text.body)[1]}")
    assert page.status_code == 200 and "Book this time" in page.content.decode()

    booked = Client(REMOTE_ADDR=an_address()).post(f"/r/{LINK.search(text.body)[1]}", {"action": "accept"}, follow=True)

    assert "It is yours." in booked.content.decode()
    series = Series.objects.get(patient=urgent.patient)
    assert series.sessions.get().starts_at == gone.starts_at
    assert Opening.objects.get(freed_by=gone).status == Opening.Status.FILLED
    offer.refresh_from_db()
    urgent.refresh_from_db()
    assert (offer.status, urgent.status) == ("accepted", "booked")
    actions = set(AuditEvent.objects.filter(patient=urgent.patient).values_list("action", flat=True))
    assert {"offered", "accepted", "filled from waitlist", "booked"} <= actions


def test_an_unanswered_offer_ends_on_time_and_the_next_patient_is_offered(clinic, booster, now):
    freed(clinic, booster, tomorrow_at(clinic, 10, now), now)
    first = waiting(clinic, booster, now, "First", days_ago=5)
    second = waiting(clinic, booster, now, "Second", days_ago=2)
    offers.offers_tick(now=now)

    offers.offers_tick(now=now + timedelta(minutes=59))
    assert not Offer.objects.filter(entry=second).exists()
    offers.offers_tick(now=now + timedelta(minutes=60))

    assert offer_of(first).status == "expired"
    assert offer_of(second).status == "offered"
    assert AuditEvent.objects.filter(patient=first.patient, action="expired").exists()
    # The first stays on the list for another time; their late tap books nothing.
    assert offer_accept(offer=offer_of(first), now=now + timedelta(minutes=61)).outcome == "expired"
    assert WaitlistEntry.objects.get(pk=first.pk).status == "waiting"


def test_an_offer_always_ends_before_the_minimum_notice(clinic, booster, now):
    gone = freed(clinic, booster, now + timedelta(hours=24, minutes=30), now)
    entry = waiting(clinic, booster, now, "Soon")

    offers.offers_tick(now=now)

    assert offer_of(entry).expires_at == gone.starts_at - timedelta(hours=24)


def test_a_no_thanks_hands_the_time_on_at_the_next_tick(clinic, booster, now):
    freed(clinic, booster, tomorrow_at(clinic, 10, now), now)
    first = waiting(clinic, booster, now, "First", days_ago=5)
    second = waiting(clinic, booster, now, "Second", days_ago=2)
    offers.offers_tick(now=now)

    offer_decline(offer=offer_of(first), now=now + timedelta(minutes=1))
    offers.offers_tick(now=now + timedelta(minutes=2))

    assert (offer_of(first).status, offer_of(second).status) == ("declined", "offered")
    assert WaitlistEntry.objects.get(pk=first.pk).status == "waiting"


def test_a_cancel_taken_back_withdraws_the_offer(clinic, booster, now):
    gone = freed(clinic, booster, tomorrow_at(clinic, 10, now), now)
    entry = waiting(clinic, booster, now, "Hopeful")
    offers.offers_tick(now=now)

    session_undo(session=gone, now=now + timedelta(minutes=5))

    assert offer_of(entry).status == "taken"
    assert offer_accept(offer=offer_of(entry), now=now + timedelta(minutes=6)).outcome == "taken"
    assert not Series.objects.filter(patient=entry.patient).exists()


def test_staff_booking_the_time_first_leaves_the_offer_nothing(clinic, booster, now):
    gone = freed(clinic, booster, tomorrow_at(clinic, 10, now), now)
    entry = waiting(clinic, booster, now, "Hopeful")
    offers.offers_tick(now=now)
    series_book(patient=patient_make(clinic, first_name="Walkin"), protocol=booster, starts=[gone.starts_at], now=now)

    answer = offer_accept(offer=offer_of(entry), now=now + timedelta(minutes=1))

    assert answer.outcome == "taken"
    assert not Series.objects.filter(patient=entry.patient).exists()
    assert WaitlistEntry.objects.get(pk=entry.pk).status == "waiting"


def test_in_quiet_hours_an_offer_goes_by_email_or_passes_to_someone_reachable(booster, now, settings):
    clinic = booster.clinic
    clinic.message_window_start, clinic.message_window_end = time(9), time(20)
    clinic.save()
    night = wall_clock(local_date(now, clinic.zone) + timedelta(days=1), time(22), clinic.zone)
    freed(clinic, booster, night + timedelta(hours=36), night)
    textonly = waiting(clinic, booster, night, "Textonly", days_ago=5, patient_fields={"email": ""})
    emailed = waiting(clinic, booster, night, "Emailed", days_ago=2)

    offers.offers_tick(now=night)

    assert not Offer.objects.filter(entry=textonly).exists()
    assert list(Message.objects.filter(offer__entry=emailed).values_list("channel", flat=True)) == [Channel.EMAIL]


def test_an_opted_out_or_capped_patient_without_email_is_passed_over(clinic, booster, now, settings):
    settings.SMS_DAILY_CAP = 1
    freed(clinic, booster, tomorrow_at(clinic, 10, now), now)
    waiting(clinic, booster, now, "Stopped", days_ago=9, patient_fields={"email": "", "sms_opted_out_at": now})
    capped = waiting(clinic, booster, now, "Capped", days_ago=8, patient_fields={"email": ""})
    Message.objects.create(
        clinic=clinic, offer=None, recall=None, session=Session.objects.get(patient__first_name="Gone"),
        patient=capped.patient, purpose=Purpose.REMINDER, key="x", channel=Channel.SMS, session_version=1,
        due_at=now, expires_at=now, status=Message.Status.SENT, sending_started_at=now - timedelta(minutes=5),
    )  # fmt: skip
    reachable = waiting(clinic, booster, now, "Reachable", days_ago=1, patient_fields={"email": ""})

    offers.offers_tick(now=now)

    assert list(Offer.objects.values_list("entry", flat=True)) == [reachable.pk]
    assert list(Message.objects.filter(offer__entry=reachable).values_list("channel", flat=True)) == [Channel.SMS]


@pytest.mark.django_db(transaction=True)
def test_twenty_accepts_at_once_book_one_and_tell_19_it_is_gone(booster, now, settings):
    clinic = booster.clinic
    settings.WAITLIST_OFFER_BATCH = 20
    gone = freed(clinic, booster, tomorrow_at(clinic, 10, now), now)
    for n in range(20):
        waiting(clinic, booster, now, f"P{n}", days_ago=20 - n)
    offers.offers_tick(now=now)
    links = [f"/r/{link_create(offer=offer)}" for offer in Offer.objects.filter(opening__freed_by=gone)]
    assert len(links) == 20
    pages: list[str] = []

    def accept(link: str):
        def attempt() -> None:
            pages.append(
                Client(REMOTE_ADDR=an_address()).post(link, {"action": "accept"}, follow=True).content.decode()
            )

        return attempt

    race([accept(link) for link in links])
    connection.close()

    assert len(pages) == 20
    assert sum("It is yours." in page for page in pages) == 1
    gone_pages = [page for page in pages if "Sorry, this time is no longer available." in page]
    assert len(gone_pages) == 19
    assert all("You are still on the list" in page and "Take me off the list" in page for page in gone_pages)
    assert Session.objects.filter(starts_at=gone.starts_at).exclude(pk=gone.pk).count() == 1
    assert Offer.objects.filter(status="accepted").count() == 1
    assert Offer.objects.filter(status="taken").count() == 19
    assert WaitlistEntry.objects.filter(status="waiting").count() == 19


@pytest.mark.parametrize("language", ["en", "es"])
@pytest.mark.parametrize("purpose", [Purpose.OFFER, Purpose.RECALL])
def test_offer_and_recall_texts_are_one_neutral_segment_with_the_link(clinic, booster, now, purpose, language):
    freed(clinic, booster, tomorrow_at(clinic, 10, now), now)
    entry = waiting(clinic, booster, now, "Reader", patient_fields={"language": language})
    offers.offers_tick(now=now)
    message = Message.objects.get(offer__entry=entry, channel=Channel.SMS)
    if purpose == Purpose.RECALL:
        from sessions.models import Recall

        series = series_book(patient=entry.patient, protocol=booster, starts=[tomorrow_at(clinic, 14, now)], now=now)
        recall = Recall.objects.create(clinic=clinic, patient=entry.patient, series=series, protocol=booster,
                                       due_on=local_date(now, clinic.zone) + timedelta(days=20))  # fmt: skip
        message = Message(recall=recall, clinic=clinic, patient=entry.patient, purpose=purpose, channel=Channel.SMS)

    body = render(message, token="Ab3dEf6hIj9k").body

    assert fits_one_segment(body), body
    assert "/r/Ab3dEf6hIj9k" in body and "STOP" in body and "Desert Bloom" in body
    assert booster.name.lower() not in body.lower() and "ketamine" not in body.lower()
    assert ("opened up" in body or "next visit" in body) == (language == "en")


def test_an_offer_link_takes_no_post_without_its_csrf_token_and_opens_nothing_when_unknown(clinic, booster, now):
    freed(clinic, booster, tomorrow_at(clinic, 10, now), now)
    entry = waiting(clinic, booster, now, "Careful")
    offers.offers_tick(now=now)
    link = f"/r/{link_create(offer=offer_of(entry))}"

    forged = Client(REMOTE_ADDR=an_address(), enforce_csrf_checks=True).post(link, {"action": "accept"})
    unknown = Client(REMOTE_ADDR=an_address()).get(link[:-2] + "zz")

    assert forged.status_code == 403
    assert offer_of(entry).status == "offered" and not Series.objects.filter(patient=entry.patient).exists()
    assert unknown.status_code == 404 and "Careful" not in unknown.content.decode()


def test_a_short_visit_filling_a_long_ones_chair_leaves_the_rest_offered(clinic, booster, now):
    pain = protocol_make(clinic, kind="pain", driver_required=False, fasting_hours=0, session_count=1)
    long_visit = series_book(patient=patient_make(clinic), protocol=pain, starts=[tomorrow_at(clinic, 9, now)],
                             now=now - timedelta(days=3)).sessions.get()  # fmt: skip
    session_cancel(session=long_visit, reason="travelling", now=now)
    first = waiting(clinic, booster, now, "First", days_ago=5)
    second = waiting(clinic, booster, now, "Second", days_ago=2)
    offers.offers_tick(now=now)
    assert offer_accept(offer=offer_of(first), now=now + timedelta(minutes=5)).outcome == "accepted"

    offers.offers_tick(now=now + timedelta(minutes=6))

    rest = Opening.objects.get(freed_by=long_visit, status="open")
    assert rest.starts_at == tomorrow_at(clinic, 11, now) and rest.chair_id == long_visit.chair_id
    assert offer_of(second).opening == rest


def test_a_time_within_the_minimum_notice_is_no_longer_offered_and_fresh_cancels_go_first(
    clinic, booster, now, monkeypatch
):
    close = freed(clinic, booster, now + timedelta(hours=24, minutes=5), now)
    older = freed(clinic, booster, tomorrow_at(clinic, 14, now) + timedelta(days=1), now - timedelta(hours=1))
    Opening.objects.filter(freed_by=older).update(checked_at=now - timedelta(minutes=20))  # nobody fitted then
    fresh = freed(clinic, booster, tomorrow_at(clinic, 14, now) + timedelta(days=2), now)
    waiting(clinic, booster, now, "Anyone")
    monkeypatch.setattr(offers, "OPENINGS_PER_TICK", 1)

    offers.offers_tick(now=now)

    assert Opening.objects.get(freed_by=close).status == "lapsed"
    assert Offer.objects.get().opening.freed_by == fresh  # never looked at, before a recheck


def test_an_offer_out_when_its_time_nears_the_notice_can_still_be_taken(clinic, booster, now):
    gone = freed(clinic, booster, now + timedelta(hours=24, minutes=40), now)
    entry = waiting(clinic, booster, now, "Late")
    offers.offers_tick(now=now)
    assert offer_of(entry).expires_at == gone.starts_at - timedelta(hours=24)

    offers.offers_tick(now=now + timedelta(minutes=35))  # past the last moment a new offer could start

    assert Opening.objects.get(freed_by=gone).status == "open"
    assert offer_accept(offer=offer_of(entry), now=now + timedelta(minutes=36)).outcome == "accepted"
