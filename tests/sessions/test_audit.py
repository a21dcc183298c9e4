from datetime import datetime

import pytest
from django.contrib.auth.models import User
from django.core import serializers
from django.db import connection

from sessions.models import AuditEvent, Chair, Clinic, Patient, Session
from sessions.services import series_book, session_cancel, session_confirm, session_reschedule
from tests.factories import clinic_make, patient_make, protocol_make

pytestmark = pytest.mark.django_db


def test_every_change_is_in_the_audit_trail_with_who_and_how(now):
    clinic = clinic_make()
    scheduler = User.objects.create_user("frontdesk")
    patient = patient_make(clinic)
    series = series_book(
        patient=patient, protocol=protocol_make(clinic), first_start=datetime(2026, 1, 6, 10), actor=scheduler, now=now
    )
    first, second = series.sessions.order_by("number")[:2]

    session_confirm(session=first, via=Session.Channel.SMS, driver_confirmed=True, now=now)
    session_reschedule(session=second, starts_at=datetime(2026, 1, 7, 14), reason="work", actor=scheduler, now=now)
    session_cancel(session=second, reason="unwell", via=Session.Channel.LINK, now=now)

    booking = AuditEvent.objects.exclude(via=AuditEvent.Via.SYSTEM).order_by("id")
    trail = [(e.action, e.via, e.actor, e.session_id, e.detail) for e in booking]
    assert trail == [
        ("booked", "staff", scheduler, None, "Depression induction: 6 session(s) from Tue 06 Jan 2026 10:00"),
        ("confirmed", "sms", None, first.pk, "with a driver"),
        ("moved", "staff", scheduler, second.pk, "from Wed 07 Jan 2026 10:00 to Wed 07 Jan 2026 14:00: work"),
        ("cancelled", "link", None, second.pk, "unwell"),
    ]
    assert all(e.patient_id == patient.pk and e.clinic_id == clinic.pk and e.at == now for e in booking)


def test_it_records_a_write_outside_any_request_as_system():
    clinic = clinic_make(chairs=1)
    patient = patient_make(clinic)

    patient.email = "new@example.com"
    patient.save()

    events = AuditEvent.objects.filter(object_type="booking.patient", object_id=patient.pk).order_by("id")
    assert [(e.action, e.via, e.actor, e.detail, e.clinic_id, e.patient_id) for e in events] == [
        ("created", "system", None, "", clinic.pk, patient.pk),
        ("changed", "system", None, "email", clinic.pk, patient.pk),
    ]


def test_it_records_nothing_for_a_save_that_changes_nothing_or_a_raw_fixture_load():
    clinic = clinic_make(chairs=1)
    patient = patient_make(clinic)
    dumped = serializers.serialize("json", [patient])
    Patient.objects.filter(pk=patient.pk).delete()
    before = AuditEvent.objects.count()

    for loaded in serializers.deserialize("json", dumped):
        loaded.save()
    Patient.objects.get(pk=patient.pk).save()

    assert AuditEvent.objects.count() == before


def test_it_records_a_clinic_deletion_once_not_each_row_it_takes_with_it():
    clinic = clinic_make(chairs=2)
    clinic_id = clinic.pk

    clinic.delete()
    connection.check_constraints()

    [event] = AuditEvent.objects.filter(action="deleted")
    assert (event.object_type, event.object_id, event.clinic_id) == ("booking.clinic", clinic_id, None)
    assert not Chair.objects.filter(clinic=clinic_id).exists()
    assert not AuditEvent.objects.filter(clinic=clinic_id).exists() and Clinic.objects.count() == 0


def test_it_records_who_gave_a_user_access_to_a_clinic_and_not_each_sign_in(client):
    from django.contrib.auth.models import Group

    boss = User.objects.create_superuser("boss", password="pw-for-the-test")
    frontdesk = User.objects.create_user("frontdesk", password="pw-for-the-test", is_staff=True)
    group = Group.objects.create(name=f"clinic:{clinic_make().pk}")
    client.force_login(boss)

    answer = client.post(
        f"/admin/auth/user/{frontdesk.pk}/change/",
        {"username": "frontdesk", "is_active": "on", "is_staff": "on", "groups": [group.pk],
         "date_joined_0": "2026-01-05", "date_joined_1": "09:00:00"},
    )  # fmt: skip
    client.logout()
    signed_in = client.post("/staff/login/", {"username": "frontdesk", "password": "pw-for-the-test"})

    assert answer.status_code == 302 and signed_in.status_code == 302
    events = AuditEvent.objects.filter(object_type="auth.user", object_id=frontdesk.pk).order_by("id")
    trail = [(e.action, e.via, e.actor, e.detail) for e in events]
    assert ("groups changed", "admin", boss, f"added to {group.name}") in trail
    assert [e.via for e in events if e.action == "changed"] == ["admin"]  # the sign-in is not a change
    assert all(e.clinic_id is None for e in events)  # only users of every clinic read these
