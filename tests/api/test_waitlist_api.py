"""The waitlist through the API: join, list in rank order, candidates for a freed time, book one,
remove; bad input names the field, and another clinic's entries are out of reach."""

from datetime import datetime

import pytest
from django.contrib.auth.models import Group, User
from rest_framework.test import APIClient

from sessions.models import WaitlistEntry
from tests.api.conftest import day_ahead
from tests.factories import clinic_make, patient_make, protocol_make

pytestmark = pytest.mark.django_db


def join(api, patient, protocol, day, **more):
    body = {"patient": patient.pk, "protocol": protocol.pk, "earliest": day.isoformat(), "latest": day.isoformat()}
    return api.post("/api/waitlist/", {**body, **more}, format="json")


def test_join_list_candidates_and_book(scheduler_api, clinic, booster, freed):
    day = day_ahead(clinic)
    later = join(scheduler_api, patient_make(clinic, first_name="Later"), booster, day)
    urgent = join(scheduler_api, patient_make(clinic, first_name="Urgent"), booster, day,
                  needed_by=day.isoformat(), weekdays=["mon", "tue", "wed", "thu", "fri", "sat", "sun"])  # fmt: skip

    assert later.status_code == urgent.status_code == 201, later.content
    assert urgent.json()["wish"] == "a Booster series" and len(urgent.json()["weekdays"]) == 7
    rows = scheduler_api.get("/api/waitlist/").json()["results"]
    assert {row["id"] for row in rows} == {later.json()["id"], urgent.json()["id"]}
    candidates = scheduler_api.get("/api/waitlist/candidates", {"session": freed.pk}).json()
    assert [c["entry"]["id"] for c in candidates] == [urgent.json()["id"], later.json()["id"]]

    url = f"/api/waitlist/{urgent.json()['id']}/book"
    booked = scheduler_api.post(url, {"starts_at": freed.starts_at.isoformat(), "chair": freed.chair_id}, format="json")
    again = scheduler_api.post(url, {"starts_at": freed.starts_at.isoformat()}, format="json")

    assert booked.status_code == 201, booked.content
    assert datetime.fromisoformat(booked.json()["sessions"][0]["starts_at"]) == freed.starts_at
    assert (again.status_code, again.json()["code"]) == (409, "waitlist_closed")
    removed = scheduler_api.post(f"/api/waitlist/{later.json()['id']}/remove", format="json")
    assert removed.json()["status"] == "removed"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"latest": "2001-01-01"}, "latest"),
        ({"latest": "next week"}, "latest"),
        ({"weekdays": ["someday"]}, "weekdays"),
        ({"protocol": None}, "protocol"),
        ({"protocol": 999_999}, "protocol"),
        ({"patient": "x"}, "patient"),
        ({"not_before": "15:00", "not_after": "09:00"}, "not_after"),
        ({"note": "x" * 400}, "note"),
    ],
)
def test_bad_waitlist_input_names_the_field(scheduler_api, clinic, booster, changes, field):
    day = day_ahead(clinic)
    body = {"patient": patient_make(clinic).pk, "protocol": booster.pk, "earliest": day.isoformat(),
            "latest": day.isoformat(), **changes}  # fmt: skip

    answer = scheduler_api.post("/api/waitlist/", body, format="json")

    assert answer.status_code == 400, answer.content
    assert field in answer.json(), answer.json()
    assert not WaitlistEntry.objects.exists()


def test_another_clinics_entries_are_out_of_reach(clinic, booster):
    elsewhere = clinic_make(name="Elsewhere")
    theirs = WaitlistEntry.objects.create(
        clinic=elsewhere, patient=patient_make(elsewhere), protocol=protocol_make(elsewhere, kind="booster"),
        earliest=day_ahead(clinic), latest=day_ahead(clinic),
    )  # fmt: skip
    user = User.objects.create_user(username="limited")
    user.groups.add(Group.objects.get(name="Scheduler"), Group.objects.get_or_create(name=f"clinic:{clinic.pk}")[0])
    api = APIClient()
    api.force_authenticate(user)

    assert api.get(f"/api/waitlist/{theirs.pk}/").status_code == 404
    assert api.post(f"/api/waitlist/{theirs.pk}/remove").status_code == 404
    assert api.get("/api/waitlist/").json()["results"] == []
    answer = join(api, patient_make(clinic), protocol_make(elsewhere, kind="booster", name="Theirs"), day_ahead(clinic))
    assert answer.status_code == 400 and "protocol" in answer.json()
