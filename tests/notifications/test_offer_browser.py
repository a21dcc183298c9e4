"""A freed chair, refilled from the waitlist end to end: a scheduler cancels a visit on the day
board in Chromium; the real beat and worker offer the time to the best-ranked waiting patient by
a text through the official twilio client to the fake Twilio; the patient opens the text's link
on a phone and books it; the board then shows their visit in the freed time."""

import re
from datetime import time, timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone
from playwright.sync_api import expect, sync_playwright

from sessions.clock import local_date, wall_clock
from sessions.models import Offer, Session
from sessions.services import series_book
from sessions.waitlist import waitlist_join
from tests.factories import patient_make, protocol_make, staffing_make
from tests.notifications.conftest import always_open_clinic
from tests.processes import wait_until
from tests.staff.builders import CHROMIUM, CHROMIUM_ARGS, PASSWORD, staff_user

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="worker processes share the PostgreSQL test database"),
]
LINK = re.compile(r"https?://\S+/r/[A-Za-z0-9_-]{10,}")
PHONE = {"width": 390, "height": 844}


def test_a_cancelled_visit_is_offered_by_text_and_booked_from_the_phone(
    live_server, processes, twilio, settings, monkeypatch
):
    settings.PUBLIC_BASE_URL = live_server.url
    # The test reads the database between page steps, beside Playwright's event loop.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    clinic = always_open_clinic(chairs=1, sender_name="Harbor Wellness", cancellation_notice_hours=24)
    staffing_make(clinic, nurses=2, per_nurse=4)
    booster = protocol_make(clinic, kind="booster", driver_required=False, fasting_hours=0)
    tomorrow = local_date(timezone.now(), clinic.zone) + timedelta(days=2)
    gone = series_book(
        patient=patient_make(clinic, first_name="Gale", last_name="Away"), protocol=booster,
        starts=[wall_clock(tomorrow, time(10), clinic.zone)],
    ).sessions.get()  # fmt: skip
    waiting = [
        waitlist_join(
            patient=patient_make(clinic, first_name=name, last_name="Waiting", phone=phone, email=""),
            protocol=booster, earliest=tomorrow - timedelta(days=1), latest=tomorrow + timedelta(days=3),
            needed_by=needed_by,
        )
        for name, phone, needed_by in [("Later", "+12125550161", None), ("Rhea", "+12125550162", tomorrow)]
    ]  # fmt: skip
    rhea = waiting[1].patient
    staff_user("Scheduler", username="frontdesk")
    processes("worker", "--pool=threads", "--concurrency=2", PUBLIC_BASE_URL=live_server.url)
    processes("beat", PUBLIC_BASE_URL=live_server.url)

    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        desk = browser.new_page(viewport={"width": 1280, "height": 900})
        desk.goto(f"{live_server.url}/staff/login/")
        desk.get_by_label("Username").fill("frontdesk")
        desk.get_by_label("Password").fill(PASSWORD)
        desk.get_by_role("button", name="Sign in").click()
        desk.get_by_role("heading", name="Chairs").wait_for()
        board = f"{live_server.url}/staff/board/{clinic.pk}/?date={tomorrow.isoformat()}"
        desk.goto(board)
        row = desk.locator(f"#s-{gone.pk}")
        row.get_by_text("Cancel…").click()
        row.get_by_placeholder("Reason, e.g. patient called").fill("Travelling")
        row.get_by_role("button", name="Cancel session").click()
        desk.get_by_text("session 1 cancelled.").wait_for()

        # The next tick offers the time to Rhea, whose deadline is nearest, and texts her.
        wait_until(lambda: twilio.messages_to(rhea.phone), timeout=30, what="the offer text to the first-ranked")
        [text] = twilio.messages_to(rhea.phone)
        assert text.body.startswith("Harbor Wellness: a visit time opened up,")
        assert twilio.messages_to(waiting[0].patient.phone) == []

        phone = browser.new_page(viewport=PHONE, is_mobile=True, has_touch=True)
        phone.goto(LINK.search(text.body)[0])
        expect(phone.get_by_role("heading", level=1)).to_have_text("A time opened up")
        phone.get_by_role("button", name="Book this time").click()
        expect(phone.get_by_role("status")).to_contain_text("It is yours.")
        expect(phone.get_by_role("heading", level=1)).to_have_text("This time is yours")

        desk.goto(board)
        booked = Session.objects.get(patient=rhea)
        expect(desk.locator(f"#s-{booked.pk}")).to_contain_text(str(rhea))
        assert booked.starts_at == gone.starts_at
        assert Offer.objects.get(patient=rhea).status == "accepted"
        browser.close()
        # Reads made inside Playwright's loop got a connection of their own: close it here.
        connections.close_all()
