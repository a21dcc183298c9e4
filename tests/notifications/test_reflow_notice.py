"""A re-flow tells the patient once, listing every new time, and replans each moved visit's reminders."""

from datetime import datetime

import pytest

from notifications.models import Channel, Message, Purpose
from notifications.rendering import render
from notifications.wording import fits_one_segment
from sessions.models import Session
from sessions.services import series_book, series_reflow, session_cancel
from tests.factories import clinic_make, patient_make, protocol_make

pytestmark = pytest.mark.django_db

TOKEN = "Ab3dEf6hIj9k"


@pytest.fixture
def sessions(now):
    clinic = clinic_make(chairs=2)
    series = series_book(
        patient=patient_make(clinic), protocol=protocol_make(clinic), first_start=datetime(2026, 1, 6, 10), now=now
    )
    return {s.number: s for s in series.sessions.all()}


def test_the_patient_gets_one_notice_listing_the_new_times(now, sessions):
    changed = series_reflow(session=sessions[4], starts_at=datetime(2026, 1, 11, 14), now=now)

    assert [s.number for s in changed] == [4, 5, 6]
    notices = Message.objects.filter(purpose=Purpose.REFLOWED)
    assert sorted((m.session.number, m.channel) for m in notices) == [(4, Channel.EMAIL), (4, Channel.SMS)]
    assert not Message.objects.filter(session__in=changed, purpose=Purpose.MOVED).exists()
    email = render(notices.get(channel=Channel.EMAIL), token=TOKEN)
    assert "Visit 4 of 6: Sun 11 Jan 2:00pm\nVisit 5 of 6: Mon 12 Jan 10:00am\nVisit 6 of 6: Tue 13 Jan 10:00am" in (
        email.body
    )
    assert len(email.invites) == 3
    text = render(notices.get(channel=Channel.SMS), token=TOKEN).body
    assert fits_one_segment(text) and "next Sun 11 Jan 2:00pm" in text


def test_each_moved_visit_has_reminders_for_its_new_time_only(now, sessions):
    changed = series_reflow(session=sessions[4], starts_at=datetime(2026, 1, 11, 14), now=now)

    for session in changed:
        pending = Message.objects.filter(session=session, status__in=Message.PENDING, purpose=Purpose.REMINDER)
        assert pending.exists()
        assert {m.session_version for m in pending} == {session.version}
        assert all(m.expires_at == session.starts_at for m in pending)
        old = Message.objects.filter(session=session, session_version=1, purpose=Purpose.REMINDER)
        assert old.exists() and not old.filter(status__in=Message.PENDING).exists()


def test_a_make_up_is_planned_like_a_booking_of_its_own(now, sessions):
    session_cancel(session=sessions[3], reason="unwell", now=now)

    made = series_reflow(session=sessions[3], starts_at=datetime(2026, 1, 8, 15), now=now)[0]

    assert made.status == Session.Status.BOOKED
    assert Message.objects.filter(session=made, purpose=Purpose.REMINDER, status=Message.Status.PLANNED).exists()
    assert Message.objects.filter(session=made, purpose=Purpose.REFLOWED).count() == 2
