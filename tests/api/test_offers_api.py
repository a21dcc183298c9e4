"""Offers through the API: staff offer a cancelled session's chair time to one waiting patient
(as the tick would), list the offers with their state; a second offer, another clinic's entry
or a session that freed nothing is refused naming the rule or the field."""

from datetime import datetime, time

import pytest
from django.contrib.auth.models import Group, User
from rest_framework.test import APIClient

from notifications.models import Message
from sessions.models import Offer
from sessions.services import series_book
from sessions.waitlist import waitlist_join
from tests.api.conftest import day_ahead
from tests.factories import clinic_make, patient_make, protocol_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def entry(clinic, booster):
    day = day_ahead(clinic)
    return waitlist_join(patient=patient_make(clinic, first_name="Hopeful"), protocol=booster, earliest=day, latest=day)


def test_staff_offer_a_freed_time_by_hand_and_see_its_state(scheduler_api, clinic, freed, entry):
    made = scheduler_api.post("/api/offers/", {"entry": entry.pk, "session": freed.pk}, format="json")
    again = scheduler_api.post("/api/offers/", {"entry": entry.pk, "session": freed.pk}, format="json")

    assert made.status_code == 201, made.content
    assert (made.json()["status"], made.json()["freed_by"], made.json()["patient"]) == (
        "offered",
        freed.pk,
        entry.patient_id,
    )
    assert datetime.fromisoformat(made.json()["starts_at"]) == freed.starts_at
    assert set(Message.objects.filter(offer_id=made.json()["id"]).values_list("channel", flat=True)) <= {"sms", "email"}
    assert (again.status_code, again.json()["code"]) == (409, "offer_not_made")
    assert "offered this time already" in again.json()["detail"]
    listed = scheduler_api.get("/api/offers/", {"session": freed.pk, "status": "offered"}).json()["results"]
    assert [row["id"] for row in listed] == [made.json()["id"]]


@pytest.mark.parametrize(("body", "field"), [({"session": 999_999}, "session"), ({"entry": "x"}, "entry")])
def test_bad_offer_input_names_the_field(scheduler_api, freed, entry, body, field):
    answer = scheduler_api.post("/api/offers/", {"entry": entry.pk, "session": freed.pk, **body}, format="json")

    assert answer.status_code == 400 and field in answer.json(), answer.content
    assert not Offer.objects.exists()


def test_a_session_that_freed_nothing_is_refused(scheduler_api, clinic, booster, entry):
    start = datetime.combine(day_ahead(clinic), time(12))
    booked = series_book(patient=patient_make(clinic), protocol=booster, starts=[start]).sessions.get()

    answer = scheduler_api.post("/api/offers/", {"entry": entry.pk, "session": booked.pk}, format="json")

    assert answer.status_code == 400 and "session" in answer.json()


def test_another_clinics_offers_and_entries_are_out_of_reach(clinic, freed, entry):
    elsewhere = clinic_make(name="Elsewhere")
    theirs = waitlist_join(
        patient=patient_make(elsewhere), protocol=protocol_make(elsewhere, kind="booster"),
        earliest=day_ahead(elsewhere), latest=day_ahead(elsewhere),
    )  # fmt: skip
    mine = APIClient()
    mine.force_authenticate(_limited_scheduler(clinic, "mine"))
    theirs_api = APIClient()
    theirs_api.force_authenticate(_limited_scheduler(elsewhere, "theirs"))
    made = mine.post("/api/offers/", {"entry": entry.pk, "session": freed.pk}, format="json").json()

    assert theirs_api.get("/api/offers/").json()["results"] == []
    assert theirs_api.get(f"/api/offers/{made['id']}/").status_code == 404
    refused = mine.post("/api/offers/", {"entry": theirs.pk, "session": freed.pk}, format="json")
    assert refused.status_code == 400 and "entry" in refused.json()
    assert theirs_api.get("/api/messages/").json()["results"] == []


def _limited_scheduler(clinic, name: str) -> User:
    user = User.objects.create_user(username=name)
    user.groups.add(Group.objects.get(name="Scheduler"), Group.objects.get_or_create(name=f"clinic:{clinic.pk}")[0])
    return user
