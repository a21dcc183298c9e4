"""The whole reminder path with real processes: a Celery beat and worker on the test database,
a Redis of the test's own, the official twilio client against the fake Twilio, SMTP to a sink."""

import time
from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from notifications.models import Message, ReminderRule
from sessions.services import series_book, session_cancel, session_reschedule
from tests.factories import patient_make, protocol_make
from tests.notifications.conftest import TICK, always_open_clinic, message_id
from tests.processes import wait_until

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="worker processes share the PostgreSQL test database"),
]


def clock_text(moment: datetime, zone) -> str:
    local = moment.astimezone(zone)
    noon = "am" if local.hour < 12 else "pm"
    return f"{local:%a} {local.day} {local:%b} {local.hour % 12 or 12}:{local.minute:02d}{noon}"


def test_reminders_arrive_once_each_on_time_and_follow_moves_and_cancellations(processes, twilio, smtp, settings):
    # Planning (here) and sending (the worker) both keep the caps: a booking text and a reminder
    # the same day need a daily cap above one in both.
    settings.SMS_DAILY_CAP = 10
    clinic = always_open_clinic(sender_name="Harbor Wellness")
    ReminderRule.objects.filter(clinic=clinic).delete()
    ReminderRule.objects.create(clinic=clinic, channel="email", offset_minutes=1)
    ReminderRule.objects.create(clinic=clinic, channel="sms", offset_minutes=1)
    protocol = protocol_make(clinic, kind="booster", chair_minutes=30)
    staying = patient_make(clinic, phone="+12125550142", email="pat@example.com")
    moving = patient_make(clinic, phone="+12125550143", email="")
    leaving = patient_make(clinic, phone="+12125550144", email="")
    # Reminders fall due within a minute; the moved session's a minute later.
    start = (timezone.now() + timedelta(minutes=2)).replace(second=0, microsecond=0)
    processes("worker", "--pool=threads", "--concurrency=4", SMS_DAILY_CAP="10")
    processes("beat", SMS_DAILY_CAP="10")

    session = series_book(patient=staying, protocol=protocol, starts=[start]).sessions.get()
    moved = series_book(patient=moving, protocol=protocol, starts=[start]).sessions.get()
    cancelled = series_book(patient=leaving, protocol=protocol, starts=[start]).sessions.get()
    new_start = start + timedelta(minutes=1)
    session_reschedule(session=moved, starts_at=new_start)
    session_cancel(session=cancelled, reason="patient asked")

    wait_until(
        lambda: len(twilio.messages_to(moving.phone)) >= 2,  # booked (for the new time), then the reminder
        timeout=(new_start - timezone.now()).total_seconds() + 10,
        what="the reminder for the new time",
    )
    time.sleep(TICK * 2)

    confirmation, reminder = twilio.messages_to(staying.phone)
    when = clock_text(start, clinic.zone)
    assert confirmation.body.startswith(f"Harbor Wellness: visit booked {when}.")
    assert reminder.body.startswith(f"Harbor Wellness: visit {when}. Reply C to confirm, R to reschedule.")
    planned = {m.pk: m for m in Message.objects.filter(session=session)}
    for text in (confirmation, reminder):
        due = planned[message_id(text)].due_at
        assert due - timedelta(seconds=1) <= text.date_created <= due + timedelta(seconds=TICK + 5)
    assert [e["Subject"] for e in smtp.wait_for(2, timeout=10)] == [
        "Your visits at Harbor Wellness are booked",
        f"Your visit at Harbor Wellness on {when.rsplit(' ', 1)[0]}",
    ]

    # Moved before any text went out: one booking text and one reminder, both for the new time.
    new_when = clock_text(new_start, clinic.zone)
    moved_texts = [t.body.split(". ")[0] for t in twilio.messages_to(moving.phone)]
    assert moved_texts == [f"Harbor Wellness: visit booked {new_when}", f"Harbor Wellness: visit {new_when}"]
    # Cancelled before any text went out: nothing at all.
    assert twilio.messages_to(leaving.phone) == []
    ids = [message_id(t) for t in twilio.messages]
    assert len(ids) == len(set(ids)) == 4
