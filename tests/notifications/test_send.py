"""The tick and the send, called directly, against the fake Twilio and the SMTP sink."""

import re
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from django.test import TestCase

from notifications import sending
from notifications.models import Channel, ContactStatus, Message, OutboxText, Purpose, StaffFlag
from sessions.models import Clinic
from sessions.services import series_book, series_cancel, session_cancel
from tests.factories import clinic_make, patient_make, protocol_make
from tests.fakes import error, hang

pytestmark = pytest.mark.django_db
Status = Message.Status

# Mon 5 Jan 2026, 10:00 in Phoenix: inside the 09:00–20:00 window.
MORNING = datetime(2026, 1, 5, 17, tzinfo=UTC)


@pytest.fixture
def session(settings):
    settings.PUBLIC_BASE_URL = "https://go.example.com"
    clinic = clinic_make(sender_name="Desert Bloom")
    protocol = protocol_make(clinic, kind="booster")
    patient = patient_make(clinic, phone="+16025550142", email="pat@example.com")
    series = series_book(patient=patient, protocol=protocol, starts=[datetime(2026, 1, 9, 13)], now=MORNING)
    return series.sessions.get()


def booked_text(session) -> Message:
    return Message.objects.get(session=session, purpose=Purpose.BOOKED, channel=Channel.SMS)


def tick(now: datetime) -> list[int]:
    """One tick; returns the ids it handed to workers once its transaction committed."""
    handed: list[int] = []
    with (
        mock.patch.object(sending, "_enqueue", side_effect=handed.extend),
        TestCase.captureOnCommitCallbacks(execute=True),
    ):
        sending.reminder_tick(now=now)
    return handed


def tick_and_send(now: datetime) -> list[str]:
    return [sending.message_send(message_id=pk, now=now) for pk in tick(now)]


def test_a_due_text_goes_to_twilio_once_with_its_status_callback(session, twilio, smtp):
    outcomes = tick_and_send(MORNING)

    assert sorted(outcomes) == ["sent", "sent"]  # the booking confirmation, by text and by email
    [text] = twilio.messages
    message = booked_text(session)
    assert (text.to, text.body[:40]) == ("+16025550142", "Desert Bloom: visit booked Fri 9 Jan 1:0")
    assert "https://go.example.com/r/" in text.body
    assert text.status_callback == f"https://go.example.com/twilio/sms/status/?m={message.pk}"
    assert (message.status, message.provider_id, message.attempts) == (Status.SENT, text.sid, 1)
    assert "/r/…" in message.body_redacted  # the token is never stored in the clear
    [email] = smtp.messages
    assert email["Subject"] == "Your visits at Desert Bloom are booked"
    assert any(part.get_content_type() == "text/calendar" for part in email.iter_attachments())
    assert tick_and_send(MORNING + timedelta(minutes=1)) == []


def test_a_cancelled_series_withdraws_every_visits_calendar_event(twilio, smtp):
    clinic = clinic_make(sender_name="Desert Bloom")
    patient = patient_make(clinic, phone="+16025550143", email="sam@example.com")
    starts = [datetime(2026, 1, 9, 13), datetime(2026, 1, 10, 13), datetime(2026, 1, 11, 13)]
    series = series_book(patient=patient, protocol=protocol_make(clinic, kind="pain", session_count=3), starts=starts,
                         now=MORNING)  # fmt: skip
    tick_and_send(MORNING)  # the booking confirmations go out
    smtp.clear()

    series_cancel(series=series, reason="patient moved away", now=MORNING)
    tick_and_send(MORNING + timedelta(minutes=1))

    [email] = smtp.messages
    invites = [part for part in email.iter_attachments() if part.get_content_type() == "text/calendar"]
    events = [part.get_content() for part in invites]
    assert len(events) == 3
    assert all("METHOD:CANCEL" in event and "STATUS:CANCELLED" in event for event in events)
    assert sorted(re.search(r"UID:session-(\d+)@", event).group(1) for event in events) == sorted(
        str(pk) for pk in series.sessions.values_list("pk", flat=True)
    )


def test_a_message_claimed_twice_is_sent_once(session, twilio, smtp):
    claimed = tick(MORNING)

    for pk in claimed + claimed:  # the broker redelivered every task
        sending.message_send(message_id=pk, now=MORNING)

    assert len(twilio.messages) == 1
    assert len(smtp.messages) == 1


