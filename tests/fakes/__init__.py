"""Fakes of the far edges the app talks to: Twilio's REST API and an SMTP server, on loopback."""

from tests.fakes.smtp_sink import ReceivedEmail, SmtpSink
from tests.fakes.twilio_server import (
    FakeMessage,
    FakeTwilio,
    ReceivedRequest,
    StatusCallback,
    error,
    hang,
    too_many_requests,
)

__all__ = [
    "FakeMessage",
    "FakeTwilio",
    "ReceivedEmail",
    "ReceivedRequest",
    "SmtpSink",
    "StatusCallback",
    "error",
    "hang",
    "too_many_requests",
]
