from collections.abc import Iterator

import pytest

from tests.fakes import FakeTwilio, SmtpSink

FROM_NUMBER = "+16025550199"


@pytest.fixture
def twilio(settings) -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        settings.TWILIO_ACCOUNT_SID = fake.account_sid
        settings.TWILIO_AUTH_TOKEN = fake.auth_token
        settings.TWILIO_FROM_NUMBER = FROM_NUMBER
        settings.TWILIO_MESSAGING_SERVICE_SID = ""
        settings.TWILIO_API_BASE_URL = fake.base_url
        settings.TWILIO_TIMEOUT_SECONDS = 2
        yield fake


@pytest.fixture
def smtp(settings) -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST = sink.host
        settings.EMAIL_PORT = sink.port
        settings.EMAIL_USE_TLS = False
        settings.EMAIL_HOST_USER = ""
        settings.EMAIL_HOST_PASSWORD = ""
        yield sink


@pytest.fixture(autouse=True)
def _no_broker_kick(settings) -> None:
    # Unit tests call the tick and the send directly; a real worker is started where the path matters.
    settings.REMINDER_KICK_ON_BOOKING = False
