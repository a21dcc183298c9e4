"""A patient asks on their link to be told of an earlier time: they join the clinic's waitlist for
that visit, from the soonest they may take alone (rule 13) to the day before it, and staff can
then fill a freed earlier time with them."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from notifications.links import link_create
from sessions.clock import local_date
from sessions.models import AuditEvent, Session, WaitlistEntry
from sessions.services import session_cancel
from sessions.waitlist import waitlist_candidates
from tests.factories import clinic_make, patient_make, protocol_make
from tests.notifications.test_patient_link import book, days_ahead, url

pytestmark = pytest.mark.django_db


@pytest.fixture
def clinic():
    return clinic_make(chairs=2, cancellation_notice_hours=24)


@pytest.fixture
def booster(clinic):
    return protocol_make(clinic, kind="booster", driver_required=False)


def messages_on(page) -> str:
    return page.content.decode()


def test_a_patient_joins_the_waitlist_for_an_earlier_time_once(clinic, booster):
    [session] = book(patient_make(clinic), booster, [days_ahead(clinic, 10)])
    token = link_create(session=session)
    client = Client()

    joined = client.post(url(token), {"action": "waitlist"}, follow=True)
    again = client.post(url(token), {"action": "waitlist"}, follow=True)

    entry = WaitlistEntry.objects.get(session=session)
    today = local_date(timezone.now(), clinic.zone)
    assert (entry.status, entry.via, entry.protocol) == ("waiting", Session.Channel.LINK, booster)
    assert entry.earliest in (today + timedelta(days=1), today + timedelta(days=2))  # 24 h of notice from now
    assert entry.latest == local_date(session.starts_at, clinic.zone) - timedelta(days=1)
    assert "We will let you know if an earlier time frees up." in messages_on(joined)
    assert "You are already on the list for an earlier time." in messages_on(again)
    assert 'value="waitlist"' not in messages_on(again)
    assert AuditEvent.objects.filter(action="waitlisted", via="link").count() == 1


def test_a_freed_earlier_time_then_lists_the_patient_for_staff(clinic, booster):
    patient = patient_make(clinic, first_name="Hopeful")
    [session] = book(patient, booster, [days_ahead(clinic, 10)])
    Client().post(url(link_create(session=session)), {"action": "waitlist"})
    [other] = book(patient_make(clinic), booster, [days_ahead(clinic, 4)])
    session_cancel(session=other, reason="patient asked")

    found = waitlist_candidates(clinic=clinic, starts_at=other.starts_at, chair=other.chair, self_service=True)

    assert [c.entry.patient.first_name for c in found] == ["Hopeful"]


def test_a_visit_already_as_soon_as_can_be_taken_offers_no_earlier_time(clinic, booster):
    [session] = book(patient_make(clinic), booster, [days_ahead(clinic, 1)])
    token = link_create(session=session)

    page = Client().get(url(token))
    answer = Client().post(url(token), {"action": "waitlist"}, follow=True)

    assert 'value="waitlist"' not in messages_on(page)
    assert "Your visit is already as soon as can be booked here." in messages_on(answer)
    assert not WaitlistEntry.objects.exists()


def test_the_spanish_page_asks_in_spanish(clinic, booster):
    [session] = book(patient_make(clinic, language="es"), booster, [days_ahead(clinic, 10)])

    page = Client().get(url(link_create(session=session))).content.decode()

    assert "Avíseme si se libera una hora antes" in page
