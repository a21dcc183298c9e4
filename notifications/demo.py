"""The demo's messages, beside `sessions.demo`: today's demo visits were booked as of before the
clinic opened, so reminders that were due between then and the seeding are stored skipped, as
any reminder is that was due before its booking, rather than sent late when `make run` starts."""

from datetime import datetime

from sessions.models import Session

from .metrics import messages_end
from .models import Message


def demo_messages_settle(*, sessions: list[Session], now: datetime) -> int:
    overdue = Message.objects.filter(session__in=sessions, status=Message.Status.PLANNED, due_at__lt=now)
    return messages_end(overdue, status=Message.Status.SKIPPED, reason="booked after this reminder was due", now=now)
