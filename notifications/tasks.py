"""Celery entry points: ids in, a service call, nothing kept in a result backend."""

from celery import shared_task
from django.utils import timezone

from . import sending, staff_tasks


@shared_task(ignore_result=True)
def reminder_tick() -> None:
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
