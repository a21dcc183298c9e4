"""Email through Django's configured backend (SMTP in production): text, HTML and an .ics invite."""

from dataclasses import dataclass
from datetime import datetime
from email.utils import formataddr, make_msgid

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.utils import timezone
from django.utils.html import escape, linebreaks
from icalendar import Calendar, Event, vText

from .base import TransportError


@dataclass(frozen=True)
class Invite:
    uid: str
    sequence: int
    starts_at: datetime
    ends_at: datetime
    summary: str
    location: str
    cancelled: bool = False


def send_email(*, to: str, subject: str, text: str, sender_name: str, invites: tuple[Invite, ...] = ()) -> str:
    """Send one email; each invite rides as its own .ics attachment (one event per iTIP message)."""
    message_id = make_msgid(domain=settings.EMAIL_MESSAGE_ID_DOMAIN)
    message = EmailMultiAlternatives(
        subject=subject,
        body=text,
        from_email=formataddr((sender_name, settings.DEFAULT_FROM_EMAIL)),
        to=[to],
        headers={"Message-ID": message_id},
    )
    message.attach_alternative(linebreaks(escape(text)), "text/html")
    for n, invite in enumerate(invites, start=1):
        method = "CANCEL" if invite.cancelled else "REQUEST"
        name = "visit.ics" if len(invites) == 1 else f"visit-{n}.ics"
        message.attach(name, _ics(invite, method), f"text/calendar; method={method}; charset=utf-8")
    try:
        message.send()
    except OSError as exc:  # smtplib's errors are OSErrors: refused, dropped, timed out
        raise TransportError(f"mail server: {type(exc).__name__}") from exc
    return message_id


def _ics(invite: Invite, method: str) -> bytes:
    calendar = Calendar()
    calendar.add("prodid", "-//Session scheduling//EN")
    calendar.add("version", "2.0")
    calendar.add("method", method)
    event = Event()
    event.add("uid", invite.uid)
    # A calendar app replaces an event with the same UID and a higher SEQUENCE: a move updates it.
    event.add("sequence", invite.sequence)
    event.add("dtstamp", timezone.now())
    event.add("dtstart", invite.starts_at)
    event.add("dtend", invite.ends_at)
    event.add("summary", invite.summary)
    event["location"] = vText(invite.location)
    if invite.cancelled:
        event.add("status", "CANCELLED")
    calendar.add_component(event)
    return calendar.to_ical()
