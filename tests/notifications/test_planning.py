from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db.models import F
from hypothesis import given, settings
from hypothesis import strategies as st

from notifications.models import Channel, Message, Purpose, ReminderRule
from notifications.planning import QUIET_MARGIN, shift_out_of_quiet_hours
from sessions.models import Clinic, Patient
from sessions.services import series_book, session_cancel, session_reschedule
from tests.factories import clinic_make, patient_make, protocol_make

pytestmark = pytest.mark.django_db

Status = Message.Status


def rows(session, **filters) -> list[tuple]:
    found = Message.objects.filter(session=session, **filters).order_by("due_at", "channel")
    return [(m.purpose, m.channel, m.status, m.due_at) for m in found]


@pytest.fixture
def booked(now):
    clinic = clinic_make(chairs=2)
    protocol = protocol_make(clinic, kind="booster")
    series = series_book(patient=patient_make(clinic), protocol=protocol, starts=[datetime(2026, 1, 9, 13)], now=now)
    return clinic, series.sessions.get()


def test_a_new_clinic_gets_the_default_rules(db):
    clinic = clinic_make()

    rules = sorted(ReminderRule.objects.filter(clinic=clinic).values_list("channel", "offset_minutes"))

    assert rules == [("email", 72 * 60), ("sms", 2 * 60), ("sms", 24 * 60)]


def test_booking_plans_a_confirmation_and_every_reminder(booked, now):
    clinic, session = booked
    start = session.starts_at  # Fri 9 Jan 13:00 Phoenix = 20:00 UTC

    planned = rows(session)

    assert planned == [
        (Purpose.BOOKED, Channel.EMAIL, Status.PLANNED, now),
        # Booked at 05:00 in Phoenix: the text waits for 09:00 there, the email goes at once.
        (Purpose.BOOKED, Channel.SMS, Status.PLANNED, datetime(2026, 1, 5, 16, tzinfo=UTC)),
        (Purpose.REMINDER, Channel.EMAIL, Status.PLANNED, start - timedelta(hours=72)),
        (Purpose.REMINDER, Channel.SMS, Status.PLANNED, start - timedelta(hours=24)),
        (Purpose.REMINDER, Channel.SMS, Status.PLANNED, start - timedelta(hours=2)),
    ]
    assert all(m.session_version == 1 and m.expires_at == start for m in Message.objects.filter(session=session))


def test_reminders_already_due_at_booking_are_skipped_not_sent_late(now):
    clinic = clinic_make()
    protocol = protocol_make(clinic, kind="booster")
    tomorrow = datetime(2026, 1, 6, 10)  # 29 hours after now: the 72 h email is already past

    series = series_book(patient=patient_make(clinic), protocol=protocol, starts=[tomorrow], now=now)

    email = Message.objects.get(session=series.sessions.get(), rule__channel=Channel.EMAIL, channel=Channel.EMAIL)
    assert (email.status, email.reason) == (Status.SKIPPED, "booked after this reminder was due")


def test_a_booking_at_night_says_its_text_waits_for_the_message_window(db):
    clinic = clinic_make()  # America/Phoenix, texts 09:00–20:00
    night = datetime(2026, 1, 5, 23, 30, tzinfo=ZoneInfo("America/Phoenix"))

    series = series_book(
        patient=patient_make(clinic), protocol=protocol_make(clinic, kind="booster"),
        starts=[datetime(2026, 1, 9, 10)], now=night,
    )  # fmt: skip

    text, email = (
        Message.objects.get(session__series=series, purpose=Purpose.BOOKED, channel=c) for c in ("sms", "email")
    )
    assert text.due_at == datetime(2026, 1, 6, 9, 0, tzinfo=ZoneInfo("America/Phoenix"))
    assert (text.status, text.reason) == ("planned", "waits for the message window (09:00–20:00 patient time)")
    assert (email.due_at, email.reason) == (night, "")


def test_a_series_gets_one_booking_confirmation(now):
    clinic = clinic_make()
    protocol = protocol_make(clinic, kind="induction")

    series = series_book(patient=patient_make(clinic), protocol=protocol, first_start=datetime(2026, 1, 8, 10), now=now)

    confirmations = Message.objects.filter(session__series=series, purpose=Purpose.BOOKED)
    assert {(m.session.number, m.channel) for m in confirmations} == {(1, "sms"), (1, "email")}
    # Every rule for every visit, as planned or skipped, in the rule's own channel (a text over the
    # caps also has its email beside it).
    decided = Message.objects.filter(session__series=series, purpose=Purpose.REMINDER, channel=F("rule__channel"))
    assert decided.count() == 6 * 3


def test_moving_withdraws_the_old_reminders_and_plans_new_ones(booked, now):
    clinic, session = booked

    moved = session_reschedule(session=session, starts_at=datetime(2026, 1, 10, 13), now=now)

    old = Message.objects.filter(session=session, session_version=1)
    assert set(old.values_list("status", "reason")) == {(Status.CANCELLED, "session moved")}
    new = Message.objects.filter(session=session, session_version=2, purpose=Purpose.REMINDER)
    assert sorted(m.due_at for m in new) == [moved.starts_at - timedelta(hours=h) for h in (72, 24, 2)]
    # The booking confirmation had not gone out: it goes now, for the new time, instead of a move notice.
    notices = Message.objects.filter(session=session, session_version=2).exclude(purpose=Purpose.REMINDER)
    assert set(notices.values_list("purpose", "channel")) == {(Purpose.BOOKED, "sms"), (Purpose.BOOKED, "email")}


