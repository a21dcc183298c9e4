"""The inbox of replies and flags that need a person, and the outbox of texts kept unsent."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from notifications.inbound import Incoming, inbound_handle
from notifications.models import Channel, InboxText, Message, OutboxText, Purpose, StaffFlag
from sessions.models import AuditEvent

from .builders import at, session_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def reply(patient) -> InboxText:
    inbound_handle(incoming=Incoming(sid="SM100", from_number=patient.phone, to_number="", body="Can I come later?"))
    return InboxText.objects.get(inbound__sid="SM100")


@pytest.fixture
def flag(patient) -> StaffFlag:
    return StaffFlag.objects.create(patient=patient, kind=StaffFlag.Kind.CANCEL_WORD, detail="Replied CANCEL")


def test_it_lists_texts_and_flags_that_need_a_person_with_the_open_count(scheduler, reply, flag, patient):
    StaffFlag.objects.create(patient=patient, kind="cancel_word", detail="old", handled_at=timezone.now())

    response = scheduler.get(reverse("staff:inbox"))

    assert (response.context["inbox"].texts, response.context["inbox"].flags) == ([reply], [flag])
    assert response.context["nav"]["inbox_count"] == 2
    html = response.content.decode()
    assert "Can I come later?" in html and "Replied CANCEL" in html


def test_mark_handled_records_who_and_when_once(scheduler, reply, flag, patient):
    for url in (reverse("staff:inbound-handled", args=[reply.pk]), reverse("staff:flag-handled", args=[flag.pk])):
        first = scheduler.post(url, follow=True)
        again = scheduler.post(url, follow=True)
        assert "marked handled" in [str(m) for m in first.context["messages"]][0]
        assert "already handled" in [str(m) for m in again.context["messages"]][0]

    reply.refresh_from_db()
    flag.refresh_from_db()
    assert reply.handled_at is not None and reply.handled_by.username == "scheduler"
    assert flag.handled_at is not None and flag.handled_by.username == "scheduler"
    assert scheduler.get(reverse("staff:inbox")).context["nav"]["inbox_count"] == 0
    trail = AuditEvent.objects.filter(patient=patient, via="staff").values_list("action", "actor__username")
    assert sorted(trail) == [("flag handled", "scheduler"), ("reply handled", "scheduler")]


def test_the_outbox_lists_kept_texts_newest_first(scheduler, clinic, booster, patient, later):
    session = session_make(clinic, booster, chair=clinic.chairs.first(), starts_at=at(clinic, later, 9),
                           patient=patient)  # fmt: skip
    texts = []
    for n, purpose in enumerate((Purpose.BOOKED, Purpose.REMINDER)):
        message = Message.objects.create(
            session=session, patient=patient, purpose=purpose, key=str(n), channel=Channel.SMS, session_version=1,
            due_at=timezone.now(), expires_at=session.starts_at, status=Message.Status.SENT,
        )  # fmt: skip
        texts.append(OutboxText.objects.create(message=message, to=patient.phone, body=f"Desert Wellness: text {n}"))
    OutboxText.objects.filter(pk=texts[0].pk).update(created_at=timezone.now() - timedelta(hours=1))

    response = scheduler.get(reverse("staff:outbox"))

    assert list(response.context["page"].object_list) == [texts[1], texts[0]]
    assert "Desert Wellness: text 1" in response.content.decode()


def test_an_empty_outbox_before_the_window_opens_says_what_waits_and_when(scheduler, clinic, booster, patient, later):
    session = session_make(clinic, booster, chair=clinic.chairs.first(), starts_at=at(clinic, later, 9),
                           patient=patient)  # fmt: skip
    due = timezone.now() + timedelta(hours=5)
    Message.objects.create(
        session=session, patient=patient, purpose=Purpose.BOOKED, key="booked", channel=Channel.SMS,
        session_version=1, due_at=due, expires_at=session.starts_at,
        reason="waits for the message window (09:00–20:00 patient time)",
    )  # fmt: skip

    response = scheduler.get(reverse("staff:outbox"))

    assert response.context["waiting"].count == 1
    html = response.content.decode()
    assert "1 text planned, not yet due. The next, to " in html and "waits for the message window" in html
    assert f"{due.astimezone(patient.zone):%a %-d %b %H:%M}" in html
