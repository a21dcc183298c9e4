"""A staff user in a "clinic:<id>" group works through the API in that clinic only: another
clinic's rows are not listed, answer 404 by id, and are refused as ids in a body (400 naming the
field). A user in no such group works in every clinic."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone
from rest_framework.test import APIClient

from notifications.models import Message, ReminderRule
from sessions.models import Session
from sessions.services import series_book
from tests.factories import clinic_make, patient_make, protocol_make

pytestmark = pytest.mark.django_db


def api_for(role: str, *clinics) -> APIClient:
    user = User.objects.create_user(username=f"{role.lower().replace(' ', '_')}-{len(clinics)}-{User.objects.count()}")
    user.groups.add(Group.objects.get(name=role))
    for clinic in clinics:
        user.groups.add(Group.objects.get_or_create(name=f"clinic:{clinic.pk}")[0])
    client = APIClient()
    client.force_authenticate(user)
    return client


class Site:
    """Two clinics, each with a patient booked on a series (and its booking texts planned)."""

    def __init__(self) -> None:
        self.home, self.other = clinic_make(chairs=2), clinic_make(chairs=2)
        self.series = {clinic: self._book(clinic) for clinic in (self.home, self.other)}

    @staticmethod
    def _book(clinic):
        patient = patient_make(clinic, phone="+16025550123", sms_enabled=True)
        protocol = protocol_make(clinic)
        start = (timezone.now() + timedelta(days=3)).astimezone(clinic.zone).replace(hour=9, minute=0, tzinfo=None)
        return series_book(patient=patient, protocol=protocol, first_start=start)

    def session(self, clinic) -> Session:
        return self.series[clinic].sessions.get(number=1)


@pytest.fixture
def site() -> Site:
    return Site()


def ids(response) -> set[int]:
    assert response.status_code == 200, response.content
    body = response.json()
    return {row["id"] for row in (body["results"] if isinstance(body, dict) else body)}


def test_lists_show_only_the_users_clinic(site):
    api = api_for("Scheduler", site.home)
    home_session = site.session(site.home)

    assert ids(api.get("/api/clinics/")) == {site.home.pk}
    assert ids(api.get("/api/patients/")) == {site.series[site.home].patient_id}
    assert ids(api.get("/api/protocols/")) == {site.series[site.home].protocol_id}
    assert ids(api.get("/api/chairs/")) == set(site.home.chairs.values_list("pk", flat=True))
    assert ids(api.get("/api/series/")) == {site.series[site.home].pk}
    assert ids(api.get("/api/sessions/")) == set(site.series[site.home].sessions.values_list("pk", flat=True))
    assert ids(api.get("/api/messages/")) == set(
        Message.objects.filter(session__clinic=site.home).values_list("pk", flat=True)
    )
    assert home_session.pk in ids(api.get(f"/api/sessions/?clinic={site.home.pk}"))


def test_another_clinics_rows_answer_404(site):
    api = api_for("Scheduler", site.home)
    session = site.session(site.other)
    series = site.series[site.other]

    for path in (
        f"/api/clinics/{site.other.pk}/",
        f"/api/patients/{series.patient_id}/",
        f"/api/series/{series.pk}/",
        f"/api/sessions/{session.pk}/",
        f"/api/sessions/{session.pk}/slots",
        f"/api/sessions/{session.pk}/messages",
        f"/api/messages/{Message.objects.filter(session=session).first().pk}/",
    ):
        assert api.get(path).status_code == 404, path


def test_another_clinics_session_cannot_be_changed(site):
    api = api_for("Scheduler", site.home)
    session = site.session(site.other)
    later = (session.starts_at + timedelta(days=1)).isoformat()

    answers = [
        api.post(f"/api/sessions/{session.pk}/cancel", {"reason": "x"}, format="json").status_code,
        api.post(f"/api/sessions/{session.pk}/confirm", {}, format="json").status_code,
        api.post(f"/api/sessions/{session.pk}/reschedule", {"starts_at": later}, format="json").status_code,
        api.post(f"/api/series/{site.series[site.other].pk}/cancel", {"reason": "x"}, format="json").status_code,
    ]

    assert answers == [404] * 4
    session.refresh_from_db()
    assert session.status == Session.Status.BOOKED and session.version == 1


def test_another_clinics_ids_in_a_body_are_refused_naming_the_field(site):
    api = api_for("Scheduler", site.home)
    other = site.series[site.other]
    start = (timezone.now() + timedelta(days=20)).astimezone(site.home.zone).replace(hour=9, minute=0, tzinfo=None)
    booking = {"patient": other.patient_id, "protocol": site.series[site.home].protocol_id}

    answer = api.post("/api/series/", {**booking, "first_start": start.isoformat()}, format="json")

    assert answer.status_code == 400
    assert set(answer.json()) == {"patient"}
    query = api.get(f"/api/sessions/?clinic={site.other.pk}&date={start.date()}")
    assert query.status_code == 400 and "clinic" in query.json()
    assert other.patient.series.count() == 1


def test_a_clinic_admin_configures_only_their_clinic(site):
    api = api_for("Clinic admin", site.home)
    other_chair = site.other.chairs.first()

    assert api.patch(f"/api/chairs/{other_chair.pk}/", {"name": "Mine now"}, format="json").status_code == 404
    moved = api.post("/api/chairs/", {"clinic": site.other.pk, "name": "Chair 9"}, format="json")
    assert moved.status_code == 400 and "clinic" in moved.json()
    rule = api.post(
        "/api/reminder-rules/", {"clinic": site.other.pk, "channel": "sms", "offset_minutes": 60}, format="json"
    )
    assert rule.status_code == 400 and "clinic" in rule.json()
    theirs = site.series[site.other].protocol_id
    rule = api.post(
        "/api/reminder-rules/",
        {"clinic": site.home.pk, "protocol": theirs, "channel": "sms", "offset_minutes": 60},
        format="json",
    )
    assert rule.status_code == 400 and set(rule.json()) == {"protocol"}
    created = api.post("/api/clinics/", {"name": "New", "time_zone": "America/Phoenix"}, format="json")
    assert created.status_code == 403
    other_chair.refresh_from_db()
    assert other_chair.name != "Mine now" and not ReminderRule.objects.filter(clinic=site.other, offset_minutes=60)
    assert api.post("/api/chairs/", {"clinic": site.home.pk, "name": "Chair 9"}, format="json").status_code == 201


def test_a_user_of_two_clinics_sees_both_and_a_user_of_none_sees_every_clinic(site):
    both = api_for("Scheduler", site.home, site.other)
    unlimited = api_for("Scheduler")

    assert ids(both.get("/api/clinics/")) == {site.home.pk, site.other.pk}
    assert {site.home.pk, site.other.pk} <= ids(unlimited.get("/api/clinics/"))
    assert unlimited.get(f"/api/sessions/{site.session(site.other).pk}/").status_code == 200


def test_a_visiting_patients_sessions_in_the_users_clinic_are_found_by_patient(site):
    api = api_for("Scheduler", site.home)
    visitor = site.series[site.other].patient
    start = (timezone.now() + timedelta(days=40)).astimezone(site.home.zone).replace(hour=9, minute=0, tzinfo=None)
    here = series_book(patient=visitor, protocol=site.series[site.home].protocol, first_start=start)

    found = ids(api.get(f"/api/sessions/?patient={visitor.pk}"))

    assert found == set(here.sessions.values_list("pk", flat=True))


@pytest.mark.parametrize("resource", ["patients", "chairs", "protocols", "reminder-rules"])
def test_a_row_stays_in_its_clinic_even_for_a_user_of_both(resource):
    home, other = clinic_make(chairs=1), clinic_make(chairs=1)
    made = {
        "patients": lambda: patient_make(home),
        "chairs": lambda: home.chairs.get(),
        "protocols": lambda: protocol_make(home),
        "reminder-rules": lambda: ReminderRule.objects.filter(clinic=home).first(),
    }[resource]()
    api = api_for("Clinic admin", home, other)

    answer = api.patch(f"/api/{resource}/{made.pk}/", {"clinic": other.pk}, format="json")

    assert answer.status_code == 400 and "clinic" in answer.json()
    made.refresh_from_db()
    assert made.clinic_id == home.pk


def test_the_admin_and_staff_forms_keep_a_patient_in_its_clinic():
    from django.core.exceptions import ValidationError

    home, other = clinic_make(), clinic_make()
    patient = patient_make(home)
    patient.clinic = other

    with pytest.raises(ValidationError) as refused:
        patient.full_clean()

    assert "clinic" in refused.value.message_dict