def test_a_patient_who_was_told_of_the_booking_hears_of_the_move(booked, now):
    clinic, session = booked
    Message.objects.filter(session=session, purpose=Purpose.BOOKED).update(status=Status.SENT)

    session_reschedule(session=session, starts_at=datetime(2026, 1, 10, 13), now=now)

    notices = Message.objects.filter(session=session, session_version=2).exclude(purpose=Purpose.REMINDER)
    assert set(notices.values_list("purpose", flat=True)) == {Purpose.MOVED}


def test_cancelling_withdraws_reminders_and_plans_a_notice(booked, now):
    clinic, session = booked
    Message.objects.filter(session=session, purpose=Purpose.BOOKED).update(status=Status.SENT)

    session_cancel(session=session, reason="patient asked", now=now)

    pending = Message.objects.filter(session=session, status__in=Message.PENDING)
    assert set(pending.values_list("purpose", flat=True)) == {Purpose.CANCELLED}
    assert Message.objects.filter(session=session, purpose=Purpose.REMINDER, status=Status.PLANNED).count() == 0


def test_cancelling_before_anything_went_out_sends_nothing(booked, now):
    clinic, session = booked

    session_cancel(session=session, reason="booked by mistake", now=now)

    assert not Message.objects.filter(session=session, status__in=Message.PENDING).exists()


def test_a_reminder_due_in_quiet_hours_goes_at_the_last_allowed_moment_before(db):
    clinic = clinic_make(time_zone="America/New_York")
    patient = patient_make(clinic)
    due = datetime(2026, 1, 9, 7, 30, tzinfo=ZoneInfo("America/New_York"))  # before 09:00

    shifted = shift_out_of_quiet_hours(due, clinic=clinic, patient=patient, forward=False)

    assert shifted == datetime(2026, 1, 8, 20, tzinfo=ZoneInfo("America/New_York")) - QUIET_MARGIN


def test_quiet_hours_follow_the_patients_own_zone(db):
    clinic = clinic_make(time_zone="America/New_York")
    patient = patient_make(clinic, time_zone="America/Los_Angeles")
    due = datetime(2026, 1, 9, 10, tzinfo=ZoneInfo("America/New_York"))  # 07:00 for the patient

    shifted = shift_out_of_quiet_hours(due, clinic=clinic, patient=patient, forward=False)

    assert shifted.astimezone(ZoneInfo("America/Los_Angeles")).time() == time(19, 50)


_NEW_YORK = ZoneInfo("America/New_York")
_CLINIC = Clinic(time_zone="America/New_York", message_window_start=time(9), message_window_end=time(20))
_PATIENT = Patient(time_zone="America/New_York")


@settings(max_examples=400, deadline=None)
@given(st.datetimes(min_value=datetime(2026, 3, 1), max_value=datetime(2026, 11, 30), timezones=st.just(UTC)))
def test_shifted_reminders_land_inside_the_window_and_never_after_they_were_due(due):
    """Across both 2026 DST changes in New York: the shifted time is in the window, no later than
    due, and it is the window's last moment before due (less the margin)."""
    shifted = shift_out_of_quiet_hours(due, clinic=_CLINIC, patient=_PATIENT, forward=False)

    local = shifted.astimezone(_NEW_YORK)
    assert time(9) <= local.time() < time(20)
    assert shifted <= due
    if shifted != due:
        close = (shifted + QUIET_MARGIN).astimezone(_NEW_YORK)
        assert close.time() == time(20)
        # Only quiet hours between: 13 hours, 14 on the night the clocks go back.
        assert due - (shifted + QUIET_MARGIN) < timedelta(hours=14, minutes=1)


@settings(max_examples=200, deadline=None)
@given(st.datetimes(min_value=datetime(2026, 3, 1), max_value=datetime(2026, 11, 30), timezones=st.just(UTC)))
def test_notices_in_quiet_hours_wait_for_the_morning(moment):
    shifted = shift_out_of_quiet_hours(moment, clinic=_CLINIC, patient=_PATIENT, forward=True)

    assert shifted >= moment
    assert time(9) <= shifted.astimezone(_NEW_YORK).time() < time(20)
    assert shifted - moment < timedelta(hours=14, minutes=1)


def test_cancelling_a_series_sends_one_notice_not_one_per_visit(now):
    from sessions.services import series_cancel

    clinic = clinic_make()
    series = series_book(
        patient=patient_make(clinic), protocol=protocol_make(clinic, kind="induction"),
        first_start=datetime(2026, 1, 7, 10), now=now,
    )  # fmt: skip
    Message.objects.filter(session__series=series, purpose=Purpose.BOOKED).update(status=Status.SENT)

    series_cancel(series=series, reason="patient moved away", now=now)

    pending = Message.objects.filter(session__series=series, status__in=Message.PENDING)
    assert sorted(pending.values_list("purpose", "channel", "session__number")) == [
        (Purpose.CANCEL_ALL, "email", 1),
        (Purpose.CANCEL_ALL, "sms", 1),
    ]
