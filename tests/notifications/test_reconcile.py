"""Sends interrupted mid-way, recovered by the tick: each row on its own, matched in Twilio's log
by its own link token, with no row locked while Twilio is asked."""

import threading
from datetime import datetime, timedelta

import pytest
from django.db import DatabaseError, connection, transaction

from notifications import sending
from notifications.models import Channel, Message, Purpose
from sessions.services import series_book, session_cancel
from tests.factories import clinic_make, patient_make, protocol_make
from tests.fakes import hang
from tests.notifications.test_send import MORNING, tick, tick_and_send

pytestmark = pytest.mark.django_db
Status = Message.Status
VISIT = datetime(2026, 1, 9, 13)  # Fri 9 Jan, 13:00 in Phoenix


@pytest.fixture
def clinic(settings, twilio):
    settings.PUBLIC_BASE_URL = "https://go.example.com"
    settings.TWILIO_TIMEOUT_SECONDS = 0.3
    settings.MESSAGE_SEND_LEASE_SECONDS = 60
    settings.SMS_DAILY_CAP = settings.SMS_WEEKLY_CAP = 20
    return clinic_make(sender_name="Desert Bloom")


def book_and_cancel(patient, protocol, now: datetime) -> Message:
    """Book the visit, text the booking, cancel it: the cancellation text, due."""
    session = series_book(patient=patient, protocol=protocol, starts=[VISIT], now=now).sessions.get()
    tick_and_send(now)
    session_cancel(session=session, reason="patient called", now=now + timedelta(minutes=5))
    return Message.objects.get(session=session, purpose=Purpose.CANCELLED, channel=Channel.SMS)


def after_lease(now: datetime) -> datetime:
    return now + timedelta(seconds=61)


def test_an_interrupted_text_is_never_taken_for_an_earlier_one_of_the_same_words(clinic, twilio):
    protocol = protocol_make(clinic, kind="booster")
    patient = patient_make(clinic, phone="+16025550142", email="")
    first = book_and_cancel(patient, protocol, MORNING)
    tick_and_send(MORNING + timedelta(minutes=5))
    assert Message.objects.get(pk=first.pk).status == Status.SENT

    # The same visit booked and cancelled again: the same words, to the same phone, on one day.
    later = MORNING + timedelta(hours=2)
    second = book_and_cancel(patient, protocol, later)
    twilio.script(hang(2, accepted=False))
    tick_and_send(later + timedelta(minutes=5))
    assert Message.objects.get(pk=second.pk).status == Status.SENDING

    for pk in tick(after_lease(later + timedelta(minutes=5))):
        sending.message_send(message_id=pk, now=after_lease(later + timedelta(minutes=5)))

    first, second = Message.objects.get(pk=first.pk), Message.objects.get(pk=second.pk)
    assert second.status == Status.SENT
    assert second.provider_id != first.provider_id
    cancellations = [t for t in twilio.messages if "cancelled" in t.body]
    assert len(cancellations) == 2
    assert all("https://go.example.com/r/" in t.body for t in cancellations)  # each text has its own token


def test_an_interrupted_text_twilio_has_is_matched_by_its_own_token(clinic, twilio):
    protocol = protocol_make(clinic, kind="booster")
    patient = patient_make(clinic, phone="+16025550142", email="")
    first = book_and_cancel(patient, protocol, MORNING)
    tick_and_send(MORNING + timedelta(minutes=5))
    later = MORNING + timedelta(hours=2)
    second = book_and_cancel(patient, protocol, later)
    twilio.script(hang(2, accepted=True))
    tick_and_send(later + timedelta(minutes=5))

    assert tick(after_lease(later + timedelta(minutes=5))) == []

    second = Message.objects.get(pk=second.pk)
    assert second.status == Status.SENT
    assert second.provider_id == twilio.messages[-1].sid
    assert second.provider_id != Message.objects.get(pk=first.pk).provider_id
    assert len(twilio.messages) == 4  # booked, cancelled, booked again, cancelled again: no resend


def test_a_row_that_cannot_be_recovered_holds_up_neither_the_others_nor_the_claim(clinic, twilio):
    protocol = protocol_make(clinic, kind="booster", chair_minutes=30)
    stuck = [patient_make(clinic, phone=f"+1602555010{n}", email="") for n in range(2)]
    for n, patient in enumerate(stuck):
        series_book(patient=patient, protocol=protocol, starts=[VISIT + timedelta(hours=n)], now=MORNING)
    twilio.script(hang(2, accepted=False), hang(2, accepted=False))
    tick_and_send(MORNING)
    booked_texts = Message.objects.filter(channel=Channel.SMS, purpose=Purpose.BOOKED)
    assert set(booked_texts.values_list("status", flat=True)) == {Status.SENDING}
    waiting = patient_make(clinic, phone="+16025550109", email="")
    later = after_lease(MORNING)
    series_book(patient=waiting, protocol=protocol, starts=[VISIT + timedelta(hours=3)], now=later)
    twilio.unreadable_log_for.add(stuck[0].phone)

    handed = tick(later)

    by_phone = {m.recipient: m for m in booked_texts}
    assert by_phone[stuck[0].phone].status == Status.SENDING  # waits for its next lease
    assert by_phone[stuck[0].phone].lease_expires_at > later
    assert by_phone[stuck[1].phone].status == Status.CLAIMED  # not at Twilio: sent again
    assert sorted(handed) == sorted([by_phone[stuck[1].phone].pk, by_phone[waiting.phone].pk])


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks are PostgreSQL's")
def test_twilio_is_asked_with_no_row_locked(clinic, twilio):
    patient = patient_make(clinic, phone="+16025550142", email="")
    series_book(patient=patient, protocol=protocol_make(clinic, kind="booster"), starts=[VISIT], now=MORNING)
    twilio.script(hang(2, accepted=False))
    tick_and_send(MORNING)
    stuck = Message.objects.get(channel=Channel.SMS, status=Status.SENDING)
    seen: list[str] = []

    def try_the_locks(query: dict[str, str]) -> None:
        def look() -> None:
            try:
                with transaction.atomic():
                    Message.objects.select_for_update(nowait=True).get(pk=stuck.pk)
                    patient.__class__.objects.select_for_update(nowait=True).get(pk=patient.pk)
                seen.append("free")
            except DatabaseError:
                seen.append("locked")
            finally:
                connection.close()

        thread = threading.Thread(target=look)  # its own connection, as a staff request would have
        thread.start()
        thread.join(timeout=10)

    twilio.on_log_query = try_the_locks
    tick(after_lease(MORNING))

    assert seen == ["free"]
