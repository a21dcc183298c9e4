# The end-to-end fixtures (a Redis of the test's own, Celery processes, fake Twilio, SMTP sink).
from tests.notifications.conftest import processes, redis, smtp, twilio  # noqa: F401
