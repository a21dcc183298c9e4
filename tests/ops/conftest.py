# The end-to-end fixtures (a Redis of the test's own, fake Twilio, SMTP sink).
from tests.notifications.conftest import redis, smtp, twilio  # noqa: F401