def test_a_cancelled_session_gets_no_reminder(session, twilio, smtp):
    tick_and_send(MORNING)  # the booking confirmation goes out
    session_cancel(session=session, reason="patient asked", now=MORNING)
    reminder = Message.objects.get(
        session=session, purpose=Purpose.REMINDER, channel=Channel.SMS, rule__offset_minutes=120
    )

    tick_and_send(session.starts_at - timedelta(hours=2))

    reminder.refresh_from_db()
    assert (reminder.status, reminder.reason) == (Status.CANCELLED, "session cancelled")
    assert [m.body.split(":")[1].split()[:2] for m in twilio.messages] == [["visit", "booked"], ["visit", "Fri"]]
    assert "cancelled. Info: https://go.example.com/r/" in twilio.messages[1].body


def test_a_claimed_text_whose_session_was_cancelled_meanwhile_is_not_sent(session, twilio):
    claimed = tick(MORNING)
    session.status = "cancelled"  # as if cancelled between the claim and the send, bypassing planning
    session.save(update_fields=["status"])

    outcomes = [sending.message_send(message_id=pk, now=MORNING) for pk in claimed]

    assert set(outcomes) == {Status.CANCELLED}
    assert twilio.messages == []


def test_an_opted_out_patient_gets_no_text(session, twilio, smtp):
    session.patient.sms_opted_out_at = MORNING
    session.patient.save()

    tick_and_send(MORNING)

    assert twilio.messages == []
    assert booked_text(session).reason == "patient opted out of texts"
    assert len(smtp.messages) == 1


def test_the_daily_cap_holds_back_a_second_text_the_same_day(session, twilio, smtp):
    tick_and_send(MORNING)
    other = series_book(
        patient=session.patient, protocol=session.series.protocol, starts=[datetime(2026, 1, 12, 13)],
        override_reason="the next booster", now=MORNING,
    )  # fmt: skip

    tick_and_send(MORNING + timedelta(hours=1))

    assert len(twilio.messages) == 1
    second = booked_text(other.sessions.get())
    assert (second.status, second.reason) == (Status.SKIPPED, "daily text limit (1) reached")


def test_the_weekly_cap_counts_a_rolling_week(session, twilio, settings):
    settings.SMS_DAILY_CAP = 10
    settings.SMS_WEEKLY_CAP = 2
    tick_and_send(MORNING)
    booster = session.series.protocol
    for day in (12, 13):
        series_book(
            patient=session.patient, protocol=booster, starts=[datetime(2026, 1, day, 13)],
            override_reason="the next booster", now=MORNING,
        )  # fmt: skip

    tick_and_send(MORNING + timedelta(hours=1))

    assert len(twilio.messages) == 2
    assert Message.objects.filter(reason="weekly text limit (2) reached").count() == 1


def test_a_text_is_never_sent_in_quiet_hours(session, twilio):
    late = datetime(2026, 1, 6, 4, tzinfo=UTC)  # 21:00 in Phoenix
    Message.objects.filter(pk=booked_text(session).pk).update(due_at=late)

    tick_and_send(late)

    assert twilio.messages == []
    assert booked_text(session).reason == "quiet hours in the patient's time zone"


def test_transient_errors_retry_later_with_growing_gaps(session, twilio, settings):
    settings.MESSAGE_RETRY_BASE_SECONDS = 60
    twilio.script(503, 503, 201)
    now = MORNING
    gaps = []
    for _ in range(3):
        tick_and_send(now)
        message = booked_text(session)
        if message.status == Status.SENT:
            break
        gaps.append(message.due_at - now)
        now = message.due_at

    assert len(twilio.received) == 3
    assert len(twilio.messages) == 1
    assert (message.status, message.attempts) == (Status.SENT, 3)
    assert timedelta(seconds=30) <= gaps[0] <= timedelta(seconds=60) < gaps[1] <= timedelta(seconds=120)


def test_retries_stop_at_the_session_start(session, twilio, settings):
    settings.MESSAGE_RETRY_BASE_SECONDS = settings.MESSAGE_RETRY_MAX_SECONDS = 3600 * 24 * 30
    twilio.script(503, repeat=True)

    tick_and_send(MORNING)

    message = booked_text(session)
    assert message.status == Status.EXPIRED
    assert message.reason.startswith("gave up after 1 attempts")


