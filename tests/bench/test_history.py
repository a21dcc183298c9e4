"""bench/history.py, built small (a month of a six-chair clinic): the visits and messages the
reports bench counts on, as the service would have left them."""

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from bench.history import clinic_history_build
from notifications.models import Channel, Message, Purpose
from scheduler.reports.figures import Scope, report_build
from sessions.clock import local_date
from sessions.models import Series, Session

pytestmark = pytest.mark.django_db

# Noon in Phoenix: the day's first visits are over, the afternoon's still to come.
NOW = datetime(2026, 1, 5, 19, 0, tzinfo=UTC)
SESSIONS = 400
S = Session.Status
M = Message.Status


def _build(name: str = "History Clinic"):
    return clinic_history_build(
        seed=7, days=30, chairs=6, sessions=SESSIONS, name=name, now=NOW, behind=timedelta(hours=6)
    )


@pytest.fixture
def history():
    return _build()


def _visits(history) -> list[Session]:
    return list(Session.objects.filter(clinic=history.clinic).order_by("starts_at", "pk"))


def test_the_report_of_its_days_counts_exactly_the_sessions_asked_for(history):
    assert history.last_date == local_date(NOW, history.clinic.zone)
    assert history.first_date == history.last_date - timedelta(days=29)
    report = report_build(scope=Scope(clinic=history.clinic, first=history.first_date, last=history.last_date), now=NOW)
    by_status: Counter = Counter()
    for cell in report.cells:
        by_status[cell.status] += cell.visits
    assert sum(by_status.values()) == history.sessions == SESSIONS
    assert by_status == history.statuses


def test_visits_over_have_an_outcome_and_those_to_come_are_booked_or_confirmed(history):
    visits = _visits(history)
    over = [v for v in visits if v.ends_at <= NOW]
    ahead = [v for v in visits if v.starts_at > NOW]
    assert over and ahead
    assert {v.status for v in over} == {S.COMPLETED, S.NO_SHOW, S.CANCELLED}
    assert {v.status for v in ahead} <= {S.BOOKED, S.CONFIRMED, S.CANCELLED}
    assert all(v.created_at < v.starts_at and v.created_at <= NOW for v in visits)
    completed = [v for v in over if v.status == S.COMPLETED]
    recorded = [v for v in completed if v.chair_out_at is not None]
    assert len(recorded) >= 0.9 * len(completed)
    assert all(abs(v.chair_in_at - v.starts_at) <= timedelta(minutes=15) for v in recorded)
    # A series with a visit still to come is active; one whose visits are all over, completed.
    for series in Series.objects.filter(clinic=history.clinic).prefetch_related("sessions"):
        active = any(s.ends_at > NOW for s in series.sessions.all())
        assert series.status == (Series.Status.ACTIVE if active else Series.Status.COMPLETED)


def test_attendance_is_a_clinics(history):
    # About 5% no-shows and 8% cancellations, 70% confirmed: loosely, in a sample of 400.
    counts = history.statuses
    marked = counts[S.COMPLETED] + counts[S.NO_SHOW] + counts.get(S.ARRIVED, 0)
    assert 0.01 <= counts[S.NO_SHOW] / marked <= 0.1
    assert 0.04 <= counts[S.CANCELLED] / SESSIONS <= 0.13
    visits = _visits(history)
    assert 0.6 <= sum(v.confirmed_at is not None for v in visits) / len(visits) <= 0.8
    cancelled = [v for v in visits if v.status == S.CANCELLED]
    late = [v for v in cancelled if v.status_changed_at > v.starts_at - timedelta(hours=24)]
    assert 0 < len(late) < len(cancelled)


def test_every_visit_has_its_three_reminders_and_cancelled_ones_are_withdrawn(history):
    messages = Message.objects.filter(clinic=history.clinic)
    assert messages.count() == history.messages
    reminders = Counter(messages.filter(purpose=Purpose.REMINDER).values_list("session_id", "key").distinct())
    keys_per_visit = Counter(session for session, _ in reminders)
    assert set(keys_per_visit.values()) == {3}
    assert len(keys_per_visit) == len(_visits(history))
    # What a cancelled visit's reminders had not yet sent was withdrawn (or skipped when planned).
    withdrawn = 0
    for visit in Session.objects.filter(clinic=history.clinic, status=S.CANCELLED):
        after = messages.filter(session=visit, purpose=Purpose.REMINDER, due_at__gt=visit.status_changed_at)
        assert set(after.exclude(status=M.SKIPPED).values_list("status", "reason")) <= {
            (M.CANCELLED, "session cancelled")
        }
        withdrawn += after.filter(status=M.CANCELLED).count()
    assert withdrawn


def test_messages_end_as_sending_leaves_them(history):
    messages = Message.objects.filter(clinic=history.clinic)
    statuses = Counter(messages.values_list("status", flat=True))
    assert statuses[M.DELIVERED] and statuses[M.SENT] and statuses[M.SKIPPED] and statuses[M.CANCELLED]
    skipped = set(messages.filter(status=M.SKIPPED).values_list("reason", flat=True))
    assert "quiet hours: sent by email instead" in skipped
    assert "text limit (3 a week): sent by email instead" in skipped
    # Every text skipped for quiet hours or a cap has its email, due at the same time.
    for text in messages.filter(status=M.SKIPPED, reason__endswith="sent by email instead")[:50]:
        assert messages.filter(session=text.session, key=text.key, channel=Channel.EMAIL, due_at=text.due_at).exists()
    went_out = messages.filter(status__in=[M.SENT, M.DELIVERED])
    assert not went_out.filter(sent_at__isnull=True).exists()
    assert not went_out.filter(sent_at__gt=NOW).exists()
    # The tick is `behind` (6 h): what fell due since is still planned, nothing older.
    planned = messages.filter(status=M.PLANNED)
    assert planned.filter(due_at__lte=NOW).exists()
    assert not planned.filter(due_at__lt=NOW - timedelta(hours=6)).exists()


def test_the_same_seed_builds_the_same_history(history):
    again = _build(name="History Clinic again")

    def shape(clinic) -> list[tuple]:
        return list(
            Session.objects.filter(clinic=clinic)
            .order_by("starts_at", "chair__name")
            .values_list("starts_at", "chair__name", "number", "status", "confirmed_at", "created_at")
        )

    assert shape(again.clinic) == shape(history.clinic)
    assert again.message_statuses == history.message_statuses
