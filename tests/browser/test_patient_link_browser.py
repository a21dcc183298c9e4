"""The patient link in a real phone-sized browser: Debian's Chromium driven by Playwright, against
pytest-django's live server. It confirms with the driver box, then moves the visit, and leaves
screenshots in docs/screenshots/ for the README."""

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import sync_playwright

from notifications.links import link_create
from notifications.patient_text import when_text
from sessions.clock import local_date, wall_clock
from sessions.models import AuditEvent, Session
from sessions.services import series_book
from tests.factories import clinic_make, patient_make, protocol_make

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
]


def visit_link() -> tuple[Session, str]:
    """Session 3 of 6, two days apart from three days on, and a link to it."""
    clinic = clinic_make(chairs=2, address="1 Main St, Phoenix AZ 85004", sender_name="Desert Wellness")
    protocol = protocol_make(
        clinic,
        kind="induction",
        fasting_hours=4,
        driver_required=True,
        preparation_instructions="Wear comfortable clothes and bring a list of your medicines.",
    )
    today = local_date(timezone.now(), clinic.zone)
    starts = [
        wall_clock(today + timedelta(days=3 + 2 * n), datetime.min.time().replace(hour=10), clinic.zone)
        for n in range(6)
    ]
    series = series_book(patient=patient_make(clinic, first_name="Maria"), protocol=protocol, starts=starts)
    session = series.sessions.get(number=3)
    return session, link_create(session=session)


def test_a_patient_confirms_then_moves_the_visit_on_a_phone(live_server):
    session, token = visit_link()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    with sync_playwright() as driver:
        browser = driver.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        phone = browser.new_context(
            viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True
        )
        page = phone.new_page()
        page.goto(f"{live_server.url}/r/{token}")
        assert page.get_by_text("Visit 3 of 6").is_visible()
        page.screenshot(path=SCREENSHOTS / "patient-link-overview.png", full_page=True)

        page.get_by_label("I have arranged a driver to take me home").check()
        page.get_by_role("button", name="Confirm my visit").click()
        page.get_by_text("Thank you. Your visit is confirmed.").wait_for()
        page.screenshot(path=SCREENSHOTS / "patient-link-confirmed.png", full_page=True)

        page.get_by_role("link", name="Choose a new time").click()
        times = page.locator("label.slot")
        assert times.count() > 0
        times.last.click()  # where a finger lands: the time's box
        chosen = page.get_by_role("radio", checked=True)
        wanted = chosen.get_attribute("value")
        page.screenshot(path=SCREENSHOTS / "patient-link-slots.png", full_page=True)

        page.get_by_role("button", name="Move my visit").click()
        page.get_by_text("Please confirm the new time.").wait_for()
        page.screenshot(path=SCREENSHOTS / "patient-link-moved.png", full_page=True)
        browser.close()

    moved = Session.objects.get(pk=session.pk)
    assert moved.starts_at == datetime.fromisoformat(wanted)
    assert moved.status == Session.Status.BOOKED  # the new time needs confirming again
    assert list(AuditEvent.objects.filter(session=session).order_by("at", "id").values_list("action", "via")) == [
        ("confirmed", Session.Channel.LINK),
        ("moved", Session.Channel.LINK),
    ]


def test_a_patient_moves_a_visit_and_re_spaces_the_later_ones_on_a_phone(live_server):
    session, token = visit_link()
    session.clinic.patients_may_reflow = True
    session.clinic.save()
    fourth = session.series.sessions.get(number=4)

    with sync_playwright() as driver:
        browser = driver.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True).new_page()
        page.goto(f"{live_server.url}/r/{token}?step=move")
        further = page.locator("#reflow-form label.slot")
        assert further.count() > 0
        further.first.click()
        wanted = page.locator("#reflow-form").get_by_role("radio", checked=True).get_attribute("value")
        page.get_by_role("button", name="See my new times").click()
        page.get_by_role("heading", name="Your new times").wait_for()
        assert page.get_by_text("Visit 4 of 6").is_visible()

        page.get_by_role("button", name="Move and re-space my later visits").click()
        page.get_by_text("Your later visits have new times too").wait_for()
        listed = page.locator("section[aria-labelledby=visits-heading] li").all_inner_texts()
        browser.close()

    moved, fourth_now = Session.objects.get(pk=session.pk), Session.objects.get(pk=fourth.pk)
    assert moved.starts_at == datetime.fromisoformat(wanted)
    assert fourth_now.starts_at > fourth.starts_at  # re-spaced after the moved visit
    new_time = when_text(fourth_now.starts_at.astimezone(session.clinic.zone), "en")
    assert any(line.startswith("Visit 4 of 6") and line.endswith(new_time) for line in listed), listed
