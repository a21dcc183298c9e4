"""Booster recall by text: one text (and email) when the booster comes near, with a link that lists
only booster times from the due day on; the link books one or says "not now"; an opted-out
patient gets no text and stays on the staff list. The clock is given to every call."""

import re
from datetime import datetime, timedelta

import pytest
from django.test import Client

from notifications import offers, sending
from notifications.links import link_create
from notifications.models import Channel, Message, Purpose
from sessions.models import AuditEvent, Recall, Series
from sessions.recalls import recalls_open
from tests.factories import clinic_make, patient_make, protocol_make
from tests.notifications.test_patient_link import an_address
from tests.notifications.test_send import tick
from tests.sessions.test_recalls import at, completed_series

pytestmark = pytest.mark.django_db
LINK = re.compile(r"/r/([A-Za-z0-9_-]{10,})")


@pytest.fixture
def clinic(settings):
    settings.PUBLIC_BASE_URL = "https://go.example.com"
    settings.RECALL_TEXT_LEAD_DAYS = 7
    return clinic_make(chairs=2, sender_name="Desert Bloom")


@pytest.fixture
def booster(clinic):
    return protocol_make(clinic, kind="booster", driver_required=False)


@pytest.fixture
def induction(clinic, booster):
    return protocol_make(clinic, kind="induction", session_count=2, booster_interval_days=28, booster_protocol=booster)


def recall_texts(recall: Recall) -> list[Message]:
    return list(Message.objects.filter(recall=recall).order_by("channel"))


def test_a_recall_is_texted_and_emailed_once_a_week_before_it_falls_due(clinic, induction):
    recall = completed_series(clinic, induction).recall

    assert offers.recalls_text(now=at(clinic, recall.due_on - timedelta(days=8), 12)) == 0
    assert offers.recalls_text(now=at(clinic, recall.due_on - timedelta(days=7), 12)) == 1
    assert offers.recalls_text(now=at(clinic, recall.due_on - timedelta(days=6), 12)) == 0

    assert [(m.channel, m.purpose, m.status) for m in recall_texts(recall)] == [
        (Channel.EMAIL, Purpose.RECALL, "planned"), (Channel.SMS, Purpose.RECALL, "planned"),
    ]  # fmt: skip
    assert AuditEvent.objects.filter(patient=recall.patient, action="recall sent").count() == 1


def test_the_link_lists_only_booster_times_from_the_due_day_and_books_one(clinic, induction, booster, twilio, smtp):
    recall = completed_series(clinic, induction).recall
    texted_at = at(clinic, recall.due_on - timedelta(days=7), 12)
    offers.recalls_text(now=texted_at)
    [sending.message_send(message_id=pk, now=texted_at) for pk in tick(texted_at)]
    [text] = twilio.messages
    assert text.body.startswith("Desert Bloom: it is time to book your next visit, from")
    token = LINK.search(text.body)[1]

    page = Client(REMOTE_ADDR=an_address()).get(f"/r/{token}").content.decode()
    offered = re.findall(r'name="starts_at" value="([^"]+)"', page)

    assert offered and all(value[:10] >= recall.due_on.isoformat() for value in offered)
    booked = Client(REMOTE_ADDR=an_address()).post(
        f"/r/{token}", {"action": "book", "starts_at": offered[0]}, follow=True
    )
    assert "Booked:" in booked.content.decode()
    recall.refresh_from_db()
    series = Series.objects.get(patient=recall.patient, protocol=booster)
    assert (recall.status, recall.booked_series) == (Recall.Status.BOOKED, series)
    assert series.sessions.get().starts_at == datetime.fromisoformat(offered[0])
    # The recall's own text is not sent again once it is answered.
    assert offers.recalls_text(now=texted_at + timedelta(days=1)) == 0


def test_not_now_on_the_link_snoozes_and_the_patient_is_asked_again_then(clinic, induction):
    recall = completed_series(clinic, induction).recall
    offers.recalls_text(now=at(clinic, recall.due_on - timedelta(days=7), 12))
    token = link_create(recall=recall)

    answered = Client(REMOTE_ADDR=an_address()).post(f"/r/{token}", {"action": "not_now"}, follow=True)

    assert "ask you again in two weeks" in answered.content.decode()
    recall.refresh_from_db()
    assert recall.status == Recall.Status.SNOOZED and recall.snoozed_until is not None
    assert offers.recalls_text(now=at(clinic, recall.snoozed_until - timedelta(days=1), 12)) == 0
    assert offers.recalls_text(now=at(clinic, recall.snoozed_until, 12)) == 1
    assert Message.objects.filter(recall=recall, channel=Channel.SMS).count() == 2


def test_an_opted_out_patient_gets_no_text_and_stays_on_the_staff_list(clinic, induction, twilio, smtp):
    patient = patient_make(clinic, email="")
    recall = completed_series(clinic, induction, patient=patient).recall
    patient.sms_opted_out_at = at(clinic, recall.due_on - timedelta(days=20))
    patient.save()
    texted_at = at(clinic, recall.due_on - timedelta(days=7), 12)

    offers.recalls_text(now=texted_at)
    outcomes = [sending.message_send(message_id=pk, now=texted_at) for pk in tick(texted_at)]

    assert outcomes == ["skipped"] and twilio.messages == []
    assert Message.objects.get(recall=recall).reason == "patient opted out of texts"
    assert [row.recall for row in recalls_open(clinic=clinic, now=texted_at + timedelta(days=7))] == [recall]


def test_a_recall_already_texted_is_not_read_again_by_each_tick(clinic, induction):
    recall = completed_series(clinic, induction).recall
    texted_at = at(clinic, recall.due_on - timedelta(days=7), 12)
    assert list(offers.recalls_due_a_text(now=texted_at)) == [recall]

    offers.recalls_text(now=texted_at)

    assert not offers.recalls_due_a_text(now=texted_at + timedelta(minutes=1)).exists()
