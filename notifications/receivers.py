"""The booking core's signals, heard inside its transaction: plan or withdraw messages with it."""

from datetime import datetime
from typing import Any

from django.db.models.signals import post_save
from django.dispatch import receiver

from sessions import signals
from sessions.models import Clinic, Session

from . import planning


@receiver(signals.sessions_booked)
def on_sessions_booked(sender: Any, sessions: list[Session], now: datetime, **kwargs: Any) -> None:
    planning.messages_plan_booking(sessions=sessions, now=now)


@receiver(signals.session_moved)
def on_session_moved(sender: Any, session: Session, now: datetime, **kwargs: Any) -> None:
    if not kwargs.get("in_reflow"):  # a re-flow's messages are planned once, for all its sessions
        planning.messages_plan_move(session=session, now=now)


@receiver(signals.series_reflowed)
def on_series_reflowed(sender: Any, sessions: list[Session], now: datetime, **kwargs: Any) -> None:
    planning.messages_plan_reflow(sessions=sessions, now=now)


@receiver(signals.session_status_changed)
def on_session_status_changed(sender: Any, session: Session, now: datetime, **kwargs: Any) -> None:
    if session.status == Session.Status.CANCELLED and kwargs.get("with_series"):
        planning.messages_withdraw(session=session, reason="series cancelled", now=now)
    elif session.status == Session.Status.CANCELLED:
        planning.messages_plan_cancellation(session=session, now=now)
    elif kwargs.get("previous_status") == Session.Status.CANCELLED:
        # A cancel taken back: the session is booked again, under a new version.
        planning.messages_plan_reinstated(session=session, now=now)
    elif session.status not in Session.UPCOMING:
        # Arrived, completed or no-show: nothing left to remind of.
        reason = f"session {session.get_status_display().lower()}"
        planning.messages_withdraw(session=session, reason=reason, now=now)


@receiver(signals.series_cancelled)
def on_series_cancelled(sender: Any, sessions: list[Session], now: datetime, **kwargs: Any) -> None:
    planning.messages_plan_series_cancellation(sessions=sessions, now=now)


@receiver(post_save, sender=Clinic)
def on_clinic_saved(sender: Any, instance: Clinic, created: bool, **kwargs: Any) -> None:
    if created and not kwargs.get("raw"):
        planning.rules_create_defaults(clinic=instance)
