"""Who may see and do what: sign-in, the roles' permissions and clinic scoping."""

from datetime import datetime, time

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from notifications.inbound import Incoming, inbound_handle
from notifications.models import Channel, Message, OutboxText, Purpose, StaffFlag
from sessions.clock import local_date
from sessions.models import Series, Session
from tests.factories import clinic_make, patient_make, protocol_make

from .builders import at, client_as, session_make, staff_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def session(clinic, booster, patient, later) -> Session:
    return session_make(clinic, booster, chair=clinic.chairs.first(), starts_at=at(clinic, later, 9), patient=patient)


@pytest.mark.parametrize(
    "name, args",
    [
        ("staff:home", []),
        ("staff:board", [1]),
        ("staff:book", []),
        ("staff:book-series", [1]),
        ("staff:patients", []),
        ("staff:patient", [1]),
        ("staff:session-move", [1]),
        ("staff:session-reflow", [1]),
        ("staff:inbox", []),
        ("staff:outbox", []),
    ],
)
def test_anonymous_users_are_sent_to_sign_in(client: Client, name, args):
    url = reverse(name, args=args)

    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"] == f"{reverse('staff:login')}?next={url}"


def test_signing_in_leads_to_the_board_of_the_first_clinic(client: Client, clinic):
    staff_user("Nurse", username="nina")

    response = client.post(reverse("staff:login"), {"username": "nina", "password": "staff-test-password"}, follow=True)

    assert response.redirect_chain[-1][0] == reverse("staff:board", args=[clinic.pk])


def test_a_nurse_cannot_book(nurse, patient, booster, later):
    start = datetime.combine(later, time(9)).isoformat(timespec="minutes")

    assert nurse.get(reverse("staff:book")).status_code == 403
    response = nurse.post(
        reverse("staff:book-series", args=[patient.pk]),
        {"protocol": booster.pk, "first_start": start, "action": "book"},
    )

    assert response.status_code == 403
    assert not Series.objects.exists()


def test_a_nurse_cannot_cancel_or_move(nurse, session):
    cancelled = nurse.post(reverse("staff:session-cancel", args=[session.pk]), {"reason": "no"})
    moved = nurse.get(reverse("staff:session-move", args=[session.pk]))

    assert (cancelled.status_code, moved.status_code) == (403, 403)
    session.refresh_from_db()
    assert session.status == Session.Status.BOOKED


def test_a_nurse_sees_the_board_without_booking_actions(nurse, clinic, booster):
    today = local_date(timezone.now(), clinic.zone)
    session_make(clinic, booster, chair=clinic.chairs.first(), starts_at=at(clinic, today, 0, 1))

    html = nurse.get(reverse("staff:board", args=[clinic.pk])).content.decode()

    assert "Arrived" in html
    assert "Cancel session" not in html and "Move</a>" not in html and "Book a series" not in html


def test_a_scheduler_cannot_mark_attendance(scheduler, session):
    response = scheduler.post(reverse("staff:session-mark", args=[session.pk]), {"status": "arrived"})

    assert response.status_code == 403


def test_a_nurse_cannot_mark_inbox_items_handled(nurse, patient):
    flag = StaffFlag.objects.create(patient=patient, kind=StaffFlag.Kind.CANCEL_WORD, detail="Replied CANCEL")

    response = nurse.post(reverse("staff:flag-handled", args=[flag.pk]))

    assert response.status_code == 403
    flag.refresh_from_db()
    assert flag.handled_at is None


