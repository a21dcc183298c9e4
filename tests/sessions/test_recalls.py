"""Booster recall: a completed series makes its booster due at the protocol's interval after its
last session; staff see who is soon due, due and overdue; booking the booster answers it, "not
now" snoozes it, a decline ends it, and a series brought back by an undo withdraws it."""

from datetime import date, datetime, time, timedelta

import pytest
from django.core.exceptions import ValidationError

from sessions.clock import wall_clock
from sessions.models import AuditEvent, Recall, Series, Session
from sessions.recalls import recall_decline, recall_snooze, recalls_open
from sessions.services import series_book, session_mark, session_undo
from tests.factories import clinic_make, patient_make, protocol_make

pytestmark = pytest.mark.django_db

# A Monday the clinic is open; everything below happens relative to it, with the clock given.
MONDAY = date(2027, 3, 1)


@pytest.fixture
def clinic():
    return clinic_make(chairs=2, opens=time(8), closes=time(18))


@pytest.fixture
def booster(clinic):
    return protocol_make(clinic, kind="booster")


@pytest.fixture
def induction(clinic, booster):
    return protocol_make(clinic, kind="induction", session_count=2, booster_interval_days=28, booster_protocol=booster)


def at(clinic, day: date, hour: int = 10) -> datetime:
    return wall_clock(day, time(hour), clinic.zone)


def completed_series(clinic, induction, patient=None) -> Series:
    """Two sessions on MONDAY and the day after, both attended, the clock then moved past them."""
    patient = patient or patient_make(clinic)
    booked_at = at(clinic, MONDAY - timedelta(days=7))
    starts = [at(clinic, MONDAY), at(clinic, MONDAY + timedelta(days=1))]
    series = series_book(patient=patient, protocol=induction, starts=starts, now=booked_at)
    for session in series.sessions.order_by("number"):
        session_mark(session=session, status=Session.Status.ARRIVED, at=session.starts_at, now=session.starts_at)
        session_mark(session=session, status=Session.Status.COMPLETED, at=session.ends_at, now=session.ends_at)
    series.refresh_from_db()
    return series


def test_a_completed_series_makes_its_booster_due_at_the_interval(clinic, induction, booster):
    series = completed_series(clinic, induction)

    recall = Recall.objects.get(series=series)
    assert series.status == Series.Status.COMPLETED
    assert (recall.protocol, recall.due_on, recall.status) == (booster, MONDAY + timedelta(days=1 + 28), "due")


def test_no_recall_without_a_booster_or_an_interval(clinic):
    plain = protocol_make(clinic, kind="induction", name="Plain", session_count=2)

    completed_series(clinic, plain)

    assert not Recall.objects.exists()


def test_staff_see_soon_due_and_overdue_in_the_order_to_call(clinic, induction, settings):
    settings.RECALL_SOON_DAYS, settings.RECALL_OVERDUE_DAYS = 14, 14
    first, second = completed_series(clinic, induction), completed_series(clinic, induction)
    due_on = Recall.objects.get(series=first).due_on

    def states(day: date) -> list[str]:
        return [row.state for row in recalls_open(clinic=clinic, now=at(clinic, day, 12))]

    assert states(due_on - timedelta(days=20)) == []
    assert states(due_on - timedelta(days=3)) == ["soon", "soon"]
    assert states(due_on) == ["due", "due"]
    recall_snooze(recall=second.recall, until=due_on + timedelta(days=30), now=at(clinic, due_on, 12))
    assert states(due_on + timedelta(days=15)) == ["overdue", "snoozed"]


def test_booking_the_booster_answers_the_recall_from_any_edge(clinic, induction, booster):
    series = completed_series(clinic, induction)
    due_on = series.recall.due_on

    booked = series_book(patient=series.patient, protocol=booster, starts=[at(clinic, due_on)],
                         now=at(clinic, due_on - timedelta(days=10)))  # fmt: skip

    recall = Recall.objects.get(series=series)
    assert (recall.status, recall.booked_series) == (Recall.Status.BOOKED, booked)


def test_not_now_and_declined_are_answers_on_the_audit_trail(clinic, induction):
    snoozed, declined = completed_series(clinic, induction), completed_series(clinic, induction)
    today = at(clinic, snoozed.recall.due_on, 12)

    recall_snooze(recall=snoozed.recall, until=snoozed.recall.due_on + timedelta(days=14), now=today)
    recall_decline(recall=declined.recall, now=today)

    assert Recall.objects.get(series=snoozed).status == Recall.Status.SNOOZED
    assert Recall.objects.get(series=declined).status == Recall.Status.DECLINED
    assert AuditEvent.objects.filter(action="recall not now", series=snoozed).exists()
    assert AuditEvent.objects.filter(action="recall declined", series=declined).exists()
    with pytest.raises(ValidationError):
        recall_decline(recall=Recall.objects.get(series=declined), now=today)
    with pytest.raises(ValidationError) as past:
        recall_snooze(recall=Recall.objects.get(series=snoozed), until=snoozed.recall.due_on, now=today)
    assert "until" in past.value.message_dict


def test_an_undo_that_brings_the_series_back_withdraws_its_recall(clinic, induction):
    series = completed_series(clinic, induction)
    last = series.sessions.get(number=2)

    session_undo(session=last, now=last.ends_at + timedelta(minutes=5))

    assert Recall.objects.get(series=series).status == Recall.Status.WITHDRAWN


def test_completed_again_after_an_undo_an_answer_already_given_stands(clinic, induction, booster):
    series = completed_series(clinic, induction)
    due_on = series.recall.due_on
    series_book(patient=series.patient, protocol=booster, starts=[at(clinic, due_on)],
                now=at(clinic, due_on - timedelta(days=10)))  # fmt: skip
    last = series.sessions.get(number=2)

    session_undo(session=last, now=last.ends_at + timedelta(minutes=5))
    session_mark(
        session=last, status=Session.Status.COMPLETED, at=last.ends_at, now=last.ends_at + timedelta(minutes=6)
    )

    assert Recall.objects.get(series=series).status == Recall.Status.BOOKED
