from datetime import datetime

import pytest
from django.contrib.auth.models import User

from sessions.models import AuditEvent, Session
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

    trail = [(e.action, e.via, e.actor, e.session_id, e.detail) for e in AuditEvent.objects.order_by("id")]
    assert trail == [
        ("booked", "staff", scheduler, None, "Depression induction: 6 session(s) from Tue 06 Jan 2026 10:00"),
        ("confirmed", "sms", None, first.pk, "with a driver"),
        ("moved", "staff", scheduler, second.pk, "from Wed 07 Jan 2026 10:00 to Wed 07 Jan 2026 14:00: work"),
        ("cancelled", "link", None, second.pk, "unwell"),
    ]
    assert all(e.patient_id == patient.pk and e.at == now for e in AuditEvent.objects.all())
