"""The patient page: details, consent, series with their sessions and moves, every message,
the patient's texts and the audit trail."""

from datetime import datetime, time, timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from notifications.inbound import Incoming, inbound_handle
from notifications.models import ContactStatus, Message
from sessions.models import AuditEvent
from sessions.services import series_book, session_cancel, session_reschedule

pytestmark = pytest.mark.django_db


def test_it_shows_series_sessions_moves_messages_texts_and_the_audit_trail(
    scheduler, clinic, induction, patient, later
):
    frontdesk = User.objects.create_user("frontdesk")
    series = series_book(patient=patient, protocol=induction, first_start=datetime.combine(later, time(9)),
                         actor=frontdesk)  # fmt: skip
    second, third = series.sessions.filter(number__in=(2, 3)).order_by("number")
    session_reschedule(session=second, starts_at=second.clinic.local(second.starts_at).replace(hour=14, tzinfo=None),
                       reason="school run", actor=frontdesk)  # fmt: skip
    session_cancel(session=third, reason="away", actor=frontdesk)
    Message.objects.filter(session=second, status=Message.Status.PLANNED).update(
        status=Message.Status.FAILED, reason="Twilio 400 21211"
    )
    ContactStatus.objects.create(
        patient=patient, phone=patient.phone, sms_problem="21211", sms_problem_at=timezone.now()
    )
    inbound_handle(incoming=Incoming(sid="SM7", from_number=patient.phone, to_number="", body="Running late"))

    response = scheduler.get(reverse("staff:patient", args=[patient.pk]))

    assert response.status_code == 200
    html = response.content.decode()
    record = response.context["record"]
    assert [s.pk for s in record.series] == [series.pk]
    assert [s.status for s in record.series[0].sessions.all()][:3] == ["booked", "booked", "cancelled"]
    assert "14:00" in html and "school run" in html and "away" in html
    assert {m.status for m in record.messages} >= {"planned", "failed", "cancelled"}
    assert "Twilio 400 21211" in html and "Booking confirmation" in html and "Reminder" in html
    assert "Invalid phone number" in html
    assert [t.inbound.body for t in record.inbound] == ["Running late"] and "Running late" in html
    assert [e.action for e in record.audit][::-1] == ["created", "booked", "moved", "cancelled"]
    assert "frontdesk" in html


def test_messages_say_which_reminder_each_is_per_series_in_the_order_they_are_due(
    scheduler, clinic, induction, booster, patient, later
):
    first = series_book(patient=patient, protocol=induction, first_start=datetime.combine(later, time(9)))
    second = series_book(
        patient=patient, protocol=booster, first_start=datetime.combine(later + timedelta(days=30), time(9))
    )

    response = scheduler.get(reverse("staff:patient", args=[patient.pk]))

    groups = response.context["record"].messages_by_series
    assert [g.series for g in groups] == [second, first]  # newest series first, as the page lists them
    for group in groups:
        assert all(m.session.series_id == group.series.pk for m in group.done + group.planned)
        due = [m.due_at for m in group.planned]
        assert due == sorted(due)
    whats = {m.what for g in groups for m in g.planned}
    assert {"Booking confirmation", "Reminder 72 h before", "Reminder 24 h before", "Reminder 2 h before"} <= whats
    html = response.content.decode()
    assert "<td>Reminder 72 h before</td>" in html and '<span class="msg msg-planned">Planned</span>' in html


def test_a_nurse_sees_the_patient_page_but_no_booking_button(nurse, patient):
    response = nurse.get(reverse("staff:patient", args=[patient.pk]))

    assert response.status_code == 200
    assert "Book a series" not in response.content.decode()


def test_the_page_runs_the_same_queries_for_one_series_or_three(scheduler, clinic, induction, booster, patient, later):
    def queries_for_page() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert scheduler.get(reverse("staff:patient", args=[patient.pk])).status_code == 200
        return len(queries)

    series_book(patient=patient, protocol=induction, first_start=datetime.combine(later, time(9)))
    one = queries_for_page()
    for week in (2, 3):
        start = datetime.combine(later + timedelta(weeks=week), time(9))
        protocol = induction if week == 2 else booster
        series_book(patient=patient, protocol=protocol, first_start=start, override_reason="a second course")

    assert queries_for_page() == one


def test_a_sessions_history_is_on_its_move_page(clinic, induction, patient):
    from datetime import datetime, timedelta

    from sessions.services import series_book, session_reschedule

    from .builders import client_as, staff_user

    user = staff_user("Scheduler")
    day = (datetime.now() + timedelta(days=3)).replace(hour=10, minute=0, second=0, microsecond=0)
    series = series_book(patient=patient, protocol=induction, first_start=day, actor=user)
    second = series.sessions.get(number=2)
    session_reschedule(session=second, starts_at=second.starts_at + timedelta(hours=3), reason="school run", actor=user)

    page = client_as(user).get(f"/staff/sessions/{second.pk}/move/").content.decode()

    assert "History of this session" in page
    assert "school run" in page and "scheduler" in page


