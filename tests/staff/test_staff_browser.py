"""The staff pages in a real browser: Debian's Chromium driven by Playwright against pytest-django's
live server. A scheduler signs in, books a six-session series from the page, finds it on the
board, moves one session and cancels another, and reads the messages on the patient page.
Screenshots of each page land in docs/screenshots/ for the README."""

from datetime import date, datetime, time, timedelta
from pathlib import Path
from unittest import mock

import pytest
from django.db import connections
from django.test import TestCase
from django.utils import timezone
from playwright.sync_api import sync_playwright

from notifications import sending
from notifications.demo import demo_history_messages
from notifications.inbound import Incoming, inbound_handle
from notifications.models import Message, StaffFlag
from sessions.clock import local_date
from sessions.demo import DEMO_PASSWORD, DEMO_USERNAME, demo_seed
from sessions.models import Clinic, Patient, Protocol, Series, Session
from sessions.services import series_book, session_confirm
from tests.factories import patient_make

from .builders import CHROMIUM, CHROMIUM_ARGS

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("quiet_browser_run"),
]


def busy_wednesday(clinic: Clinic) -> date:
    """The Wednesday after the demo's first Monday: three demo series meet there."""
    today = local_date(timezone.now(), clinic.zone)
    ahead = (0 - today.weekday()) % 7
    monday = today + timedelta(days=ahead if ahead >= 2 else ahead + 7)
    return monday + timedelta(days=2)


def fill_the_day(clinic: Clinic, day: date) -> None:
    """A few more patients on the day, one confirmed with a driver, one whose text failed, one
    who opted out, so the board shows what a real day looks like."""
    booster = Protocol.objects.get(clinic=clinic, name="Booster")
    people = [("Noah", "Patel", 8, 0), ("Emma", "Kowalski", 10, 30), ("Liam", "Okafor", 12, 15),
              ("Zoe", "Martin", 14, 0)]  # fmt: skip
    for n, (first, last, hour, minute) in enumerate(people):
        patient = patient_make(clinic, first_name=first, last_name=last, external_id=f"DB-20{n:02d}")
        series_book(patient=patient, protocol=booster, first_start=datetime.combine(day, time(hour, minute)))
    noah = Session.objects.get(patient__first_name="Noah")
    session_confirm(session=noah, via=Session.Channel.SMS, driver_confirmed=True)
    Message.objects.filter(session__patient__first_name="Emma", purpose="booked", channel="sms").update(
        status=Message.Status.FAILED, reason="Twilio 400 21211", provider_error="21211"
    )
    Patient.objects.filter(first_name="Liam").update(sms_opted_out_at=timezone.now())


def send_what_is_due() -> None:
    """One reminder tick and the sends it hands out, in this process (no worker runs here)."""
    handed: list[int] = []
    with (
        mock.patch.object(sending, "_enqueue", side_effect=handed.extend),
        TestCase.captureOnCommitCallbacks(execute=True),
    ):
        sending.reminder_tick()
    for message_id in handed:
        sending.message_send(message_id=message_id)


