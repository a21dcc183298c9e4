from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest

from sessions.models import Clinic, OpeningHours
from tests.factories import clinic_make
from tests.fakes import FakeMessage, FakeTwilio, SmtpSink
from tests.processes import CeleryProcess, RedisServer, celery_env

FROM_NUMBER = "+16025550199"
TICK = 1.0


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


@pytest.fixture
def redis(tmp_path) -> Iterator[RedisServer]:
    """A Redis of the test's own: free to stop and restart."""
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def processes(tmp_path, redis, twilio, smtp) -> Iterator[Callable[..., CeleryProcess]]:
    """Starts `celery worker` / `celery beat` processes on the test database; stops them all after."""
    started: list[CeleryProcess] = []

    def start(kind: str, *extra: str, **env: str) -> CeleryProcess:
        process = CeleryProcess(
            kind,
            celery_env(redis_url=redis.url, twilio=twilio, smtp=smtp, tick_seconds=TICK, **env),
            tmp_path / f"{kind}-{len(started)}.log",
            *extra,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def message_id(text: FakeMessage) -> int:
    """Our message id, from the StatusCallback URL the text was sent with."""
    return int(parse_qs(urlsplit(text.status_callback or "").query)["m"][0])


def zone_where_it_is(hour: int) -> str:
    """An IANA zone whose clock reads `hour` o'clock now, so that a test needing hours left in
    today runs the same at any real time of day."""
    offset = (hour - datetime.now(UTC).hour) % 24
    offset = offset - 24 if offset > 14 else offset
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"


def always_open_clinic(chairs: int = 4, **fields) -> Clinic:
    """Open and allowed to text around the clock, so a test with real clocks passes at any hour;
    unless told otherwise its clock reads 06:00 now, so that a session soon after now and its
    chair time fall inside today's 00:00–23:59."""
    fields.setdefault("time_zone", zone_where_it_is(6))
    clinic = clinic_make(chairs=chairs, message_window_start=datetime.min.time(), **fields)
    clinic.message_window_end = datetime.max.time().replace(microsecond=0)
    clinic.save()
    OpeningHours.objects.filter(clinic=clinic).update(opens="00:00", closes="23:59")
    return clinic
