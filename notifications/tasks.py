"""Celery entry points: ids in, a service call, nothing kept in a result backend."""

import logging

from celery import shared_task
from django.utils import timezone

from . import offers, sending, staff_tasks
from .metrics import TICK_DURATION

log = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def reminder_tick() -> None:
    with TICK_DURATION.time():
        now = timezone.now()
        # Offers and recalls first: their texts, planned due now, go out with this tick's claim.
        for work in (offers.offers_tick, offers.recalls_text):
            try:
                work(now=now)
            except Exception:
                log.exception("tick: %s failed; the sending goes on", work.__name__)
        sending.reminder_tick()
        # Drivers still unconfirmed at T-24 h: checked on the tick, the only periodic task, so that
        # one beat schedule covers it.
        staff_tasks.driver_tasks_raise(now=timezone.now())


@shared_task(ignore_result=True)
def send_message(message_id: int) -> None:
    sending.message_send(message_id=message_id)


@shared_task(ignore_result=True)
def dispatch_sends(message_ids: list[int]) -> None:
    """Fan a chunk of claimed ids out to one send task each, so the tick publishes a few tasks
    instead of a thousand and every text still has a task (and a timeout) of its own."""
    sending.enqueue_sends(message_ids)
