"""`make run`'s seeding: today's demo visits, booked as of before opening, send nothing late; the
past four weeks' visits have their messages as the sends left them, and give the Reports page
its figures."""

from datetime import datetime, timedelta
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.utils import timezone

from notifications.demo import demo_history_messages, demo_messages_settle
from notifications.models import Channel, ContactStatus, Message, Purpose
from scheduler.reports.figures import Scope, report_build
from scheduler.reports.page import tiles
from sessions.clock import local_date
from sessions.demo import CLINIC_NAME, demo_seed
from sessions.models import Clinic, Patient, Series, Session

Status = Message.Status

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


def test_every_past_visit_has_its_messages_as_the_sends_left_them(now):
    seed = demo_seed(now=now)

    written = demo_history_messages(sessions=seed.history)

    messages = Message.objects.filter(session__in=seed.history)
    assert messages.count() == written > 4 * len(seed.history)
    assert set(messages.values_list("clinic", flat=True)) == {seed.clinic.pk}
    # Nothing of the past is left for the tick to send.
    assert not messages.filter(status__in=[Status.PLANNED, Status.CLAIMED, Status.SENDING]).exists()
    series = {s.series_id for s in seed.history}
    assert set(messages.filter(purpose=Purpose.BOOKED).values_list("session__series", flat=True)) == series
    reminders = messages.filter(purpose=Purpose.REMINDER)
    assert not reminders.filter(rule=None).exists()
    assert {rule.before for rule in seed.clinic.reminder_rules.all()} == {"72 h", "24 h", "2 h"}
    delivered = messages.filter(channel=Channel.SMS, status=Status.DELIVERED)
    assert delivered.count() > reminders.count() / 4
    assert not delivered.filter(sent_at=None).exists() and not delivered.filter(delivered_at=None).exists()
    emails = set(messages.filter(channel=Channel.EMAIL).values_list("status", flat=True))
    assert emails <= {Status.SENT, Status.CANCELLED, Status.SKIPPED}


def test_a_cancelled_visit_s_pending_messages_were_withdrawn_and_the_patient_told(now):
    seed = demo_seed(now=now)
    demo_history_messages(sessions=seed.history)

    for session in [s for s in seed.history if s.status == Session.Status.CANCELLED]:
        messages = Message.objects.filter(session=session)
        after = messages.filter(due_at__gt=session.status_changed_at).exclude(purpose=Purpose.CANCELLED)
        # Withdrawn, but for a text the booking's plan had already skipped (sent by email instead).
        assert set(after.exclude(status=Status.SKIPPED).values_list("status", "reason")) == {
            (Status.CANCELLED, "session cancelled")
        }
        assert not messages.filter(sent_at__gt=session.status_changed_at).exclude(purpose=Purpose.CANCELLED).exists()
        told = messages.filter(sent_at__lt=session.status_changed_at).exists()
        assert messages.filter(purpose=Purpose.CANCELLED).exists() == told


def test_a_number_twilio_refused_fails_once_goes_by_email_and_is_not_texted_again(now):
    seed = demo_seed(now=now)
    demo_history_messages(sessions=seed.history)

    failed = Message.objects.filter(session__in=seed.history, status=Status.FAILED)
    assert failed.count() == 3
    for text in failed:
        assert (text.channel, text.provider_error, text.reason) == (Channel.SMS, "21211", "Twilio 400 21211")
        assert ContactStatus.objects.get(patient=text.patient).sms_problem == ContactStatus.Problem.INVALID
        fallback = Message.objects.get(key=f"fallback-{text.pk}")
        assert (fallback.channel, fallback.status, fallback.purpose) == (Channel.EMAIL, Status.SENT, text.purpose)
        later = Message.objects.filter(patient=text.patient, channel=Channel.SMS, due_at__gt=text.due_at)
        assert not later.filter(status__in=[*Message.WENT_OUT, Status.FAILED]).exists()
        assert later.filter(reason="phone refused earlier: invalid phone number").exists()


def test_texts_that_could_not_go_were_skipped_with_the_service_s_reasons(now):
    seed = demo_seed(now=now)
    demo_history_messages(sessions=seed.history)

    reasons = set(
        Message.objects.filter(session__in=seed.history, status=Status.SKIPPED).values_list("reason", flat=True)
    )
    # Planned by email where a text could not go; met again by the sends where planning could not see.
    assert {"quiet hours: sent by email instead", "text limit (3 a week): sent by email instead",
            "quiet hours in the patient's time zone", "daily text limit (1) reached",
            "phone refused earlier: invalid phone number"} <= reasons  # fmt: skip


def test_the_demo_s_past_gives_the_reports_page_its_figures(settings):
    settings.DEBUG = True
    call_command("seed_demo", stdout=StringIO())
    clinic = Clinic.objects.get(name=CLINIC_NAME)
    today = local_date(timezone.now(), clinic.zone)

    report = report_build(scope=Scope(clinic=clinic, first=today - timedelta(days=27), last=today))

    figures = {tile.label: tile.rate for tile in tiles(report) if tile.rate}
    assert 0.02 <= figures["No-show rate"].value <= 0.10
    assert figures["Late cancels"].numerator >= 2
    assert 0.5 <= figures["Confirmed by 24 h before"].value <= 0.9
    assert 0.1 <= figures["Chairs used"].value <= figures["Chairs scheduled"].value
    assert 0 < figures["Series on protocol"].numerator < figures["Series on protocol"].denominator
    assert figures["Reminder texts delivered"].numerator > 50
    inductions = [o for o in report.series if o.protocol == "Depression induction"]
    assert sorted(o.on_protocol for o in inductions) == [False, False, True, True]


def test_seeding_again_adds_nothing(settings):
    settings.DEBUG = True
    first = StringIO()
    call_command("seed_demo", stdout=first)
    models = (Patient, Series, Session, Message, ContactStatus)
    counts = [model.objects.count() for model in models]
    again = StringIO()

    call_command("seed_demo", stdout=again)

    assert [model.objects.count() for model in models] == counts
    assert "Wrote the past four weeks" in first.getvalue()
    assert "Wrote the past four weeks" not in again.getvalue()