def test_staff_edit_contact_details_on_the_patient_page_and_the_trail_says_so(scheduler, patient):
    url = reverse("staff:patient-contact", args=[patient.pk])
    fields = {"phone": "(602) 555-0190", "email": "new@example.com", "language": "es", "time_zone": "",
              "sms_enabled": "on"}  # fmt: skip

    saved = scheduler.post(url, fields, follow=True)
    refused = scheduler.post(url, {**fields, "phone": "555-01"}, follow=True)

    patient.refresh_from_db()
    assert (patient.phone, patient.email, patient.language) == ("+16025550190", "new@example.com", "es")
    assert (patient.sms_enabled, patient.email_enabled) == (True, False)
    assert saved.redirect_chain[-1][0] == reverse("staff:patient", args=[patient.pk]) + "#contact"
    assert "contact details saved" in str(list(saved.context["messages"])[0])
    assert str(list(refused.context["messages"])[0]).startswith("Not saved: ")
    event = AuditEvent.objects.filter(patient=patient, action="changed").latest("at")
    assert "phone" in event.detail and "+16025550190" not in event.detail  # fields named, never their values
    assert f'action="/staff/patients/{patient.pk}/contact/"' in saved.content.decode()


def test_a_nurse_cannot_edit_contact_details(nurse, patient):
    response = nurse.post(reverse("staff:patient-contact", args=[patient.pk]), {"phone": "+16025550191"})

    assert response.status_code == 403
    patient.refresh_from_db()
    assert patient.phone != "+16025550191"


def test_a_scheduler_cancels_a_whole_series_from_the_patient_page(scheduler, induction, patient, later):
    series = series_book(patient=patient, protocol=induction, first_start=datetime.combine(later, time(9)))
    url = reverse("staff:series-cancel", args=[series.pk])

    page = scheduler.get(reverse("staff:patient", args=[patient.pk])).content.decode()
    blank = scheduler.post(url, {"reason": "  "}, follow=True)
    done = scheduler.post(url, {"reason": "stopped treatment"}, follow=True)
    again = scheduler.post(url, {"reason": "twice"}, follow=True)

    assert f'action="{url}"' in page
    assert str(list(blank.context["messages"])[0]).startswith("Not cancelled: ")
    series.refresh_from_db()
    assert series.status == "cancelled"
    assert set(series.sessions.values_list("status", flat=True)) == {"cancelled"}
    assert "cancelled, with every session still to come" in str(list(done.context["messages"])[0])
    assert str(list(again.context["messages"])[0]) == "Not cancelled: the series is cancelled."
    event = AuditEvent.objects.filter(series=series).exclude(action="booked").first()
    assert event is not None and event.via == "staff"


def test_staff_send_the_link_again_by_text_and_email_each_time_a_message_of_its_own(
    scheduler, induction, patient, later
):
    series = series_book(patient=patient, protocol=induction, first_start=datetime.combine(later, time(9)))
    session = series.sessions.get(number=2)
    url = reverse("staff:session-send-link", args=[session.pk])

    page = scheduler.get(reverse("staff:patient", args=[patient.pk])).content.decode()
    first = scheduler.post(url, follow=True)
    scheduler.post(url)

    assert f'action="{url}"' in page
    sent = Message.objects.filter(session=session, purpose="link")
    assert sorted(sent.values_list("channel", flat=True)) == ["email", "email", "sms", "sms"]
    assert all(m.status == "planned" and m.due_at <= timezone.now() for m in sent if m.channel == "email")
    assert "the link to session 2 goes by text and email" in str(list(first.context["messages"])[0])
    event = AuditEvent.objects.filter(session=session, action="link sent again").first()
    assert event is not None and (event.via, event.actor.username) == ("staff", "scheduler")


def test_the_link_sent_again_fits_one_text_in_both_languages(induction, patient, later):
    from notifications.planning import messages_plan_link
    from notifications.rendering import render
    from notifications.wording import fits_one_segment

    for language in ("en", "es"):
        patient.language = language
        patient.save(update_fields=["language"])
        weeks = 0 if language == "en" else 3
        series = series_book(
            patient=patient, protocol=induction, first_start=datetime.combine(later + timedelta(weeks=weeks), time(9)),
            override_reason="a second one" if weeks else "",
        )  # fmt: skip
        [text] = [m for m in messages_plan_link(session=series.sessions.get(number=1)) if m.channel == "sms"]
        rendered = render(text, token="A" * 16)
        assert rendered is not None and fits_one_segment(rendered.body) and "A" * 16 in rendered.body


def test_staff_keep_notes_on_the_patient_newest_first_and_the_trail_says_only_that_one_was_written(
    scheduler, nurse, patient
):
    url = reverse("staff:patient-note", args=[patient.pk])

    scheduler.post(url, {"text": "Prefers mornings"})
    saved = scheduler.post(url, {"text": "  Call her sister\nto arrange the driver  "}, follow=True)
    blank = scheduler.post(url, {"text": "   "}, follow=True)
    by_nurse = nurse.post(url, {"text": "from the nurse"})

    assert [n.text for n in patient.notes.all()] == ["Call her sister\nto arrange the driver", "Prefers mornings"]
    html = saved.content.decode()
    assert "Call her sister<br>to arrange the driver" in html and "Note saved." in html
    assert str(list(blank.context["messages"])[0]) == "Not saved: Write the note."
    assert by_nurse.status_code == 403
    events = AuditEvent.objects.filter(patient=patient, action="note added")
    assert events.count() == 2 and all("sister" not in e.detail and "mornings" not in e.detail for e in events)
    assert 'name="text"' not in nurse.get(reverse("staff:patient", args=[patient.pk])).content.decode()