def test_a_scheduler_books_moves_and_cancels_from_the_pages(live_server):
    seed = demo_seed()
    demo_history_messages(sessions=seed.history)
    clinic = seed.clinic
    # Texts may go out at any hour of the test run; the outbox then shows the whole loop.
    Clinic.objects.filter(pk=clinic.pk).update(message_window_start=time(0), message_window_end=time(23, 59))
    day = busy_wednesday(clinic)
    fill_the_day(clinic, day)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{live_server.url}/staff/")
        page.get_by_label("Username").fill(DEMO_USERNAME)
        page.get_by_label("Password").fill(DEMO_PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("heading", name=timezone.now().astimezone(clinic.zone).strftime("%A")).wait_for()

        page.get_by_role("link", name="Book a series").first.click()
        page.get_by_label("Find a patient").fill("Casey")
        page.get_by_role("button", name="Search").click()
        page.get_by_role("link", name="Book for Casey").click()
        page.get_by_label("Protocol").select_option(label="Depression induction")
        page.get_by_label("First session").fill(f"{day.isoformat()}T09:30")
        page.get_by_role("button", name="Preview").click()
        page.get_by_text("All 6 sessions of Depression induction fit.").wait_for()
        assert page.locator("table.plan tbody tr.ok").count() == 6
        page.screenshot(path=SCREENSHOTS / "staff-book-preview.png", full_page=True)
        # One day's time changed by hand (the inputs sit outside the form they post with).
        page.get_by_text("Change a day or time").click()
        fifth = page.get_by_label("Session 5", exact=True)
        fifth_day = fifth.input_value()[:10]
        fifth.fill(f"{fifth_day}T11:00")
        page.get_by_role("button", name="Preview these times").click()
        page.get_by_text("All 6 sessions of Depression induction fit.").wait_for()
        assert page.locator("table.plan tbody tr").nth(4).locator("td").nth(2).inner_text().startswith("11:00")
        page.get_by_role("button", name="Book series").click()
        page.get_by_text("Booked Depression induction for Casey Brooks").wait_for()
        send_what_is_due()  # the booking confirmations: a move or a cancellation is then told too

        series = Series.objects.get(patient__first_name="Casey")
        first, second, third = series.sessions.order_by("number")[:3]
        fifth_booked = clinic.local(series.sessions.get(number=5).starts_at)
        assert (fifth_booked.date().isoformat(), fifth_booked.time()) == (fifth_day, time(11))
        page.goto(f"{live_server.url}/staff/board/{clinic.pk}/?date={day.isoformat()}")
        card = page.locator("a.card", has_text="Casey Brooks")
        assert "09:30 · 1/6" in card.inner_text()
        page.screenshot(path=SCREENSHOTS / "staff-board.png", full_page=True)
        page.set_viewport_size({"width": 820, "height": 1100})
        page.screenshot(path=SCREENSHOTS / "staff-board-tablet.png", full_page=True)
        page.set_viewport_size({"width": 1280, "height": 900})

        # The week: from the day board, each day with Casey's first visits listed under it.
        page.get_by_role("link", name="Week", exact=True).click()
        page.get_by_role("heading", name=f"{day:%a} {day.day} {day:%b}").wait_for()
        assert page.locator(".week-day", has_text="Casey Brooks").count() >= 2
        page.set_viewport_size({"width": 1600, "height": 900})
        page.screenshot(path=SCREENSHOTS / "staff-week.png", full_page=True)
        page.set_viewport_size({"width": 1280, "height": 900})

        page.goto(f"{live_server.url}/staff/sessions/{second.pk}/move/")
        page.locator("label.slot", has_text="13:00").first.click()
        wanted = page.get_by_role("radio", checked=True).get_attribute("value")
        page.get_by_label("Reason").fill("Patient asked for the afternoon")
        page.screenshot(path=SCREENSHOTS / "staff-move.png", full_page=True)
        page.get_by_role("button", name="Move session").click()
        page.get_by_text("Casey Brooks: session 2 moved to").wait_for()

        third_day = third.clinic.local(third.starts_at).date()
        page.goto(f"{live_server.url}/staff/board/{clinic.pk}/?date={third_day.isoformat()}")
        row = page.locator(f"#s-{third.pk}")
        row.get_by_text("Cancel…").click()
        row.get_by_placeholder("Reason, e.g. patient called").fill("Away that week")
        row.get_by_role("button", name="Cancel session").click()
        page.get_by_text("Casey Brooks: session 3 cancelled.").wait_for()

        send_what_is_due()
        page.goto(f"{live_server.url}/staff/patients/{series.patient_id}/")
        messages = page.locator("section", has=page.get_by_role("heading", name="Messages"))
        for purpose in ("Booking confirmation", "Reminder", "Moved notice"):
            assert messages.get_by_text(purpose).count() > 0, purpose
        # Session 3's reminders were withdrawn; the patient had not been told of it, so no notice.
        for status in ("Sent", "Planned", "session moved", "session cancelled"):
            assert messages.get_by_text(status).count() > 0, status
        page.screenshot(path=SCREENSHOTS / "staff-patient.png", full_page=True)

        avery = Patient.objects.get(first_name="Avery")
        inbound_handle(incoming=Incoming(sid="SMdemo1", from_number=avery.phone, to_number="",
                                         body="Can my sister drive me instead of my husband?"))  # fmt: skip
        StaffFlag.objects.create(
            patient=Patient.objects.get(first_name="Emma"),
            kind=StaffFlag.Kind.DELIVERY_FAILED,
            detail="Text failed (carrier code 21211).",
        )
        page.goto(f"{live_server.url}/staff/inbox/")
        page.get_by_text("Can my sister drive me").wait_for()
        page.screenshot(path=SCREENSHOTS / "staff-inbox.png", full_page=True)
        page.goto(f"{live_server.url}/staff/outbox/")
        page.screenshot(path=SCREENSHOTS / "staff-outbox.png", full_page=True)
        # The demo's four weeks of past visits: the Reports page as a manager first sees it.
        page.get_by_role("link", name="Reports").click()
        page.get_by_role("heading", name="Attendance by weekday").wait_for()
        page.screenshot(path=SCREENSHOTS / "staff-reports.png", full_page=True)
        browser.close()
        # Reads made inside Playwright's loop got a connection of their own: close it here.
        connections.close_all()

    second.refresh_from_db()
    third.refresh_from_db()
    assert f"{second.chair_id}@{second.starts_at.isoformat()}" == wanted
    assert second.moves.get().reason == "Patient asked for the afternoon"
    assert (third.status, third.cancellation_reason) == (Session.Status.CANCELLED, "Away that week")
    assert first.pk in {s.pk for s in series.sessions.filter(status=Session.Status.BOOKED)}
