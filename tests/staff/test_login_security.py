"""Signing in: repeated wrong passwords lock a username at one address for a while, and a staff
member with an authenticator app (or a clinic admin, where production requires one) passes a
six-digit code before any staff or admin page opens."""

import logging
import re

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import User
from django.db.models import F
from django.test import Client
from django.urls import reverse
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from .builders import PASSWORD, client_as, staff_user

pytestmark = pytest.mark.django_db

LOGIN_PAGES = ["/staff/login/", "/admin/login/"]


@pytest.fixture
def member(db) -> User:
    """A scheduler who may also use the admin, so both sign-in pages accept them."""
    user = staff_user("Scheduler", username="sam")
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    return user


def sign_in(client: Client, page: str, password: str, **extra) -> object:
    return client.post(page, {"username": "sam", "password": password}, **extra)


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def code_for(device: TOTPDevice) -> str:
    return f"{totp(device.bin_key, device.step, device.t0, device.digits, device.drift):06d}"


def device_for(user: User, *, confirmed: bool = True) -> TOTPDevice:
    return TOTPDevice.objects.create(user=user, name="Phone", confirmed=confirmed)


@pytest.mark.parametrize("page", LOGIN_PAGES)
def test_it_refuses_even_the_right_password_after_repeated_wrong_ones(client, member, page, caplog):
    for _ in range(12):
        sign_in(client, page, "wrong-password")

    with caplog.at_level(logging.WARNING):
        answer = sign_in(client, page, PASSWORD)

    assert answer.status_code == 429
    assert "Too many failed sign-ins" in answer.content.decode()
    assert not signed_in(client)
    assert any("Locking out" in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("page", LOGIN_PAGES)
def test_it_lets_the_right_password_in_again_after_the_cool_off(client, member, page, settings):
    for _ in range(12):
        sign_in(client, page, "wrong-password")
    assert sign_in(client, page, PASSWORD).status_code == 429

    AccessAttempt.objects.update(attempt_time=F("attempt_time") - settings.AXES_COOLOFF_TIME)
    answer = sign_in(client, page, PASSWORD)

    assert answer.status_code == 302
    assert signed_in(client)


def test_it_locks_the_username_only_at_the_address_behind_the_proxy_that_failed(member, settings):
    settings.TRUSTED_PROXY_HOPS = 1
    proxy = {"REMOTE_ADDR": "10.0.0.2"}
    attacker, colleague = Client(), Client()
    for _ in range(12):
        sign_in(attacker, "/staff/login/", "wrong-password", HTTP_X_FORWARDED_FOR="198.51.100.7", **proxy)

    refused = sign_in(attacker, "/staff/login/", PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.7", **proxy)
    allowed = sign_in(colleague, "/staff/login/", PASSWORD, HTTP_X_FORWARDED_FOR="203.0.113.9", **proxy)

    assert (refused.status_code, allowed.status_code) == (429, 302)
    assert signed_in(colleague) and not signed_in(attacker)
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"198.51.100.7"}


@pytest.mark.parametrize("page", ["/staff/", "/admin/"])
def test_a_password_alone_does_not_open_pages_for_a_user_with_an_authenticator(client, member, page):
    device = device_for(member)
    assert sign_in(client, "/staff/login/", PASSWORD).status_code == 302

    answer = client.get(page)

    assert answer.status_code == 302
    assert answer["Location"] == f"{reverse('staff:verify')}?next={page}"
    assert client.get("/api/sessions/").status_code in (401, 403)

    verified = client.post(answer["Location"], {"code": code_for(device)})

    assert verified.status_code == 302 and verified["Location"] == page
    assert client.get(page).status_code == 200


def test_the_admin_sign_in_also_asks_for_the_code(client, member):
    device_for(member)

    answer = client.post("/admin/login/?next=/admin/", {"username": "sam", "password": PASSWORD}, follow=True)

    assert answer.redirect_chain[-1][0] == f"{reverse('staff:verify')}?next=/admin/"
    assert "6-digit code" in answer.content.decode()


def test_a_wrong_code_is_refused_and_the_next_try_must_wait(client, member, settings):
    # A wait long enough that however slow this machine, the second try lands inside it.
    settings.OTP_TOTP_THROTTLE_FACTOR = 60
    device = device_for(member)
    client.force_login(member)

    wrong = client.post(reverse("staff:verify"), {"code": f"{(int(code_for(device)) + 1) % 1_000_000:06d}"})
    throttled = client.post(reverse("staff:verify"), {"code": code_for(device)})

    assert wrong.status_code == 200 and "not the code" in wrong.content.decode()
    assert throttled.status_code == 429 and "Too many wrong codes" in throttled.content.decode()
    assert client.get("/staff/").status_code == 302
    device.refresh_from_db()
    assert device.throttling_failure_count == 1


def test_the_code_form_needs_a_csrf_token(member):
    device = device_for(member)
    client = Client(enforce_csrf_checks=True)
    client.force_login(member)

    answer = client.post(reverse("staff:verify"), {"code": code_for(device)})

    assert answer.status_code == 403


def test_a_clinic_admin_must_set_up_an_authenticator_when_production_requires_it(settings):
    settings.STAFF_2FA_REQUIRED = True
    admin = client_as(staff_user("Clinic admin"))

    answer = admin.get("/staff/")
    assert answer.status_code == 302
    assert answer["Location"] == f"{reverse('staff:two-factor')}?next=/staff/"

    page = admin.get(answer["Location"]).content.decode()
    assert "otpauth://totp/" in page and "<svg" in page
    device = TOTPDevice.objects.get(confirmed=False)

    done = admin.post(answer["Location"], {"code": code_for(device)})

    assert done.status_code == 302 and done["Location"] == "/staff/"
    assert TOTPDevice.objects.get(pk=device.pk).confirmed
    assert admin.get("/staff/").status_code == 200
    assert client_as(staff_user("Nurse")).get("/staff/").status_code == 200  # not a role it requires


def test_staff_may_turn_on_two_factor_where_it_is_not_required(client, member):
    client.force_login(member)
    assert client.get("/staff/").status_code == 200

    page = client.get(reverse("staff:two-factor")).content.decode()
    device = TOTPDevice.objects.get(user=member, confirmed=False)
    assert re.search(r"secret=[A-Z2-7]{32}", page)
    assert client.post(reverse("staff:two-factor"), {"code": code_for(device)}).status_code == 302

    again = Client()
    sign_in(again, "/staff/login/", PASSWORD)

    assert again.get("/staff/")["Location"] == f"{reverse('staff:verify')}?next=/staff/"
