"""Reminder rules and wording, as a clinic admin edits them."""

from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError

from notifications.models import MessageTemplate, ReminderRule
from sessions.services import series_book
from tests.api.conftest import client_for
from tests.factories import clinic_make, patient_make, protocol_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def clinic(db):
    return clinic_make(sender_name="Desert Bloom")


def template(clinic, body: str, **fields) -> MessageTemplate:
    values = dict(clinic=clinic, purpose="reminder", channel="sms", language="en", body=body)
    return MessageTemplate(**{**values, **fields})


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("{clinic}: your ketamine visit {date} {time}. {link} STOP to end", "must not name the treatment"),
        ("{clinic}: visit {date} {time} with {doctor}. {link} STOP to end", "Unknown placeholder"),
        ("{clinic}: visit {date} {time}. {link}", "how to stop"),
        ("{clinic}: visit {date} {time}. STOP to end", "patient link"),
        ("{clinic}: visit {date} {time} 🙂 {link} STOP to end", "GSM-7"),
        ("{clinic}: " + "please come " * 10 + "{date} {time}. {link} STOP to end", "one text holds 160"),
        ("{clinic: visit {link} STOP", "Unbalanced braces"),
    ],
)
def test_wording_that_would_break_a_rule_is_refused(clinic, body, says):
    with pytest.raises(ValidationError) as refused:
        template(clinic, body).full_clean()

    assert says in str(refused.value)


def test_an_email_subject_on_two_lines_is_refused(clinic):
    subject = "Your visit\r\nBcc: everyone@example.com"

    with pytest.raises(ValidationError) as refused:
        template(clinic, "{clinic}: see you {date} at {time}. {link}", channel="email", subject=subject).full_clean()

    assert "subject" in refused.value.message_dict


def test_a_clinics_own_wording_is_used(clinic, twilio, settings):
    from notifications.models import Message
    from notifications.rendering import render

    own = template(clinic, "{clinic}: see you {date} at {time}. C=yes R=move {link} STOP=end")
    own.full_clean()
    own.save()
    patient = patient_make(clinic)
    now = datetime(2026, 1, 5, 17, tzinfo=UTC)
    series = series_book(
        patient=patient, protocol=protocol_make(clinic, kind="booster"), starts=[datetime(2026, 1, 9, 13)], now=now
    )
    message = Message(session=series.sessions.get(), patient=patient, purpose="reminder", channel="sms")

    assert render(message, token="Ab3dEf6hIj9k").body.startswith("Desert Bloom: see you Fri 9 Jan at 1:00pm.")


def test_a_clinic_admin_edits_rules_through_the_api(clinic):
    api = client_for("Clinic admin")

    created = api.post(
        "/api/reminder-rules/", {"clinic": clinic.pk, "channel": "sms", "offset_minutes": 30}, format="json"
    )

    assert created.status_code == 201, created.json()
    assert ReminderRule.objects.filter(clinic=clinic, offset_minutes=30).exists()
    assert (
        api.post(
            "/api/reminder-rules/", {"clinic": clinic.pk, "channel": "fax", "offset_minutes": 5}, format="json"
        ).status_code
        == 400
    )
    assert client_for("Nurse").post("/api/reminder-rules/", {}, format="json").status_code == 403


def test_a_sessions_messages_are_listed_with_status_and_reason(clinic):
    now = datetime(2026, 1, 5, 17, tzinfo=UTC)
    series = series_book(
        patient=patient_make(clinic),
        protocol=protocol_make(clinic, kind="booster"),
        starts=[datetime(2026, 1, 6, 13)],
        now=now,
    )
    session = series.sessions.get()
    api = client_for("Scheduler")

    listed = api.get(f"/api/sessions/{session.pk}/messages").json()

    assert {(m["purpose"], m["channel"], m["status"]) for m in listed} >= {
        ("booked", "sms", "planned"),
        ("reminder", "email", "skipped"),
    }
    assert next(m["reason"] for m in listed if m["status"] == "skipped") == "booked after this reminder was due"
    assert api.get("/api/sessions/999999/messages").status_code == 404
    assert api.get(f"/api/messages/?session={session.pk}&status=planned").json()["count"] >= 1


def test_the_admin_shows_messages_and_rules(clinic, client):
    client.force_login(User.objects.create_superuser("root", "root@example.com", None))

    for page in (
        "message",
        "reminderrule",
        "messagetemplate",
        "staffflag",
        "outboxtext",
        "contactstatus",
        "inboundsms",
    ):
        assert client.get(f"/admin/notifications/{page}/").status_code == 200, page


def test_a_reminder_rule_never_times_another_clinics_protocol():
    clinic, other = clinic_make(), clinic_make()
    rule = ReminderRule(clinic=clinic, protocol=protocol_make(other), channel="sms", offset_minutes=60)

    with pytest.raises(ValidationError) as refused:
        rule.full_clean()

    assert "protocol" in refused.value.message_dict