@pytest.mark.parametrize("code", ["21610", "21211", "21614"])
def test_a_permanent_error_marks_the_phone_falls_back_to_email_and_flags_staff(session, twilio, smtp, code):
    twilio.script_for("+16025550142", error(int(code)), repeat=True)

    tick_and_send(MORNING)
    tick_and_send(MORNING + timedelta(minutes=1))  # the fallback email is due at once

    text = booked_text(session)
    assert (text.status, text.provider_error, text.attempts) == (Status.FAILED, code, 1)
    assert len(twilio.received) == 1  # never retried
    assert ContactStatus.objects.get(patient=session.patient).sms_problem == code
    fallback = Message.objects.get(session=session, key=f"fallback-{text.pk}")
    assert (fallback.channel, fallback.status) == (Channel.EMAIL, Status.SENT)
    assert len(smtp.messages) == 2  # the booking email and the fallback
    flag = StaffFlag.objects.get(kind=StaffFlag.Kind.SMS_REFUSED)
    assert flag.patient == session.patient and "sent by email instead" in flag.detail

    reminder = Message.objects.get(session=session, channel=Channel.SMS, rule__offset_minutes=24 * 60)
    tick_and_send(reminder.due_at)
    reminder.refresh_from_db()
    assert reminder.status == Status.SKIPPED
    assert len(twilio.received) == 1


def test_a_send_that_timed_out_is_found_in_twilios_log_not_sent_again(session, twilio, settings):
    settings.TWILIO_TIMEOUT_SECONDS = 0.3
    settings.MESSAGE_SEND_LEASE_SECONDS = 60
    twilio.script(hang(2, accepted=True))

    tick_and_send(MORNING)
    assert booked_text(session).status == Status.SENDING
    tick_and_send(MORNING + timedelta(seconds=30))  # lease not over: nothing happens yet
    assert booked_text(session).status == Status.SENDING

    tick_and_send(MORNING + timedelta(seconds=61))

    message = booked_text(session)
    assert (message.status, message.provider_id) == (Status.SENT, twilio.messages[0].sid)
    assert len(twilio.messages) == 1


def test_a_send_that_never_reached_twilio_is_sent_again_after_checking(session, twilio, settings):
    settings.TWILIO_TIMEOUT_SECONDS = 0.3
    twilio.script(hang(2, accepted=False))

    tick_and_send(MORNING)
    assert twilio.messages == []

    resent = tick(MORNING + timedelta(seconds=settings.MESSAGE_SEND_LEASE_SECONDS + 1))
    for pk in resent:
        sending.message_send(message_id=pk, now=MORNING + timedelta(minutes=5))

    assert len(twilio.messages) == 1
    assert booked_text(session).status == Status.SENT
    assert twilio.queries  # it asked Twilio's log before sending again


def test_without_credentials_texts_go_to_the_outbox(session, settings):
    settings.TWILIO_ACCOUNT_SID = ""
    settings.TWILIO_AUTH_TOKEN = ""

    tick_and_send(MORNING)

    text = OutboxText.objects.get()
    assert text.to == "+16025550142" and text.body.startswith("Desert Bloom: visit booked")
    assert booked_text(session).status == Status.SENT


def test_an_expired_reminder_is_not_sent(session, twilio):
    tick_and_send(session.starts_at + timedelta(minutes=1))

    assert twilio.messages == []
    assert not Message.objects.filter(status__in=Message.PENDING).exists()


def test_an_email_the_mail_library_refuses_ends_failed_and_flagged_not_stuck_sending(session, twilio, smtp):
    # Stored before single-line fields were checked, or written past the forms: a header break.
    Clinic.objects.filter(pk=session.clinic_id).update(sender_name="Desert\r\nBloom")

    outcomes = tick_and_send(MORNING)

    email = Message.objects.get(session=session, purpose=Purpose.BOOKED, channel=Channel.EMAIL)
    assert sorted(outcomes) == ["failed", "sent"]  # the email failed on our side; the text went
    assert (email.status, email.attempts) == (Status.FAILED, 1)
    assert email.reason.startswith("could not be sent: ValueError")
    assert StaffFlag.objects.get(message=email).patient == session.patient
    assert smtp.messages == []
    assert tick_and_send(MORNING + timedelta(minutes=10)) == []  # nothing left to recover or resend
