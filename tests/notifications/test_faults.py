"""No duplicates, nothing lost: two beats, two workers, one of them SIGKILLed mid-run, the broker
restarted under them, and a Twilio that never answers one request."""

from collections import Counter
from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from notifications.models import Channel, Message, Purpose
from sessions.models import Session
from sessions.services import series_book
from tests.factories import patient_make, protocol_make
from tests.fakes import hang
from tests.notifications.conftest import always_open_clinic, message_id
from tests.processes import wait_until

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="worker processes share the PostgreSQL test database"),
]

REMINDERS = 200
LEASES = {"MESSAGE_CLAIM_LEASE_SECONDS": "4", "MESSAGE_SEND_LEASE_SECONDS": "6", "TWILIO_TIMEOUT_SECONDS": "2"}


def due_reminders(count: int) -> list[Message]:
    """`count` patients, each with a session the day after tomorrow and a text reminder due now."""
    clinic = always_open_clinic(chairs=20)
    protocol = protocol_make(clinic, kind="booster", chair_minutes=30)
    day = (timezone.now() + timedelta(days=2)).astimezone(clinic.zone).date()
    for n in range(count):
        start = f"{day.isoformat()}T{1 + n // 20 // 2:02d}:{30 * (n // 20 % 2):02d}"
        patient = patient_make(clinic, phone=f"+1602555{n:04d}", email="")
        series_book(patient=patient, protocol=protocol, starts=[datetime.fromisoformat(start)])
    Message.objects.all().delete()
    now = timezone.now()
    return Message.objects.bulk_create(
        Message(
            session=session,
            clinic_id=session.clinic_id,
            patient_id=session.patient_id,
            purpose=Purpose.REMINDER,
            key="fault-test",
            channel=Channel.SMS,
            session_version=session.version,
            due_at=now,
            expires_at=session.starts_at,
            recipient=session.patient.phone,
        )
        for session in Session.objects.select_related("patient")
    )


def test_each_reminder_reaches_twilio_exactly_once_through_kills_restarts_and_a_hang(processes, redis, twilio):
    reminders = due_reminders(REMINDERS)
    twilio.latency = 0.1  # a slow answer: a worker killed meanwhile leaves texts Twilio has and we do not know of
    silent = reminders[7].recipient
    twilio.script_for(silent, hang(60))  # the first request to this number is never answered
    workers = [processes("worker", "--pool=threads", "--concurrency=4", **LEASES) for _ in range(2)]
    for _ in range(2):
        processes("beat", **LEASES)

    wait_until(lambda: len(twilio.messages) >= REMINDERS // 4, timeout=60, what="a quarter of the texts")
    workers[0].kill()
    redis.restart()
    wait_until(
        lambda: Message.objects.filter(status=Message.Status.SENT).count() == REMINDERS,
        timeout=150,
        what="every reminder to be sent",
    )

    sent_per_message = Counter(message_id(text) for text in twilio.messages)
    assert set(sent_per_message) == {m.pk for m in reminders}
    assert max(sent_per_message.values()) == 1, sent_per_message.most_common(3)
    assert len(twilio.messages_to(silent)) == 1
    assert len([r for r in twilio.received if r.form.get("To") == silent]) == 2  # the hang, then one resend
    found_in_log = Message.objects.filter(reason="found in the provider's log after an interrupted send").count()
    print(f"texts {len(twilio.messages)}, requests {len(twilio.received)}, recovered from Twilio's log {found_in_log}")