class TestClinicScoping:
    @pytest.fixture
    def other(self, later):
        clinic = clinic_make(name="Other Clinic")
        protocol = protocol_make(clinic, kind="booster")
        patient = patient_make(clinic, first_name="Olive")
        session = session_make(clinic, protocol, chair=clinic.chairs.first(), starts_at=at(clinic, later, 9),
                               patient=patient)  # fmt: skip
        return clinic, patient, session

    @pytest.fixture
    def limited(self, clinic) -> Client:
        return client_as(staff_user("Scheduler", clinics=(clinic,)))

    def test_a_user_limited_to_one_clinic_gets_404_for_another_clinics_pages(self, limited, other, session):
        clinic, patient, other_session = other

        for url in (
            reverse("staff:board", args=[clinic.pk]),
            reverse("staff:week", args=[clinic.pk]),
            reverse("staff:patient", args=[patient.pk]),
            reverse("staff:book-series", args=[patient.pk]),
            reverse("staff:session-move", args=[other_session.pk]),
        ):
            assert limited.get(url).status_code == 404, url
        cancel = limited.post(reverse("staff:session-cancel", args=[other_session.pk]), {"reason": "x"})
        assert cancel.status_code == 404
        for url, data in (
            (reverse("staff:patient-note", args=[patient.pk]), {"text": "x"}),
            (reverse("staff:patient-contact", args=[patient.pk]), {"phone": "+16025550199"}),
            (reverse("staff:session-send-link", args=[other_session.pk]), {}),
            (reverse("staff:series-cancel", args=[other_session.series_id]), {"reason": "x"}),
        ):
            assert limited.post(url, data).status_code == 404, url
        assert not patient.notes.exists()
        assert limited.get(reverse("staff:board", args=[session.clinic_id])).status_code == 200
        assert limited.get(reverse("staff:week", args=[session.clinic_id])).status_code == 200
        assert limited.get(reverse("staff:patient", args=[session.patient_id])).status_code == 200

    def test_their_nav_search_inbox_and_outbox_hold_only_their_clinic(self, limited, other, patient, clinic):
        other_clinic, other_patient, _ = other
        StaffFlag.objects.create(patient=other_patient, kind=StaffFlag.Kind.CANCEL_WORD, detail="Replied CANCEL")
        mine = StaffFlag.objects.create(patient=patient, kind=StaffFlag.Kind.CANCEL_WORD, detail="Replied CANCEL")
        inbound_handle(incoming=Incoming(sid="SM1", from_number=other_patient.phone, to_number="", body="late?"))

        inbox = limited.get(reverse("staff:inbox"))
        search = limited.get(reverse("staff:patients"), {"q": "Olive"})

        assert [c.pk for c in inbox.context["nav"]["clinics"]] == [clinic.pk]
        assert inbox.context["nav"]["inbox_count"] == 1
        assert (inbox.context["inbox"].flags, inbox.context["inbox"].texts) == ([mine], [])
        assert search.context["found"] == []

    def test_a_visiting_patients_kept_texts_are_in_the_outbox_of_the_clinic_that_sent_them(
        self, limited, other, clinic, booster, later
    ):
        # A patient of the other clinic booked here: the text names this clinic and this visit,
        # as the admin's outbox and the API's messages (scoped by the session's clinic) say.
        _, visitor, _ = other
        here = session_make(clinic, booster, chair=clinic.chairs.first(), starts_at=at(clinic, later, 13),
                            patient=visitor)  # fmt: skip
        message = Message.objects.create(
            session=here, patient=visitor, purpose=Purpose.BOOKED, key="0", channel=Channel.SMS, session_version=1,
            due_at=timezone.now(), expires_at=here.starts_at, status=Message.Status.SENT,
        )  # fmt: skip
        text = OutboxText.objects.create(message=message, to=visitor.phone, body="Desert Wellness: see you")
        visitors_clinic = client_as(staff_user("Scheduler", clinics=(visitor.clinic,), username="elsewhere"))

        assert list(limited.get(reverse("staff:outbox")).context["page"].object_list) == [text]
        assert list(visitors_clinic.get(reverse("staff:outbox")).context["page"].object_list) == []

    def test_a_visiting_patients_visit_flags_are_in_the_inbox_of_the_clinic_of_the_visit(
        self, limited, other, clinic, booster, later
    ):
        _, visitor, _ = other
        here = session_make(clinic, booster, chair=clinic.chairs.first(), starts_at=at(clinic, later, 13),
                            patient=visitor)  # fmt: skip
        flag = StaffFlag.objects.create(patient=visitor, session=here, kind=StaffFlag.Kind.SMS_REFUSED, detail="x")
        visitors_clinic = client_as(staff_user("Scheduler", clinics=(visitor.clinic,), username="elsewhere"))

        assert limited.get(reverse("staff:inbox")).context["inbox"].flags == [flag]
        assert visitors_clinic.get(reverse("staff:inbox")).context["inbox"].flags == []
        assert visitors_clinic.post(reverse("staff:flag-handled", args=[flag.pk])).status_code == 404

    def test_users_in_no_clinic_group_see_every_clinic(self, scheduler, other, clinic):
        other_clinic, other_patient, _ = other

        assert scheduler.get(reverse("staff:board", args=[other_clinic.pk])).status_code == 200
        assert scheduler.get(reverse("staff:patient", args=[other_patient.pk])).status_code == 200

    def test_a_malformed_clinic_group_limits_the_user_to_nothing(self, clinic):
        user = staff_user("Scheduler")
        user.groups.add(Group.objects.create(name="clinic:main"))

        response = client_as(user).get(reverse("staff:board", args=[clinic.pk]))

        assert response.status_code == 404
