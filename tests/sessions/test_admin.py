from datetime import datetime

import pytest
from django.contrib.auth.models import User
from django.db import models
from django.utils import timezone

from sessions.models import AuditEvent, Clinic, Protocol
from sessions.services import series_book
from tests.factories import clinic_make, patient_make, protocol_make

pytestmark = pytest.mark.django_db

PAGES = ["clinic", "protocol", "patient", "series", "session"]


# The inlines of the clinic's admin page, by their form prefix.
CLINIC_INLINES = ["opening_hours", "closed_dates", "staffing_blocks", "chairs"]


def form_data(instance: models.Model, **changes) -> dict:
    """What the admin's form for `instance` posts back, with `changes`."""
    data = {}
    for field in instance._meta.concrete_fields:
        value = getattr(instance, field.attname)
        if not field.editable or field.primary_key or (isinstance(field, models.BooleanField) and not value):
            continue
        if isinstance(field, models.DateTimeField):
            local = timezone.localtime(value) if value else None
            data[f"{field.name}_0"], data[f"{field.name}_1"] = (
                (f"{local:%Y-%m-%d}", f"{local:%H:%M:%S}") if local else ("", "")
            )
        else:
            data[field.name] = "on" if value is True else "" if value is None else value
    return {**data, **changes}


def no_inline_rows(*prefixes: str) -> dict:
    return {f"{prefix}-{key}": 0 for prefix in prefixes for key in ("TOTAL_FORMS", "INITIAL_FORMS", "MIN_NUM_FORMS")}


@pytest.fixture
def root(client) -> User:
    user = User.objects.create_superuser("root", "root@example.com", None)
    client.force_login(user)
    return user


@pytest.fixture
def booked_series(now):
    clinic = clinic_make()
    return series_book(
        patient=patient_make(clinic), protocol=protocol_make(clinic), first_start=datetime(2026, 1, 6, 10), now=now
    )


@pytest.mark.parametrize("model", PAGES)
def test_admin_lists_and_shows_each_model(client, booked_series, model):
    client.force_login(User.objects.create_superuser("root", "root@example.com", None))
    instance = {"clinic": booked_series.clinic, "protocol": booked_series.protocol, "patient": booked_series.patient,
                "series": booked_series, "session": booked_series.sessions.first()}[model]  # fmt: skip

    assert client.get(f"/admin/booking/{model}/").status_code == 200
    assert client.get(f"/admin/booking/{model}/{instance.pk}/change/").status_code == 200


def test_sessions_cannot_be_edited_in_the_admin(client, booked_series):
    client.force_login(User.objects.create_superuser("root", "root@example.com", None))
    session = booked_series.sessions.first()

    answer = client.post(f"/admin/booking/session/{session.pk}/change/", {"status": "cancelled"})

    assert answer.status_code == 403
    session.refresh_from_db()
    assert session.status == "booked"


def test_it_records_a_patient_edit_with_the_admin_user(client, root):
    patient = patient_make(clinic_make(chairs=1))

    answer = client.post(f"/admin/booking/patient/{patient.pk}/change/", form_data(patient, phone="+16025550177"))

    assert answer.status_code == 302, answer.context["adminform"].form.errors
    event = AuditEvent.objects.get(patient=patient, action="changed")
    assert (event.via, event.actor, event.detail, event.clinic) == ("admin", root, "phone", patient.clinic)


def test_it_records_configuration_edits_and_deletions_with_the_admin_user(client, root):
    protocol = protocol_make(clinic_make(chairs=1))
    url = f"/admin/booking/protocol/{protocol.pk}"

    changed = client.post(f"{url}/change/", form_data(protocol, chair_minutes=150, patient_name="Visit"))
    deleted = client.post(f"{url}/delete/", {"post": "yes"})

    assert (changed.status_code, deleted.status_code) == (302, 302)
    events = AuditEvent.objects.filter(object_type="booking.protocol", object_id=protocol.pk).exclude(via="system")
    assert [(e.action, e.via, e.actor, e.detail, e.clinic_id) for e in events.order_by("id")] == [
        ("changed", "admin", root, "patient_name, chair_minutes", protocol.clinic_id),
        ("deleted", "admin", root, "", protocol.clinic_id),
    ]


def test_a_new_clinic_in_the_admin_is_recorded_with_its_user(client, root):
    clinic = Clinic(name="Mesa", time_zone="America/Phoenix", phone="+16025550100", address="1 Main St",
                    sender_name="Mesa Wellness")  # fmt: skip

    answer = client.post("/admin/booking/clinic/add/", {**form_data(clinic), **no_inline_rows(*CLINIC_INLINES)})

    assert answer.status_code == 302, answer.context["adminform"].form.errors
    event = AuditEvent.objects.get(object_type="booking.clinic")
    assert (event.action, event.via, event.actor, event.clinic) == ("created", "admin", root, Clinic.objects.get())


@pytest.mark.parametrize("field", ["sender_name", "address", "name"])
def test_a_clinic_line_that_would_break_an_email_header_is_refused(client, root, field):
    clinic = Clinic(name="Mesa", time_zone="America/Phoenix", phone="+16025550100", address="1 Main St",
                    sender_name="Mesa Wellness")  # fmt: skip
    data = form_data(clinic, **{field: "Mesa\r\nBcc: everyone@example.com"})

    answer = client.post("/admin/booking/clinic/add/", {**data, **no_inline_rows(*CLINIC_INLINES)})

    assert answer.status_code == 200
    assert list(answer.context["adminform"].form.errors) == [field]
    assert not Clinic.objects.exists()


def test_a_protocol_patient_name_with_a_line_break_is_refused(client, root):
    protocol = protocol_make(clinic_make(chairs=1))

    answer = client.post(f"/admin/booking/protocol/{protocol.pk}/change/", form_data(protocol, patient_name="A\nB"))

    assert list(answer.context["adminform"].form.errors) == ["patient_name"]
    assert Protocol.objects.get().patient_name == "Wellness visit"


def test_the_audit_list_shows_configuration_changes_with_their_clinic_and_object(client, root):
    protocol = protocol_make(clinic_make(name="Mesa", chairs=1))
    client.post(f"/admin/booking/protocol/{protocol.pk}/change/", form_data(protocol, chair_minutes=150))

    page = client.get("/admin/booking/auditevent/?via__exact=admin").content.decode()

    assert "booking.protocol" in page and "Mesa" in page and "chair_minutes" in page
