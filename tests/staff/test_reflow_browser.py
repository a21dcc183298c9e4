"""Gap watch and re-flow in a real browser (Debian's Chromium driven by Playwright against
pytest-django's live server): a scheduler cancels session 3 of a six-session induction, sees the
gap warning on the patient page, books a make-up that can only come on session 4's day, commits
the re-flow that pushes session 4 and those after it, and the patient's link for session 4 then
shows its new time."""

from datetime import datetime, time, timedelta

import pytest
from django.db import connections
from playwright.sync_api import expect, sync_playwright

from notifications.links import link_create
from notifications.patient_text import day_text, time_text
from sessions.models import Session
from sessions.services import series_book

from .builders import CHROMIUM, CHROMIUM_ARGS, PASSWORD, staff_user

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("quiet_browser_run"),
]


def test_a_scheduler_makes_up_a_cancelled_session_and_the_patient_link_shows_the_new_time(
    live_server, clinic, induction, patient, later
):
    staff_user("Scheduler", username="frontdesk")
    series = series_book(patient=patient, protocol=induction, first_start=datetime.combine(later, time(9)))
    third, fourth = series.sessions.get(number=3), series.sessions.get(number=4)
    # Session 4's day, the only day the patient can come back: session 4 must make room.
    makeup_day = later + timedelta(days=3)
    token = link_create(session=fourth)
    link = f"{live_server.url}/r/{token}"

    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        patient_view = browser.new_page()
        patient_view.goto(link)
        expect(patient_view.locator(".day").first).to_contain_text(day_text(makeup_day, "en"))

        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{live_server.url}/staff/login/")
        page.get_by_label("Username").fill("frontdesk")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("heading", name="Chairs").wait_for()

        page.goto(f"{live_server.url}/staff/board/{clinic.pk}/?date={(later + timedelta(days=2)).isoformat()}")
        row = page.locator(f"#s-{third.pk}")
        row.get_by_text("Cancel…").click()
        row.get_by_placeholder("Reason, e.g. patient called").fill("Away that day")
        row.get_by_role("button", name="Cancel session").click()
        page.get_by_text(f"{patient}: session 3 cancelled.").wait_for()

        page.locator(f"#s-{third.pk}").get_by_role("link", name=str(patient)).click()
        warning = page.get_by_role("note", name="Depression induction is off protocol")
        expect(warning).to_contain_text("Session 3 cancelled: rebook it")
        warning.get_by_role("link", name="Book a make-up for session 3").click()

        page.get_by_role("heading", name="Book a make-up for session 3").wait_for()
        page.get_by_label("New time").fill(f"{makeup_day.isoformat()}T09:00")
        page.get_by_role("button", name="Preview the new times").click()
        preview = page.get_by_role("table", name="Re-flow preview")
        expect(preview.locator("tbody tr")).to_have_count(4)
        expect(preview.locator("tbody tr").nth(0)).to_contain_text("new make-up")
        expect(preview.locator("tbody tr").nth(1)).to_contain_text("Moves")
        page.get_by_role("button", name="Book the make-up and re-space").click()
        page.get_by_text(f"{patient}: session 3 made up on").wait_for()
        expect(page.get_by_role("note", name="Depression induction is off protocol")).to_have_count(0)

        fourth.refresh_from_db()
        moved_to = fourth.clinic.local(fourth.starts_at)
        patient_view.goto(link)
        expect(patient_view.locator(".day").first).to_contain_text(day_text(moved_to, "en"))
        expect(patient_view.locator(".hours").first).to_contain_text(time_text(moved_to, "en"))
        browser.close()
        # Reads made inside Playwright's loop got a connection of their own: close it here.
        connections.close_all()

    assert moved_to.date() == makeup_day + timedelta(days=1)
    makeup = series.sessions.get(number=3, status=Session.Status.BOOKED)
    assert makeup.makeup_for_id == third.pk
    assert makeup.clinic.local(makeup.starts_at).date() == makeup_day
