"""Staff changes racing live sends, each on its own connection: cancel, move, mark and confirm
against a worker's send of the same session's text. One lock order (sessions/locking.py) means no
deadlock and no error; the row states mean no text for a message withdrawn before it went."""

import threading
from collections import Counter
from datetime import datetime, timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from notifications.models import Channel, Message, PatientLink, Purpose
from notifications.sending import message_send, reminder_tick
from sessions.models import Session
from sessions.services import series_book, session_cancel, session_confirm, session_mark, session_reschedule
from tests.factories import patient_make, protocol_make
from tests.notifications.conftest import always_open_clinic, message_id
from tests.processes import wait_until

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.concurrency,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks and deadlocks are PostgreSQL's"),
]

ROUNDS = 240
PENDING_OR_SENDING = [*Message.PENDING, Message.Status.SENDING]
ACTIONS = {
    "cancel": lambda s: session_cancel(session=s, reason="race"),
    "move": lambda s: session_reschedule(session=s, starts_at=s.starts_at + timedelta(days=1)),
    # The nurse marks the patient in at the start (a mark days ahead is refused).
    "mark": lambda s: session_mark(session=s, status=Session.Status.ARRIVED, now=s.starts_at),
    "confirm": lambda s: session_confirm(session=s, via=Session.Channel.STAFF),
}


def claimed_reminder_per_session(
    count: int, *, status: str = Message.Status.CLAIMED, soon: bool = False
) -> list[tuple[Session, Message]]:
    """`count` sessions 5 minutes apart from tomorrow 00:00 (or from a few minutes from now, with
    `soon`), each with one text reminder claimed and waiting for a worker (or planned and due,
    for a beat to claim)."""
    clinic = always_open_clinic(chairs=30)
    protocol = protocol_make(clinic, kind="booster", chair_minutes=30)
    start = (timezone.now() + timedelta(days=1)).astimezone(clinic.zone).replace(hour=0, minute=0, second=0)
    spread = 240  # starts 5 minutes apart, one session each
    if soon:
        # Within two and a half hours, side by side on the chairs: the clinic's clock reads 06:00.
        start = (timezone.now() + timedelta(minutes=10)).astimezone(clinic.zone).replace(second=0, microsecond=0)
        spread = 24
    pairs = []
    for n in range(count):
        patient = patient_make(clinic, phone=f"+1602556{n:04d}", email="")
        starts = start.replace(tzinfo=None) + timedelta(minutes=5 * (n % spread))
        series = series_book(patient=patient, protocol=protocol, starts=[datetime.fromisoformat(starts.isoformat())])
        session = series.sessions.get()
        Message.objects.filter(session=session).delete()
        message = Message.objects.create(
            session=session,
            patient=patient,
            purpose=Purpose.REMINDER,
            key="race",
            channel=Channel.SMS,
            session_version=session.version,
            due_at=timezone.now(),
            expires_at=session.starts_at,
            recipient=patient.phone,
            status=status,
            lease_expires_at=timezone.now() + timedelta(minutes=5) if status == Message.Status.CLAIMED else None,
        )
        pairs.append((session, message))
    return pairs


def race_rounds(sends: list, changes: list) -> Counter:
    """Round n releases sends[n] and changes[n] together, each from its own thread and so its own
    database connection (kept open across rounds: a reconnect per round would spread them out)."""
    gate = threading.Barrier(2, timeout=30)
    errors: Counter = Counter()

    def run(steps: list) -> None:
        try:
            for step in steps:
                gate.wait()
                try:
                    step()
                except Exception as exc:  # every failure is the finding
                    errors[f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"] += 1
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(steps,)) for steps in (sends, changes)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return errors


def test_staff_changes_racing_live_sends_never_deadlock_and_never_send_a_withdrawn_text(twilio):
    pairs = claimed_reminder_per_session(ROUNDS)
    actions = list(ACTIONS.values())
    sends = [lambda m=message: message_send(message_id=m.pk) for _, message in pairs]
    changes = [lambda s=session, n=n: actions[n % len(actions)](s) for n, (session, _) in enumerate(pairs)]

    errors = race_rounds(sends, changes)

    assert errors == Counter()
    texted = Counter(message_id(text) for text in twilio.messages)
    assert all(times == 1 for times in texted.values())
    statuses = dict(Message.objects.filter(pk__in=[m.pk for _, m in pairs]).values_list("pk", "status"))
    assert {statuses[pk] for pk in texted} <= set(Message.WENT_OUT)
    withdrawn = [pk for pk, status in statuses.items() if status == Message.Status.CANCELLED]
    assert withdrawn, "no change ever won the race: the test did not race"
    assert not set(withdrawn) & set(texted)
    # Nothing was left half-done: every message ended sent or withdrawn.
    assert set(statuses.values()) <= {Message.Status.SENT, Message.Status.CANCELLED}


def test_after_a_cancel_commits_no_tick_or_send_texts_its_session(twilio):
    (session, message), (other, other_message) = claimed_reminder_per_session(2)
    session_cancel(session=session, reason="patient called")

    assert message_send(message_id=message.pk) == "not claimed"
    message_send(message_id=other_message.pk)
    reminder_tick()

    assert [message_id(text) for text in twilio.messages] == [other_message.pk]
    assert not PatientLink.objects.filter(session=session).exists()


API_CHANGES = {
    "cancel": ("cancel", {"reason": "race"}),
    "move": ("reschedule", None),
    "mark": ("mark", {"status": "arrived"}),
    "confirm": ("confirm", {}),
}


@pytest.mark.e2e
def test_api_changes_racing_a_real_worker_answer_without_error_and_send_nothing_withdrawn(processes, twilio):
    pairs = claimed_reminder_per_session(ROUNDS // 3, status=Message.Status.PLANNED, soon=True)
    api = APIClient()
    api.force_authenticate(User.objects.create_user(username="racer", is_superuser=True))
    worker = processes("worker", "--concurrency=2")
    beat = processes("beat")
    wait_until(lambda: Message.objects.exclude(status=Message.Status.PLANNED).exists(), 30, "the first claim")

    answers: Counter = Counter()
    for n, (session, _) in enumerate(pairs):
        # The earliest visits are the ones a nurse marks in: arrival is refused over 2 h ahead.
        others = [change for name, change in API_CHANGES.items() if name != "mark"]
        action, body = API_CHANGES["mark"] if n < len(pairs) // 4 else others[n % len(others)]
        if body is None:
            body = {"starts_at": (session.starts_at + timedelta(days=1)).isoformat()}
        answers[api.post(f"/api/sessions/{session.pk}/{action}", body, format="json").status_code] += 1
    ids = [m.pk for _, m in pairs]
    wait_until(lambda: not Message.objects.filter(pk__in=ids, status__in=PENDING_OR_SENDING).exists(), 60, "sends")

    assert answers == Counter({200: len(pairs)})
    for process in (worker, beat):
        assert "Traceback" not in process.output() and "deadlock" not in process.output()
    statuses = dict(Message.objects.filter(pk__in=ids).values_list("pk", "status"))
    texted = Counter(message_id(text) for text in twilio.messages)
    assert all(times == 1 for times in texted.values())
    assert not {pk for pk, status in statuses.items() if status == Message.Status.CANCELLED} & set(texted)
