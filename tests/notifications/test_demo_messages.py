"""`make run`'s seeding: today's demo visits, booked as of before opening, send nothing late."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command

from notifications.demo import demo_messages_settle
from notifications.models import Message
from sessions.demo import demo_seed

pytestmark = pytest.mark.django_db


def test_reminders_due_before_the_seeding_are_stored_skipped_not_sent_late():
    afternoon = datetime(2026, 1, 5, 14, 0, tzinfo=ZoneInfo("America/Phoenix"))
    seed = demo_seed(now=afternoon)

    demo_messages_settle(sessions=seed.today, now=afternoon)

    today = Message.objects.filter(session__in=seed.today)
    assert not today.filter(status=Message.Status.PLANNED, due_at__lt=afternoon).exists()
    assert today.filter(status=Message.Status.SKIPPED, reason="booked after this reminder was due").exists()
    # The 15:00 visit still to come keeps what is still due: its 2 h text at 13:00 has passed, nothing later is planned.
    later = today.filter(status=Message.Status.PLANNED)
    assert all(m.due_at >= afternoon for m in later)


def test_seeded_at_night_the_visits_are_booked_then_and_their_messages_wait_for_their_time():
    # Before opening the visits are booked at the seeding itself: their confirmations are due then, not late.
    now = datetime(2026, 1, 5, 1, 30, tzinfo=ZoneInfo("America/Phoenix"))
    seed = demo_seed(now=now)

    demo_messages_settle(sessions=seed.today, now=now)

    assert not Message.objects.filter(session__in=seed.today, status=Message.Status.PLANNED, due_at__lt=now).exists()
    assert Message.objects.filter(session__in=seed.today, status=Message.Status.PLANNED).exists()


def test_the_command_seeds_and_settles(settings):
    settings.DEBUG = True
    before = datetime.now(tz=ZoneInfo("UTC"))

    call_command("seed_demo", stdout=None)

    assert (
        not Message.objects.filter(status=Message.Status.PLANNED, due_at__lt=before)
        .filter(session__patient__external_id__startswith="DB-11")
        .exists()
    )
