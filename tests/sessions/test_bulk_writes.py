"""scheduler/bulk.py: the booking path's one-statement writes keep what Django's own would."""

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from notifications.models import Channel, Message, Purpose
from scheduler.bulk import rows_insert, rows_update
from sessions.models import Session
from sessions.services import series_book
from tests.factories import clinic_make, patient_make, protocol_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def series(now):
    clinic = clinic_make(chairs=3)
    return series_book(
        patient=patient_make(clinic), protocol=protocol_make(clinic), first_start=datetime(2026, 1, 6, 10), now=now
    )


def test_an_update_saves_the_named_fields_of_each_row_and_stamps_the_change(series):
    first, second = series.sessions.order_by("number")[:2]
    before = timezone.now()
    hour = timedelta(hours=1)
    first.starts_at, first.ends_at, first.chair_free_at = (
        first.starts_at + hour,
        first.ends_at + hour,
        first.ends_at + hour,
    )
    second.version, second.cancellation_reason = 7, "not saved: not named"

    rows_update([first, second], ["starts_at", "ends_at", "chair_free_at", "version", "updated_at"])

    first_saved, second_saved = Session.objects.filter(pk__in=[first.pk, second.pk]).order_by("number")
    assert (first_saved.starts_at, first_saved.ends_at) == (first.starts_at, first.ends_at)
    assert (second_saved.version, second_saved.cancellation_reason) == (7, "")
    assert first_saved.updated_at >= before and second_saved.updated_at >= before


def test_an_insert_leaves_out_rows_that_break_a_unique_key_and_keeps_the_rest(series):
    session = series.sessions.get(number=1)
    planned = Message.objects.filter(session=session).count()

    def row(key: str) -> Message:
        return Message(
            session=session, clinic_id=session.clinic_id, patient=session.patient, purpose=Purpose.REMINDER, key=key,
            channel=Channel.EMAIL,
            session_version=session.version, due_at=session.starts_at - timedelta(hours=5),
            expires_at=session.starts_at, recipient=session.patient.email,
        )  # fmt: skip

    rows_insert([row("extra-1"), row("extra-1"), row("extra-2")])

    added = Message.objects.filter(session=session, key__startswith="extra-").order_by("key")
    assert [(m.key, m.status, m.attempts) for m in added] == [("extra-1", "planned", 0), ("extra-2", "planned", 0)]
    assert Message.objects.filter(session=session).count() == planned + 2
    assert all(m.created_at is not None and m.created_at == m.updated_at for m in added)
