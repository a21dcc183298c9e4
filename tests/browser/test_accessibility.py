"""WCAG 2.2 AA on every staff and patient page, as axe-core 4.12 finds it in Debian's Chromium:
no serious or critical violation. The pages are the demo clinic's, with a day's board, a week,
patients (one Spanish), a preview, a move and a re-flow, the inbox and outbox, and the patient
link on a phone in English and Spanish."""

from datetime import timedelta
from pathlib import Path

import pytest
from axe_playwright_python.base import AXE_FILE_PATH
from django.utils import timezone
from playwright.sync_api import Page, sync_playwright

from notifications.inbound import Incoming, inbound_handle
from notifications.links import link_create
from sessions.clock import local_date
from sessions.demo import DEMO_PASSWORD, DEMO_USERNAME, demo_seed
from sessions.models import Offer, Opening, Patient, Protocol, Recall, Session, WaitlistEntry
from sessions.services import session_cancel
from tests.staff.builders import CHROMIUM, CHROMIUM_ARGS

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# WCAG 2.0, 2.1 and 2.2, levels A and AA.
WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]


def serious_violations(page: Page) -> list[str]:
    """Each serious or critical violation on the page, as "rule: selector — what is wrong"."""
    page.add_script_tag(path=str(AXE_FILE_PATH))
    found = page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}}).then(r => r.violations)", WCAG_AA
    )
    return [
        f"{v['id']}: {', '.join(node['target'][0] for node in v['nodes'][:3])} — {v['help']}"
        for v in found
        if v["impact"] in ("serious", "critical")
    ]


def test_every_staff_and_patient_page_has_no_serious_violation(live_server):
    seed = demo_seed()
    clinic = seed.clinic
    lucia = Patient.objects.get(first_name="Lucía")
    session = Session.objects.filter(patient=lucia).order_by("starts_at").first()
    english = Session.objects.filter(patient__first_name="Avery").order_by("starts_at").first()
    inbound_handle(incoming=Incoming(sid="SMa11y", from_number=lucia.phone, to_number="", body="Llego tarde"))
    today = local_date(timezone.now(), clinic.zone)
    busy = english.starts_at.astimezone(clinic.zone).date()
    # Morgan's booster, cancelled: its chair time is offered to the waitlist (Casey waits in the demo).
    freed = session_cancel(session=Session.objects.filter(patient__first_name="Morgan").first(), reason="travelling")
    casey = WaitlistEntry.objects.get(patient__first_name="Casey")
    offer = Offer.objects.create(
        clinic=clinic, opening=Opening.objects.get(freed_by=freed), entry=casey, patient=casey.patient,
        expires_at=timezone.now() + timedelta(hours=1), created_at=timezone.now(),
    )  # fmt: skip
    booster = Protocol.objects.get(clinic=clinic, name="Booster")
    recall = Recall.objects.create(
        clinic=clinic, patient=lucia, series=session.series, protocol=booster, due_on=today + timedelta(days=3)
    )
    staff_pages = {
        "board today": f"/staff/board/{clinic.pk}/",
        "board": f"/staff/board/{clinic.pk}/?date={busy}",
        "week": f"/staff/board/{clinic.pk}/week/?date={today + timedelta(days=7)}",
        "patients": "/staff/patients/",
        "patient": f"/staff/patients/{lucia.pk}/",
        "book": "/staff/book/",
        "book series": f"/staff/book/{lucia.pk}/",
        "move": f"/staff/sessions/{english.pk}/move/",
        "reflow": f"/staff/sessions/{english.pk}/reflow/",
        "inbox": "/staff/inbox/",
        "outbox": "/staff/outbox/",
        "two-factor": "/staff/two-factor/",
        "waitlist": "/staff/waitlist/",
        "recalls": "/staff/recalls/",
        "fill from waitlist": f"/staff/sessions/{freed.pk}/fill/",
        "reports": f"/staff/reports/?clinic={clinic.pk}&first={today - timedelta(days=27)}&last={busy}",
    }
    patient_pages = {
        "link (es)": f"/r/{link_create(session=session)}",
        "link": f"/r/{link_create(session=english)}",
        "link not available": "/r/not-a-token",
        "offer": f"/r/{link_create(offer=offer)}",
        "recall (es)": f"/r/{link_create(recall=recall)}",
    }
    found: dict[str, list[str]] = {}

    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        # axe is injected as a script: the pages' CSP forbids that, rightly, so the test bypasses it.
        desk = browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
        desk.goto(f"{live_server.url}/staff/login/")
        found["login"] = serious_violations(desk)
        desk.get_by_label("Username").fill(DEMO_USERNAME)
        desk.get_by_label("Password").fill(DEMO_PASSWORD)
        desk.get_by_role("button", name="Sign in").click()
        desk.wait_for_url(f"**/staff/board/{clinic.pk}/")
        for name, path in staff_pages.items():
            desk.goto(f"{live_server.url}{path}")
            found[name] = serious_violations(desk)
        # The first Tab reaches a link past the header's links, straight to the page's content.
        desk.goto(f"{live_server.url}{staff_pages['board']}")
        desk.keyboard.press("Tab")
        assert desk.evaluate("document.activeElement.textContent") == "Skip to content"
        desk.keyboard.press("Enter")
        assert desk.evaluate("document.activeElement.id") == "main"
        desk.locator("details.minical summary").click()
        found["board, month open"] = serious_violations(desk)
        desk.screenshot(path=SCREENSHOTS / "staff-board-month.png")
        desk.goto(f"{live_server.url}/staff/book/{lucia.pk}/")
        desk.get_by_label("Protocol").select_option(label="Booster")
        desk.get_by_label("First session").fill(f"{today + timedelta(days=20)}T10:00")
        desk.get_by_role("button", name="Preview").click()
        desk.locator("table.plan").wait_for()
        found["book series preview"] = serious_violations(desk)
        desk.get_by_text("Change a day or time").click()
        found["book series, times edited"] = serious_violations(desk)

        phone = browser.new_page(
            viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True, bypass_csp=True
        )
        for name, path in patient_pages.items():
            phone.goto(f"{live_server.url}{path}")
            found[name] = serious_violations(phone)
            if name == "link (es)":
                phone.screenshot(path=SCREENSHOTS / "patient-link-es.png", full_page=True)
            if name == "offer":
                phone.screenshot(path=SCREENSHOTS / "patient-offer.png", full_page=True)
            phone.goto(f"{live_server.url}{path}?step=move")
            found[f"{name}, new time"] = serious_violations(phone)
        browser.close()

    report = [f"{page}: {problem}" for page, problems in found.items() for problem in problems]
    assert not report, "\n".join(report)
