"""The service's own counters about messages, read at /metrics (scheduler/metrics.py).

Each is counted where the outcome is decided, once its transaction commits: an outcome that rolled
back never happened. With PROMETHEUS_MULTIPROC_DIR set, every process (gunicorn's, Celery's) adds
to files of its own that /metrics sums. What the database holds at a moment (late and stuck
messages, the tick's last run) is read at each scrape instead, not counted here.

Labels say how many and why, never who: no clinic, patient, phone or free text. /metrics is for
whoever runs the service, and a label could not be scoped to one clinic's staff.
"""

import re
from collections import Counter as Tally
from collections.abc import Iterable
from datetime import datetime

from django.db import transaction
from django.db.models import QuerySet
from prometheus_client import Counter, Histogram

from .models import Channel, Message

MESSAGES = Counter(
    "scheduler_messages_total",
    "Messages by channel and outcome: sent, failed, skipped, expired, cancelled; retrying (a send "
    "attempt that failed and will be tried again); delivered and undelivered (the carrier's word on "
    "a text already counted sent). reason: the reason's stable head (reason_group).",
    ["channel", "outcome", "reason"],
)
INBOUND_TEXTS = Counter(
    "scheduler_inbound_texts_total", "Patients' texts received, by the command read in them.", ["command"]
)
TICK_DURATION = Histogram(
    "scheduler_tick_duration_seconds",
    "How long beat's reminder tick took on a worker: offers, recalls, expiry, recovery and the claim.",
    # A quiet tick takes milliseconds; recovery may ask Twilio for up to REMINDER_RECONCILE_SECONDS.
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)

# A reason's head ends at the first of these; what follows names the row's own details.
_REASON_DETAIL = re.compile(r"[:;]")
# Longer heads are cut: a label must stay short, whatever a provider's error says.
REASON_GROUP_LENGTH = 60


def reason_group(reason: str) -> str:
    """The stable head of a message's reason, for counting messages by why they ended as they did.

    Reasons are written cause first, then the row's own details after a ":" or ";" ("phone
    refused earlier: invalid phone number", "quiet hours: sent by email instead", "gave up after 3
    attempts: Twilio 503", "would fall in quiet hours; emails are off"). The head is the text before
    the first ":" or ";", stripped and cut to REASON_GROUP_LENGTH characters, so the groups stay
    few: a count such as "daily text limit (1) reached" keeps its number. "" (a sent message) stays "".
    """
    return _REASON_DETAIL.split(reason, maxsplit=1)[0].strip()[:REASON_GROUP_LENGTH]


def outcome_count(*, channel: str, outcome: str, reason: str = "", count: int = 1) -> None:
    """Count `count` messages of `channel` ending in `outcome` once the transaction commits (at once
    outside one). A failure to count is logged by Django and never undoes or interrupts the send."""
    if count <= 0:
        return
    labels = (channel, outcome, reason_group(reason))
    transaction.on_commit(lambda: MESSAGES.labels(*labels).inc(count), robust=True)


def outcomes_count(*, rows: Iterable[Message], outcome: str) -> None:
    """outcome_count for each row, by its channel and reason."""
    for (channel, reason), count in Tally((row.channel, reason_group(row.reason)) for row in rows).items():
        outcome_count(channel=channel, outcome=outcome, reason=reason, count=count)


def messages_end(messages: QuerySet[Message], *, status: str, reason: str, now: datetime) -> int:
    """messages.update(status=…, reason=…): one statement per channel, so each channel's rows are
    counted exactly as the database changed them. Returns how many rows changed."""
    changed = 0
    for channel in Channel.values:
        moved = messages.filter(channel=channel).update(status=status, reason=reason, updated_at=now)
        outcome_count(channel=channel, outcome=status, reason=reason, count=moved)
        changed += moved
    return changed


def inbound_count(*, command: str) -> None:
    transaction.on_commit(lambda: INBOUND_TEXTS.labels(command).inc(), robust=True)
