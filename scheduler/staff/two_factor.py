"""Two-factor sign-in for staff: who must pass a second step after the password, and the
authenticator app (TOTP) that gives the code.

Every wrong code makes the device wait longer before it checks another (django-otp's throttling,
OTP_TOTP_THROTTLE_FACTOR), so six digits cannot be guessed in any useful time.
"""

import logging
from enum import StrEnum

import qrcode
import qrcode.image.svg
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice

from sessions.roles import CLINIC_ADMIN

log = logging.getLogger(__name__)


class Step(StrEnum):
    VERIFY = "verify"
    SET_UP = "set up"


class Verdict(StrEnum):
    PASSED = "passed"
    WRONG = "wrong"
    THROTTLED = "throttled"


def second_factor_required(*, user: AbstractBaseUser) -> bool:
    """Where STAFF_2FA_REQUIRED is on, clinic admins (and superusers, who can do more) need one."""
    if not settings.STAFF_2FA_REQUIRED:
        return False
    return user.is_superuser or user.groups.filter(name=CLINIC_ADMIN).exists()


def second_factor_step(*, user: AbstractBaseUser | AnonymousUser) -> Step | None:
    """The step a signed-in user has still to pass before the staff pages open, if any.

    `user` comes through django-otp's OTPMiddleware, which knows whether this session has passed
    a code. A user who never set up an app and is not required to is not asked: that is also what
    keeps tests' `force_login` users one step.
    """
    if not user.is_authenticated or user.is_verified():
        return None
    if totp_device_for(user=user) is not None:
        return Step.VERIFY
    return Step.SET_UP if second_factor_required(user=user) else None


def totp_device_for(*, user: AbstractBaseUser, confirmed: bool = True) -> TOTPDevice | None:
    return TOTPDevice.objects.devices_for_user(user, confirmed=confirmed).order_by("pk").first()


def totp_device_start(*, user: AbstractBaseUser) -> TOTPDevice:
    """The app being set up: the same secret on every visit until a code confirms it."""
    device = totp_device_for(user=user, confirmed=False)
    return device or TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)


def totp_device_check(*, device: TOTPDevice, code: str) -> Verdict:
    """Checks `code`, and confirms a device being set up when it passes. The row lock makes
    simultaneous guesses wait their turn, so throttling counts every one of them."""
    with transaction.atomic():
        device = TOTPDevice.objects.select_for_update().get(pk=device.pk)
        allowed, _ = device.verify_is_allowed()
        if not allowed:
            verdict = Verdict.THROTTLED
        elif device.verify_token(code):
            verdict = Verdict.PASSED
            if not device.confirmed:
                device.confirmed = True
                device.save(update_fields=["confirmed"])
        else:
            verdict = Verdict.WRONG
    if verdict != Verdict.PASSED:
        log.warning(
            "staff second factor refused user=%s verdict=%s failures=%s",
            device.user_id,
            verdict,
            device.throttling_failure_count,
        )
    return verdict


def totp_qr_svg(*, device: TOTPDevice) -> str:
    """The device's otpauth:// address as an inline SVG QR code: the page loads nothing else."""
    image = qrcode.make(device.config_url, image_factory=qrcode.image.svg.SvgPathImage)
    return image.to_string(encoding="unicode")
