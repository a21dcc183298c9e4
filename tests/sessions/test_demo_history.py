"""The demo's past four weeks (sessions/demo_history.py): visits where booking would have put them,
with what became of each, written on the first seeding only."""

from collections import Counter, defaultdict
from datetime import time, timedelta

import pytest

from sessions.clock import dates_between, local_date
from sessions.demo import demo_seed
from sessions.models import Patient, Series, Session, Weekday

pytestmark = pytest.mark.django_db

Status = Session.Status


def test_every_open_day_of_the_four_weeks_before_today_has_four_to_seven_visits_in_opening_hours(now):
    seed = demo_seed(now=now)
    zone = seed.clinic.zone
    today = local_date(now, zone)

    days = Counter(local_date(s.starts_at, zone) for s in seed.history)
    # The clinic opens Monday to Saturday; with today, these are the Reports page's default 28 days.
    open_days = [d for d in dates_between(today - timedelta(days=27), today - timedelta(days=1))
                 if d.weekday() != Weekday.SUNDAY]  # fmt: skip
    assert sorted(days) == open_days
    assert all(4 <= n <= 7 for n in days.values())
    for session in seed.history:
        starts, ends = session.starts_at.astimezone(zone), session.ends_at.astimezone(zone)
        assert time(8) <= starts.time() and ends.time() <= time(18) and ends.date() == starts.date()
        assert starts.minute % seed.clinic.slot_minutes == 0


def test_no_two_past_visits_share_a_chair_or_a_patient_and_no_slot_takes_more_starts_than_the_cap(now):
    seed = demo_seed(now=now)

    by_chair, by_patient = defaultdict(list), defaultdict(list)
    for session in seed.history:
        by_chair[session.chair_id].append((session.starts_at, session.chair_free_at))
        by_patient[session.patient_id].append((session.starts_at, session.ends_at))
    for spans in [*by_chair.values(), *by_patient.values()]:
        spans.sort()
        assert all(later[0] >= earlier[1] for earlier, later in zip(spans, spans[1:], strict=False))
    starts = Counter(s.starts_at for s in seed.history)
    assert max(starts.values()) <= seed.clinic.max_starts_per_slot
    # New patients only: the demo's own keep their visits (and rule 10's look back) to themselves.
    past_patients = {s.patient_id for s in seed.history}
    assert not Session.objects.exclude(pk__in=[s.pk for s in seed.history]).filter(patient__in=past_patients).exists()


def test_the_visits_ended_as_a_clinic_s_past_does(now):
    seed = demo_seed(now=now)
    history = seed.history
    statuses = Counter(s.status for s in history)

    assert set(statuses) == {Status.COMPLETED, Status.NO_SHOW, Status.CANCELLED}
    assert 0.03 <= statuses[Status.NO_SHOW] / len(history) <= 0.07
    assert 0.06 <= statuses[Status.CANCELLED] / len(history) <= 0.10
    for session in history:
        if session.status == Status.COMPLETED:
            assert abs(session.chair_in_at - session.starts_at) <= timedelta(minutes=15)
            assert abs(session.chair_out_at - session.ends_at) <= timedelta(minutes=30)
        else:
            assert session.chair_in_at is None and session.status_changed_at is not None
        if session.confirmed_at is not None:
            assert timedelta(days=1) <= session.starts_at - session.confirmed_at <= timedelta(days=3)
            assert session.confirmed_via in (Session.Channel.SMS, Session.Channel.LINK)
    cancelled = [s for s in history if s.status == Status.CANCELLED]
    late = [s for s in cancelled if s.starts_at - s.status_changed_at < timedelta(hours=24)]
    assert 2 <= len(late) < len(cancelled)
    assert 0.55 <= sum(s.confirmed_at is not None for s in history) / len(history) <= 0.80
    for series in {s.series for s in history}:
        first = min(s.starts_at for s in history if s.series == series)
        assert timedelta(days=1) < first - series.created_at < timedelta(days=32)


def test_four_inductions_finished_in_the_four_weeks_one_with_a_long_gap_one_with_a_visit_missed(now):
    seed = demo_seed(now=now)
    zone = seed.clinic.zone
    inductions = Series.objects.filter(sessions__in=seed.history, protocol__name="Depression induction").distinct()

    outcomes = []
    for series in inductions:
        assert series.status == Series.Status.COMPLETED
        visits = list(series.sessions.order_by("starts_at"))
        days = [local_date(s.starts_at, zone) for s in visits]
        gaps = [(b - a).days for a, b in zip(days, days[1:], strict=False)]
        missed = [s.number for s in visits if s.status == Status.NO_SHOW]
        assert len(visits) == 6 and len({s.chair_id for s in visits}) == 1
        outcomes.append((all(1 <= gap <= 4 for gap in gaps), missed))
    assert sorted(outcomes) == [(False, []), (True, []), (True, []), (True, [3])]


def test_the_past_is_written_once_even_when_seeded_again_on_a_later_day(now):
    demo_seed(now=now)
    counts = (Patient.objects.count(), Series.objects.count(), Session.objects.count())

    again = demo_seed(now=now + timedelta(days=1))

    assert again.history == []
    assert (Patient.objects.count(), Series.objects.count(), Session.objects.count()) == counts
