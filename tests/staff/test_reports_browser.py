"""The reports page in Debian's Chromium: a scheduler signs in, opens Reports, picks the days
and a weekday, reads the figures, and downloads a table as CSV that holds what the page shows.
(The README's screenshot is of the demo clinic's four weeks: tests/staff/test_staff_browser.py.)"""

import csv
import io
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

from .builders import CHROMIUM, CHROMIUM_ARGS, PASSWORD, staff_user
from .reports_fixture import MONDAY, SUNDAY, report_week

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("quiet_browser_run"),
]


def _tile(page: Page, label: str) -> str:
    return page.locator("li.tile", has=page.get_by_text(label, exact=True)).inner_text()


def _table(page: Page, name: str) -> list[list[str]]:
    table = page.locator(f'table[data-table="{name}"]')
    return [[cell.strip() for cell in row.locator("th, td").all_text_contents()] for row in table.locator("tr").all()]


def test_a_scheduler_reads_the_week_and_downloads_a_table(live_server):
    week = report_week()
    staff_user("Scheduler", clinics=(week.clinic,), username="desk")
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        page.goto(f"{live_server.url}/staff/")
        page.get_by_label("Username").fill("desk")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("link", name="Reports").click()
        page.get_by_role("heading", name="Reports", exact=True).wait_for()

        page.get_by_label("From", exact=True).fill(MONDAY.isoformat())
        page.get_by_label("To", exact=True).fill(SUNDAY.isoformat())
        page.get_by_role("button", name="Show").click()
        page.get_by_text("1 of 4 marked visits").wait_for()
        assert "25.0%" in _tile(page, "No-show rate")
        assert "40.0%" in _tile(page, "Confirmed by 24 h before")
        assert page.locator("svg.chart").count() >= 5

        page.get_by_label("Weekday", exact=True).select_option(label="Mon")
        page.get_by_role("button", name="Show").click()
        page.get_by_text("1 of 2 marked visits").wait_for()
        shown = _table(page, "weekday")
        assert shown[1][:4] == ["Mon", "3", "2", "1"] and len(shown) == 2

        section = page.locator("section", has=page.get_by_role("heading", name="Attendance by weekday"))
        with page.expect_download() as download:
            section.get_by_role("link", name="CSV").click()
        rows = list(csv.reader(io.StringIO(Path(download.value.path()).read_text())))
        assert rows == shown
        browser.close()
