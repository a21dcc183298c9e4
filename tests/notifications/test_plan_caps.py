"""The reminder plan keeps the texting rules when it is made (PRODUCT rule 16): what staff and the
patient see as planned is what sending will let through."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from notifications.models import Channel, Message, Purpose, ReminderRule
from sessions.models import Patient
from sessions.services import series_book, session_reschedule
from tests.factories import clinic_make, patient_make, protocol_make

pytestmark = pytest.mark.django_db

Status = Message.Status
PHOENIX = ZoneInfo("America/Phoenix")
NEW_YORK = ZoneInfo("America/New_York")
BY_EMAIL = {"text limit (1 a day): sent by email instead", "text limit (3 a week): sent by email instead"}


def refused_at_sending(patient: Patient) -> list[Message]:
    """Sending's own cap check, text by text in due order, as if each went out when due: the
    planned texts it would skip."""
    zone, sent, refused = patient.zone, [], []
    for text in Message.objects.filter(patient=patient, channel=Channel.SMS, status=Status.PLANNED).order_by("due_at"):
        today = [t for t in sent if t.astimezone(zone).date() == text.due_at.astimezone(zone).date()]
        week = [t for t in sent if t > text.due_at - timedelta(days=7)]
        if len(today) >= settings.SMS_DAILY_CAP or len(week) >= settings.SMS_WEEKLY_CAP:
            refused.append(text)
        else:
            sent.append(text.due_at)
    return refused


def planned_text_days(patient: Patient) -> list[tuple[str, int]]:
    texts = Message.objects.filter(patient=patient, channel=Channel.SMS, status=Status.PLANNED).order_by("due_at")
    return [(m.purpose, m.due_at.astimezone(patient.zone).day) for m in texts]


def skipped_texts(patient: Patient):
    return Message.objects.filter(patient=patient, channel=Channel.SMS, purpose=Purpose.REMINDER, status=Status.SKIPPED)


def book_pain_course(now: datetime, **patient_fields) -> Patient:
    """Five visits at 11:00 on consecutive days, Mon 12 to Fri 16 Jan: texts 24 h and 2 h before each."""
    clinic = clinic_make()
    patient = patient_make(clinic, **patient_fields)
    series_book(
        patient=patient, protocol=protocol_make(clinic, kind="pain"), first_start=datetime(2026, 1, 12, 11), now=now
    )
    return patient


def test_a_daily_series_plans_only_the_texts_the_caps_let_through_and_emails_the_rest(now):
    patient = book_pain_course(now)

    assert refused_at_sending(patient) == []
    # The booking confirmation, then the first text of each day until three in a week.
    assert planned_text_days(patient) == [
        (Purpose.BOOKED, 5), (Purpose.REMINDER, 11), (Purpose.REMINDER, 12), (Purpose.REMINDER, 13),
    ]  # fmt: skip
    skipped = skipped_texts(patient)
    assert {m.reason for m in skipped} == BY_EMAIL
    emails = Message.objects.filter(patient=patient, channel=Channel.EMAIL, rule__channel=Channel.SMS)
    assert sorted((m.session_id, m.rule_id, m.due_at, m.status) for m in emails) == sorted(
        (m.session_id, m.rule_id, m.due_at, Status.PLANNED) for m in skipped
    )


def test_without_email_texts_over_the_caps_are_skipped_at_planning_with_the_reason(now):
    patient = book_pain_course(now, email="")

    assert refused_at_sending(patient) == []
    assert {m.reason for m in skipped_texts(patient)} == {
        "text limit (1 a day) reached at planning; no email address",
        "text limit (3 a week) reached at planning; no email address",
    }
    assert not Message.objects.filter(patient=patient, channel=Channel.EMAIL).exists()


def test_texts_already_planned_for_another_series_count_when_a_session_moves(now):
    clinic = clinic_make()
    patient = patient_make(clinic)
    first = series_book(
        patient=patient, protocol=protocol_make(clinic, kind="booster"), starts=[datetime(2026, 1, 15, 13)], now=now
    )
    other = protocol_make(clinic, kind="booster", name="Second booster")
    session = series_book(patient=patient, protocol=other, starts=[datetime(2026, 1, 20, 13)], now=now).sessions.get()

    session_reschedule(session=session, starts_at=datetime(2026, 1, 16, 13), now=now)

    # The first series texts on Thu 15 Jan at 11:00; the moved visit's day-before text would be a
    # second text that day.
    texts = Message.objects.filter(session=session, session_version=2, purpose=Purpose.REMINDER, rule__channel="sms")
    day_before = datetime(2026, 1, 15, 13, tzinfo=PHOENIX)
    assert sorted((m.channel, m.status, m.due_at, m.reason) for m in texts) == [
        ("email", Status.PLANNED, day_before, ""),
        ("sms", Status.PLANNED, datetime(2026, 1, 16, 11, tzinfo=PHOENIX), ""),
        ("sms", Status.SKIPPED, day_before, "text limit (1 a day): sent by email instead"),
    ]
    kept = Message.objects.filter(session__series=first, purpose=Purpose.REMINDER, channel="sms")
    assert set(kept.values_list("status", flat=True)) == {Status.PLANNED}


def test_a_2_hour_text_for_a_10_am_visit_goes_by_email_not_the_evening_before(now):
    clinic = clinic_make()
    patient = patient_make(clinic)
    session = series_book(
        patient=patient, protocol=protocol_make(clinic, kind="booster"), starts=[datetime(2026, 1, 9, 10)], now=now
    ).sessions.get()

    two_hours = Message.objects.filter(session=session, rule__offset_minutes=120).order_by("channel")
    assert [(m.channel, m.status, m.due_at, m.reason) for m in two_hours] == [
        ("email", Status.PLANNED, datetime(2026, 1, 9, 8, tzinfo=PHOENIX), ""),
        ("sms", Status.SKIPPED, datetime(2026, 1, 9, 8, tzinfo=PHOENIX), "quiet hours: sent by email instead"),
    ]
    assert not Message.objects.filter(
        patient=patient,
        channel=Channel.SMS,
        status=Status.PLANNED,
        due_at__range=(datetime(2026, 1, 8, 18, tzinfo=PHOENIX), datetime(2026, 1, 9, 9, tzinfo=PHOENIX)),
    ).exists()


def test_a_same_day_text_in_quiet_hours_is_skipped_without_email(now):
    clinic = clinic_make()
    patient = patient_make(clinic, email="")
    session = series_book(
        patient=patient, protocol=protocol_make(clinic, kind="booster"), starts=[datetime(2026, 1, 9, 10)], now=now
    ).sessions.get()

    text = Message.objects.get(session=session, rule__offset_minutes=120)
    assert (text.channel, text.status, text.reason) == (
        "sms",
        Status.SKIPPED,
        "would fall in quiet hours; no email address",
    )


def test_no_second_email_where_an_email_reminder_of_the_visit_goes_near_the_text(now):
    clinic = clinic_make()
    ReminderRule.objects.create(clinic=clinic, channel=Channel.EMAIL, offset_minutes=3 * 60)
    session = series_book(
        patient=patient_make(clinic),
        protocol=protocol_make(clinic, kind="booster"),
        starts=[datetime(2026, 1, 9, 10)],
        now=now,
    ).sessions.get()

    same_day = Message.objects.filter(session=session, rule__offset_minutes__lte=3 * 60).order_by("due_at")
    assert [(m.channel, m.status, m.reason) for m in same_day] == [
        ("email", Status.PLANNED, ""),
        ("sms", Status.SKIPPED, "quiet hours: an email reminder goes near that time"),
    ]


def test_a_day_before_text_in_quiet_hours_still_goes_the_evening_before(now):
    clinic = clinic_make()
    session = series_book(
        patient=patient_make(clinic),
        protocol=protocol_make(clinic, kind="booster"),
        starts=[datetime(2026, 1, 9, 8)],
        now=now,
    ).sessions.get()

    text = Message.objects.get(session=session, rule__offset_minutes=24 * 60)
    assert (text.status, text.due_at) == (Status.PLANNED, datetime(2026, 1, 7, 19, 50, tzinfo=PHOENIX))


def test_whole_day_reminders_keep_the_visits_wall_clock_time_across_a_dst_change(now):
    clinic = clinic_make(time_zone="America/New_York")
    protocol = protocol_make(clinic, kind="booster")
    monday = series_book(
        patient=patient_make(clinic), protocol=protocol, starts=[datetime(2026, 3, 9, 9)], now=now
    ).sessions.get()
    sunday = series_book(
        patient=patient_make(clinic), protocol=protocol, starts=[datetime(2026, 3, 8, 10)], now=now
    ).sessions.get()

    def due(session, channel: str, hours: int) -> datetime:
        found = Message.objects.get(session=session, channel=channel, rule__offset_minutes=hours * 60)
        return found.due_at.astimezone(NEW_YORK).replace(tzinfo=None)

    # Clocks went forward on Sun 8 Mar: 72 h before Mon 09:00 EDT would be Fri 08:00 EST.
    assert due(monday, "email", 72) == datetime(2026, 3, 6, 9)
    assert due(monday, "sms", 24) == datetime(2026, 3, 8, 9)
    assert due(sunday, "sms", 24) == datetime(2026, 3, 7, 10)


def test_a_series_reads_the_patients_texts_once_however_many_visits(now):
    clinic = clinic_make()
    patient = patient_make(clinic)

    with CaptureQueriesContext(connection) as queries:
        series_book(
            patient=patient, protocol=protocol_make(clinic, kind="pain"), first_start=datetime(2026, 1, 12, 11), now=now
        )

    reads = [q["sql"] for q in queries if q["sql"].startswith("SELECT") and 'FROM "notifications_message"' in q["sql"]]
    assert len(reads) == 1
    assert Message.objects.filter(patient=patient).count() > 5 * 3


def test_a_text_that_went_out_counts_on_the_day_it_was_sent(now):
    clinic = clinic_make()
    patient = patient_make(clinic)
    series_book(
        patient=patient, protocol=protocol_make(clinic, kind="booster"), starts=[datetime(2026, 1, 20, 13)], now=now
    )
    # Its booking confirmation, due on 5 Jan, went out late: on Mon 12 Jan at noon.
    Message.objects.filter(patient=patient, channel=Channel.SMS, purpose=Purpose.BOOKED).update(
        status=Status.SENT, sending_started_at=datetime(2026, 1, 12, 12, tzinfo=PHOENIX)
    )
    other = protocol_make(clinic, kind="booster", name="Second booster")

    series_book(patient=patient, protocol=other, starts=[datetime(2026, 1, 13, 13)], now=now)

    texts = Message.objects.filter(session__series__protocol=other, channel="sms", purpose=Purpose.REMINDER)
    assert sorted((m.due_at, m.status, m.reason) for m in texts) == [
        (datetime(2026, 1, 12, 13, tzinfo=PHOENIX), Status.SKIPPED, "text limit (1 a day): sent by email instead"),
        (datetime(2026, 1, 13, 11, tzinfo=PHOENIX), Status.PLANNED, ""),
    ]
