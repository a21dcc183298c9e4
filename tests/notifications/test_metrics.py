"""The service's counters (notifications/metrics.py): each outcome counted once, where it is decided,
and only once its transaction has committed."""

from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from django.db import transaction
from django.test import TestCase
from prometheus_client import REGISTRY

from notifications import sending
from notifications.inbound import Incoming, inbound_handle
from notifications.metrics import REASON_GROUP_LENGTH, reason_group
from notifications.models import Channel, Message, Purpose
from sessions.services import series_book, session_cancel
from tests.factories import clinic_make, patient_make, protocol_make

pytestmark = pytest.mark.django_db
Status = Message.Status

# Mon 5 Jan 2026, 10:00 in Phoenix: inside the 09:00–20:00 window.
MORNING = datetime(2026, 1, 5, 17, tzinfo=UTC)
PHONE = "+16025550142"


def counted(channel: str, outcome: str, reason: str = "") -> float:
    labels = {"channel": channel, "outcome": outcome, "reason": reason}
    return REGISTRY.get_sample_value("scheduler_messages_total", labels) or 0.0


def inbound_counted(command: str) -> float:
    return REGISTRY.get_sample_value("scheduler_inbound_texts_total", {"command": command}) or 0.0


class Counts:
    """How much scheduler_messages_total went up, per label set, since the test began (the
    process's counters run on across tests)."""

    def __init__(self) -> None:
        self.start = {
            (s.labels["channel"], s.labels["outcome"], s.labels["reason"]): s.value
            for family in REGISTRY.collect()
            if family.name == "scheduler_messages"
            for s in family.samples
            if s.name == "scheduler_messages_total"
        }

    def __call__(self, channel: str, outcome: str, reason: str = "") -> float:
        return counted(channel, outcome, reason) - self.start.get((channel, outcome, reason), 0.0)


@pytest.fixture
def counts() -> Counts:
    return Counts()


@pytest.fixture
def session(settings):
    settings.PUBLIC_BASE_URL = "https://go.example.com"
    clinic = clinic_make(sender_name="Desert Bloom")
    patient = patient_make(clinic, phone=PHONE, email="pat@example.com")
    series = series_book(
        patient=patient, protocol=protocol_make(clinic, kind="booster"), starts=[datetime(2026, 1, 9, 13)], now=MORNING
    )
    return series.sessions.get()


def tick_and_send(now: datetime) -> list[str]:
    """One tick and each claimed message's send, their on-commit work run as a commit would."""
    handed: list[int] = []
    with mock.patch.object(sending, "_enqueue", side_effect=handed.extend):
        with TestCase.captureOnCommitCallbacks(execute=True):
            sending.reminder_tick(now=now)
        with TestCase.captureOnCommitCallbacks(execute=True):
            return [sending.message_send(message_id=pk, now=now) for pk in handed]


@pytest.mark.parametrize(
    ("reason", "group"),
    [
        ("phone refused earlier: invalid phone number", "phone refused earlier"),
        ("quiet hours: sent by email instead", "quiet hours"),
        ("text limit (1 a day): an email reminder goes near that time", "text limit (1 a day)"),
        ("would fall in quiet hours; emails are off", "would fall in quiet hours"),
        ("gave up after 3 attempts: Twilio 503", "gave up after 3 attempts"),
        ("daily text limit (1) reached", "daily text limit (1) reached"),
        ("session moved", "session moved"),
        ("", ""),
    ],
)
def test_a_reason_is_grouped_by_its_head_before_any_detail(reason, group):
    assert reason_group(reason) == group


def test_a_reason_group_stays_short_whatever_the_reason():
    assert reason_group("x" * 300) == "x" * REASON_GROUP_LENGTH


def test_a_text_and_an_email_sent_are_counted_once_each(session, twilio, smtp, counts):
    assert sorted(tick_and_send(MORNING)) == ["sent", "sent"]
    tick_and_send(MORNING + timedelta(minutes=1))  # nothing more is due

    assert (counts(Channel.SMS, "sent"), counts(Channel.EMAIL, "sent")) == (1, 1)


def test_a_reminder_booked_after_it_was_due_counts_as_skipped_when_the_booking_commits(twilio, counts):
    clinic = clinic_make()
    patient = patient_make(clinic, phone=PHONE, email="pat@example.com")
    protocol = protocol_make(clinic, kind="booster")
    # A visit in 3 hours: the clinic's 72 h email and 24 h text reminders were due before it was booked.
    soon = datetime(2026, 1, 5, 13)
    with TestCase.captureOnCommitCallbacks(execute=True):
        series_book(patient=patient, protocol=protocol, starts=[soon], now=MORNING - timedelta(hours=1))

    skipped = Message.objects.filter(status=Status.SKIPPED)
    late = skipped.filter(reason="booked after this reminder was due")
    assert sorted(late.values_list("channel", flat=True)) == [Channel.EMAIL, Channel.SMS]  # 72 h and 24 h
    for message in skipped:
        same = skipped.filter(channel=message.channel, reason=message.reason).count()
        assert counts(message.channel, "skipped", reason_group(message.reason)) == same


