"""Celery entry points: ids in, a service call, nothing kept in a result backend."""

from celery import shared_task

from . import sending


@shared_task(ignore_result=True)
def reminder_tick() -> None:
    sending.reminder_tick()


@shared_task(ignore_result=True)
def send_message(message_id: int) -> None:
    sending.message_send(message_id=message_id)