def test_a_cancel_counts_each_withdrawn_message_and_a_rolled_back_one_counts_nothing(session, counts):
    pending_of = Message.objects.filter(session=session, status__in=Message.PENDING)
    pending = {channel: pending_of.filter(channel=channel).count() for channel in Channel}

    with TestCase.captureOnCommitCallbacks(execute=True), pytest.raises(RuntimeError):
        with transaction.atomic():
            session_cancel(session=session, reason="patient asked", now=MORNING)
            raise RuntimeError("the request failed after the cancel")
    assert counts(Channel.SMS, "cancelled", "session cancelled") == 0

    session.refresh_from_db()
    with TestCase.captureOnCommitCallbacks(execute=True):
        session_cancel(session=session, reason="patient asked", now=MORNING)

    assert pending[Channel.SMS] > 0 and pending[Channel.EMAIL] > 0
    assert counts(Channel.SMS, "cancelled", "session cancelled") == pending[Channel.SMS]
    assert counts(Channel.EMAIL, "cancelled", "session cancelled") == pending[Channel.EMAIL]


def test_messages_past_their_session_count_as_expired(session, twilio, smtp, counts):
    pending = Message.objects.filter(session=session, status__in=Message.PENDING)
    by_channel = {c: pending.filter(channel=c).count() for c in Channel}

    assert tick_and_send(session.starts_at + timedelta(minutes=1)) == []

    reason = "not sent before the session started"
    assert counts(Channel.SMS, "expired", reason) == by_channel[Channel.SMS] > 0
    assert counts(Channel.EMAIL, "expired", reason) == by_channel[Channel.EMAIL] > 0


def test_a_text_refused_at_send_time_counts_as_skipped_by_its_reason(session, twilio, smtp, counts):
    late_evening = datetime(2026, 1, 6, 4, tzinfo=UTC)  # 21:00 in Phoenix: quiet hours

    assert sorted(tick_and_send(late_evening)) == ["sent", "skipped"]

    assert counts(Channel.SMS, "skipped", "quiet hours in the patient's time zone") == 1
    assert counts(Channel.EMAIL, "sent") == 1


def test_a_refused_text_counts_failed_by_its_code_and_an_outage_counts_each_retry(session, twilio, smtp, counts):
    twilio.script_for(PHONE, 503, 503)
    tick_and_send(MORNING)
    tick_and_send(MORNING + timedelta(hours=1))
    text = Message.objects.get(session=session, purpose=Purpose.BOOKED, channel=Channel.SMS)
    error = text.reason.removeprefix("retrying: ")
    assert error.startswith("Twilio 503")
    assert counts(Channel.SMS, "retrying", error) == 2

    twilio.script_for(PHONE, 400)
    tick_and_send(MORNING + timedelta(hours=2))

    [failed] = Message.objects.filter(channel=Channel.SMS, status=Status.FAILED)
    assert counts(Channel.SMS, "failed", reason_group(failed.reason)) == 1
    assert counts(Channel.SMS, "sent") == 0


def test_the_carriers_word_on_a_sent_text_is_counted_once(session, twilio, smtp, counts):
    tick_and_send(MORNING)
    text = Message.objects.get(session=session, purpose=Purpose.BOOKED, channel=Channel.SMS)

    with TestCase.captureOnCommitCallbacks(execute=True):
        for _ in range(2):  # Twilio retries a callback it thinks was lost
            sending.message_record_status(message_id=text.pk, provider_id=text.provider_id, status="delivered")
        sending.message_record_status(message_id=text.pk, provider_id=text.provider_id, status="undelivered")

    assert (counts(Channel.SMS, "delivered"), counts(Channel.SMS, "undelivered")) == (1, 0)


def test_an_undelivered_text_is_counted_by_the_carriers_code(session, twilio, smtp, counts):
    tick_and_send(MORNING)
    text = Message.objects.get(session=session, purpose=Purpose.BOOKED, channel=Channel.SMS)

    with TestCase.captureOnCommitCallbacks(execute=True):
        sending.message_record_status(
            message_id=text.pk, provider_id=text.provider_id, status="undelivered", error_code="30003"
        )

    assert counts(Channel.SMS, "undelivered", "30003") == 1


def test_stop_counts_the_inbound_text_once_and_every_text_it_withdrew(session, counts):
    before = inbound_counted("opt_out")
    texts = Message.objects.filter(session=session, channel=Channel.SMS, status__in=Message.PENDING).count()
    stop = Incoming(sid="SM" + "1" * 32, from_number=PHONE, to_number="+16025550199", body="STOP")

    with TestCase.captureOnCommitCallbacks(execute=True):
        inbound_handle(incoming=stop, now=MORNING)
        inbound_handle(incoming=stop, now=MORNING)  # a replayed webhook acts, and counts, once

    assert inbound_counted("opt_out") - before == 1
    assert counts(Channel.SMS, "cancelled", "patient opted out of texts") == texts > 0
    assert counts(Channel.EMAIL, "cancelled", "patient opted out of texts") == 0
