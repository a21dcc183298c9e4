"""Sending: the beat tick claims due rows, a worker sends each one once.

The row is the lock and the record. A worker moves it claimed → sending in a transaction *before*
it calls the provider and records the outcome after, so a worker killed mid-send leaves a row in
`sending`; the tick then looks for the text in Twilio's log (every text carries its own link
token, stored hashed against the row, so the match is exact) before it ever sends again. No send
happens inside a transaction that could roll back, no provider call happens while a row lock is
held, and no reminder waits in the broker as an ETA task.

Locks follow the code base's one order (sessions/locking.py): a message's patient, then the
message. The patient's lock is the one every change to their sessions takes first, so a send's
check "is the session still on?" cannot interleave with a cancel: either the cancel withdrew the
message before the worker looked, or the message was already on its way when the cancel ran.
"""

import logging
import random
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import Count, Q, Subquery
from django.utils import timezone

from sessions.locking import lock_patient
from sessions.models import Clinic, Offer, Patient, Recall, Session

from . import links
from .metrics import messages_end, outcome_count
from .models import CANCELLATIONS, Channel, ContactStatus, Heartbeat, Message, StaffFlag
from .rendering import Rendered, render
from .transports.base import TransportError
from .transports.email import send_email
from .transports.sms import sms_transport

log = logging.getLogger(__name__)
Status = Message.Status

TICK_HEARTBEAT = "reminder-tick"
# Claimed ids per dispatch task: small enough that a worker fans a chunk out in a few ms.
DISPATCH_CHUNK = 25
_LINK = re.compile(r"/r/([A-Za-z0-9_-]{10,})")


@dataclass(frozen=True)
class TickResult:
    claimed: list[int]
    requeued: list[int]
    reconciled: int
    expired: int


def reminder_tick(*, now: datetime | None = None, limit: int | None = None) -> TickResult:
    """One beat tick: expire, recover lost work, then claim what is due and hand it to workers."""
    now = now or timezone.now()
    started = time.perf_counter()
    expired = messages_expire(now=now)
    # Recovery works row by row and never raises for one row's sake: the claim below must run
    # whatever an interrupted send left behind.
    reconciled = messages_reconcile_stuck(now=now)
    requeued = messages_requeue_lost(now=now)
    claimed = messages_claim_due(now=now, limit=limit or settings.REMINDER_TICK_BATCH)
    Heartbeat.objects.update_or_create(name=TICK_HEARTBEAT, defaults={"at": now})
    log.info(
        "tick claimed=%d requeued=%d reconciled=%d expired=%d duration_ms=%.1f",
        len(claimed), len(requeued), reconciled, expired, (time.perf_counter() - started) * 1000,
    )  # fmt: skip
    return TickResult(claimed, requeued, reconciled, expired)


def messages_claim_due(*, now: datetime, limit: int) -> list[int]:
    """Claim due planned rows atomically (two beats never claim one row) and enqueue them on commit."""
    with transaction.atomic():
        ids = list(
            Message.objects.select_for_update(skip_locked=True, no_key=True)
            .filter(status=Status.PLANNED, due_at__lte=now)
            .order_by("due_at")
            .values_list("id", flat=True)[:limit]
        )
        if ids:
            Message.objects.filter(id__in=ids).update(status=Status.CLAIMED, lease_expires_at=now + _claim_lease())
            transaction.on_commit(lambda: _enqueue(ids))
    return ids


def messages_requeue_lost(*, now: datetime) -> list[int]:
    """Claimed rows whose task never ran (a broker restart lost it) are handed out again. A task
    that was only slow finds the row no longer claimed and does nothing."""
    with transaction.atomic():
        ids = list(
            Message.objects.select_for_update(skip_locked=True, no_key=True)
            .filter(status=Status.CLAIMED, lease_expires_at__lt=now)
            .values_list("id", flat=True)[: settings.REMINDER_TICK_BATCH]
        )
        if ids:
            Message.objects.filter(id__in=ids).update(lease_expires_at=now + _claim_lease())
            transaction.on_commit(lambda: _enqueue(ids))
    return ids


def messages_expire(*, now: datetime) -> int:
    # Rows another transaction holds (a cancel withdrawing them, a worker sending one) are left
    # for the next tick: one bulk UPDATE waiting on them could close a cycle of waits.
    with transaction.atomic():
        ids = list(
            Message.objects.select_for_update(skip_locked=True, no_key=True)
            .filter(status__in=Message.PENDING, expires_at__lte=now)
            .values_list("id", flat=True)[: settings.REMINDER_TICK_BATCH]
        )
        return messages_end(
            Message.objects.filter(id__in=ids, status__in=Message.PENDING),
            status=Status.EXPIRED,
            reason="not sent before the session started",
            now=now,
        )


def messages_reconcile_stuck(*, now: datetime) -> int:
    """Rows left in `sending` past their lease: find out from the provider whether they went.

    The rows are leased in one short transaction, the provider is asked with no transaction
    open, and each row's outcome is recorded in a transaction of its own: a slow provider holds
    no lock, and a row that cannot be settled now waits for its next lease without holding up
    the others or the claim that follows.
    """
    lease = now + timedelta(seconds=settings.MESSAGE_SEND_LEASE_SECONDS)
    with transaction.atomic():
        ids = list(
            Message.objects.select_for_update(skip_locked=True, no_key=True)
            .filter(status=Status.SENDING, lease_expires_at__lt=now)
            .order_by("lease_expires_at")
            .values_list("id", flat=True)[: settings.REMINDER_RECONCILE_BATCH]
        )
        Message.objects.filter(id__in=ids).update(lease_expires_at=lease)
    done = 0
    deadline = time.monotonic() + settings.REMINDER_RECONCILE_SECONDS
    for message in Message.objects.filter(id__in=ids, lease_expires_at=lease).order_by("id"):
        if time.monotonic() > deadline:
            break
        try:
            done += _reconcile(message, lease, now)
        except Exception:
            # Whatever went wrong with this row (a database error, a provider answer we cannot
            # read), it stays `sending` under its new lease and is looked at again then: never
            # resent blindly, and never in the way of the rows after it.
            log.exception("reconcile message=%d failed; retried after its lease", message.pk)
    return done


def message_send(*, message_id: int, now: datetime | None = None) -> str:
    """Send one claimed message, once. Returns the status it ends the attempt in."""
    try:
        prepared = _begin(message_id, now or timezone.now())
    except DatabaseError:
        raise  # the row is untouched and still claimed: it is handed out again after its lease
    except Exception as exc:
        return _record_broken(message_id, exc, now or timezone.now())
    if isinstance(prepared, str):
        return prepared
    message, rendered = prepared
    started = time.perf_counter()
    try:
        provider_id = _deliver(message, rendered)
    except TransportError as exc:
        outcome = _record_failure(message, exc, now or timezone.now())
    except Exception as exc:
        # Not the provider's answer but our side (a header the mail library refuses, a bug): the
        # same error would come back on every retry, so the attempt ends here, failed and shown
        # to staff, instead of leaving the row in `sending` for ever.
        outcome = _record_broken(message.pk, exc, now or timezone.now())
    else:
        outcome = _record_sent(message, provider_id, now or timezone.now())
    log.info(
        "send message=%d channel=%s to=%s status=%s attempt=%d duration_ms=%.1f",
        message.pk, message.channel, mask(message.recipient), outcome, message.attempts,
        (time.perf_counter() - started) * 1000,
    )  # fmt: skip
    return outcome


def message_record_status(*, message_id: int | None, provider_id: str, status: str, error_code: str = "") -> bool:
    """A provider callback: move the status forward only. False when no such message is ours."""
    wanted = _CALLBACK_STATUS.get(status)
    ours = Q(provider_id=provider_id)
    if message_id is not None:
        # The callback can overtake the worker recording the SID: our id in its URL finds the row.
        ours |= Q(pk=message_id, provider_id=None)
    with transaction.atomic():
        message = Message.objects.filter(ours).select_for_update(no_key=True).first()
        if message is None:
            return False
        if wanted is None or _RANK[wanted] <= _RANK[message.status]:
            return True
        message.status = wanted
        message.provider_id = provider_id
        message.provider_error = error_code[:20]
        fields = ["status", "provider_id", "provider_error", "updated_at"]
        if wanted == Status.DELIVERED:
            message.delivered_at = timezone.now()
            fields.append("delivered_at")
        message.save(update_fields=fields)
        if wanted in (Status.UNDELIVERED, Status.FAILED):
            _flag(message, StaffFlag.Kind.DELIVERY_FAILED, f"Text {wanted} (carrier code {error_code or 'none'}).")
        if wanted in (Status.DELIVERED, Status.UNDELIVERED, Status.FAILED):
            # The text was counted sent when Twilio took it: the carrier's word is counted apart.
            delivered = wanted == Status.DELIVERED
            outcome_count(
                channel=message.channel,
                outcome="delivered" if delivered else "undelivered",
                reason="" if delivered else message.provider_error,
            )
    return True


def mask(recipient: str) -> str:
    """A phone or address for logs: enough to tell two apart, not enough to contact anyone."""
    if "@" in recipient:
        name, _, domain = recipient.partition("@")
        return f"{name[:1]}***@{domain}"
    return f"{recipient[:3]}***{recipient[-2:]}" if len(recipient) > 5 else "***"


# Ranks for "status only moves forward". A callback's sent can never undo a delivered.
_RANK = {
    Status.PLANNED: 0, Status.CLAIMED: 1, Status.SENDING: 2, Status.SENT: 3,
    Status.DELIVERED: 4, Status.UNDELIVERED: 4, Status.FAILED: 4,
    Status.CANCELLED: 4, Status.SKIPPED: 4, Status.EXPIRED: 4,
}  # fmt: skip
_CALLBACK_STATUS = {
    "sent": Status.SENT,
    "delivered": Status.DELIVERED,
    "undelivered": Status.UNDELIVERED,
    "failed": Status.FAILED,
}


def _begin(message_id: int, now: datetime) -> tuple[Message, Rendered] | str:
    """Check, render and mark the row `sending` in one short transaction, before any I/O."""
    with transaction.atomic():
        message = _lock_message(message_id)
        if message is None or message.status != Status.CLAIMED:
            return "not claimed"
        # The patient's lock (taken first) also serialises their sends, so two workers cannot
        # both pass the caps.
        patient = message.patient
        refusal = _refusal(message, patient, now)
        if refusal is not None:
            status, reason = refusal
            message.status, message.reason = status, reason
            message.save(update_fields=["status", "reason", "updated_at"])
            outcome_count(channel=message.channel, outcome=status, reason=reason)
            return status
        token = links.link_create(session=message.session, offer=message.offer, recall=message.recall, message=message)
        rendered = render(message, token=token)
        if rendered is None:
            message.status, message.reason = Status.FAILED, "the wording does not fit one text"
            message.save(update_fields=["status", "reason", "updated_at"])
            outcome_count(channel=message.channel, outcome=Status.FAILED, reason=message.reason)
            _flag(message, StaffFlag.Kind.SMS_REFUSED, "Message wording too long for one text: shorten it.")
            return Status.FAILED
        message.status = Status.SENDING
        message.attempts += 1
        message.recipient = patient.phone if message.channel == Channel.SMS else patient.email
        message.body_redacted = links.redact(rendered.body)
        message.sending_started_at = now
        message.lease_expires_at = now + timedelta(seconds=settings.MESSAGE_SEND_LEASE_SECONDS)
        message.save()
    return message, rendered


def _refusal(message: Message, patient: Patient, now: datetime) -> tuple[str, str] | None:
    if now >= message.expires_at:
        return Status.EXPIRED, _expired_reason(message)
    refused = _owner_refusal(message)
    if refused is not None:
        return Status.CANCELLED, refused
    if message.channel == Channel.EMAIL:
        if not (patient.email_enabled and patient.email):
            return Status.SKIPPED, "no email address to send to"
        return None
    refused = sms_refusal(patient=patient, clinic=message.clinic, now=now)
    return None if refused is None else (Status.SKIPPED, refused)


def _expired_reason(message: Message) -> str:
    if message.offer_id is not None:
        return "the offer ended before it was sent"
    if message.recall_id is not None:
        return "not sent within its week"
    return "not sent before the session started"


def _owner_refusal(message: Message) -> str | None:
    """Why what the message is about no longer wants it sent: a session cancelled or moved (a
    cancellation notice goes all the same), an offer no longer out, a recall answered."""
    if message.offer is not None:
        offer = message.offer
        return None if offer.status == Offer.Status.OFFERED else f"offer {offer.get_status_display().lower()}"
    if message.recall is not None:
        recall = message.recall
        return None if recall.status in Recall.OPEN else f"recall {recall.get_status_display().lower()}"
    session: Session = message.session
    if message.purpose in CANCELLATIONS:
        return None
    if session.status not in Session.UPCOMING:
        return f"session {session.get_status_display().lower()}"
    if session.version != message.session_version:
        return "session moved"
    return None


def sms_refusal(*, patient: Patient, clinic: Clinic, now: datetime) -> str | None:
    """Why a text to the patient cannot go now, or None: opt-out, texts off, a phone the provider
    refused, quiet hours in the patient's zone, the daily and weekly caps. The patient's row is
    locked by the caller, so two sends cannot both pass the caps."""
    if patient.sms_opted_out_at is not None:
        return "patient opted out of texts"
    if not (patient.sms_enabled and patient.phone):
        return "texts are off for this patient"
    problem = ContactStatus.objects.filter(patient=patient, phone=patient.phone).exclude(sms_problem="").first()
    if problem is not None:
        return f"phone refused earlier: {problem.get_sms_problem_display().lower()}"
    quiet = quiet_hours_refusal(patient=patient, clinic=clinic, now=now)
    if quiet is not None:
        return quiet
    day_start = now.astimezone(patient.zone).replace(hour=0, minute=0, second=0, microsecond=0)
    sent = Message.objects.filter(
        patient=patient,
        channel=Channel.SMS,
        status__in=Message.WENT_OUT,
        sending_started_at__gt=now - timedelta(days=7),
    ).aggregate(today=Count("pk", filter=Q(sending_started_at__gte=day_start)), week=Count("pk"))
    return caps_refusal(today=sent["today"], week=sent["week"])


def quiet_hours_refusal(*, patient: Patient, clinic: Clinic, now: datetime) -> str | None:
    """sms_refusal's quiet hours: outside the clinic's message window in the patient's zone."""
    if not clinic.message_window_start <= now.astimezone(patient.zone).time() < clinic.message_window_end:
        return "quiet hours in the patient's time zone"
    return None


def caps_refusal(*, today: int, week: int) -> str | None:
    """sms_refusal's caps, given the texts that went out on the patient's day and in the 7 days
    before now."""
    if today >= settings.SMS_DAILY_CAP:
        return f"daily text limit ({settings.SMS_DAILY_CAP}) reached"
    if week >= settings.SMS_WEEKLY_CAP:
        return f"weekly text limit ({settings.SMS_WEEKLY_CAP}) reached"
    return None


def _deliver(message: Message, rendered: Rendered) -> str:
    if message.channel == Channel.SMS:
        callback = f"{settings.PUBLIC_BASE_URL.rstrip('/')}/twilio/sms/status/?m={message.pk}"
        return sms_transport().send(
            message_id=message.pk, to=message.recipient, body=rendered.body, status_callback=callback
        )
    return send_email(
        to=message.recipient,
        subject=rendered.subject,
        text=rendered.body,
        sender_name=message.clinic.sender_name,
        invites=rendered.invites,
    )


def _record_sent(message: Message, provider_id: str, now: datetime) -> str:
    moved = Message.objects.filter(pk=message.pk, status=Status.SENDING).update(
        status=Status.SENT, provider_id=provider_id, sent_at=now, reason="", updated_at=now
    )
    if not moved:
        # A status callback overtook us and already moved the row forward: keep its status.
        Message.objects.filter(pk=message.pk, sent_at=None).update(sent_at=now, provider_id=provider_id)
    outcome_count(channel=message.channel, outcome=Status.SENT)
    return Status.SENT


def _record_failure(message: Message, error: TransportError, now: datetime) -> str:
    with transaction.atomic():
        current = _lock_message(message.pk)
        if current is None:
            return "gone"
        if current.status != Status.SENDING:
            return current.status
        if error.uncertain:
            # Leave it in `sending`: once its lease ends the tick checks the provider's log.
            current.reason = str(error)
            current.save(update_fields=["reason", "updated_at"])
            return Status.SENDING
        if error.permanent:
            _fail_permanently(current, error, now)
            return Status.FAILED
        _retry_or_expire(current, str(error), now)
        return current.status


def _record_broken(message_id: int, error: Exception, now: datetime) -> str:
    log.exception("send message=%d failed on our side: %s", message_id, type(error).__name__)
    with transaction.atomic():
        current = _lock_message(message_id)
        if current is None:
            return "gone"
        if current.status not in (Status.CLAIMED, Status.SENDING):
            return current.status
        detail = str(error).splitlines()[0][:120] if str(error) else ""
        _fail_permanently(current, TransportError(f"could not be sent: {type(error).__name__} {detail}".strip()), now)
    return Status.FAILED


def _retry_or_expire(message: Message, reason: str, now: datetime) -> None:
    retry_at = now + _backoff(message.attempts)
    if retry_at >= message.expires_at:
        message.status, message.reason = Status.EXPIRED, f"gave up after {message.attempts} attempts: {reason}"
        outcome_count(channel=message.channel, outcome=Status.EXPIRED, reason=message.reason)
    else:
        message.status, message.reason, message.due_at = Status.PLANNED, f"retrying: {reason}", retry_at
        # Not an end, but a failed attempt: an outage that is only ever retried still shows.
        outcome_count(channel=message.channel, outcome="retrying", reason=reason)
    message.lease_expires_at = None
    message.save(update_fields=["status", "reason", "due_at", "lease_expires_at", "updated_at"])


def _backoff(attempts: int) -> timedelta:
    """Exponential with full jitter: the n-th retry waits up to base × 2^(n-1), capped."""
    ceiling = min(settings.MESSAGE_RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0), settings.MESSAGE_RETRY_MAX_SECONDS)
    return timedelta(seconds=random.uniform(ceiling / 2, ceiling))


def _fail_permanently(message: Message, error: TransportError, now: datetime) -> None:
    message.status, message.reason, message.provider_error = Status.FAILED, str(error)[:300], error.code
    message.save(update_fields=["status", "reason", "provider_error", "updated_at"])
    outcome_count(channel=message.channel, outcome=Status.FAILED, reason=message.reason)
    if message.channel != Channel.SMS:
        _flag(message, StaffFlag.Kind.SMS_REFUSED, f"Email refused: {error}")
        return
    if error.code in ContactStatus.Problem.values:
        ContactStatus.objects.update_or_create(
            patient_id=message.patient_id,
            defaults={"phone": message.recipient, "sms_problem": error.code, "sms_problem_at": now},
        )
    fallback = _email_fallback(message, now)
    problem = ContactStatus.Problem(error.code).label if error.code in ContactStatus.Problem.values else str(error)
    also = "; sent by email instead" if fallback else "; no email to fall back to"
    _flag(message, StaffFlag.Kind.SMS_REFUSED, f"Text refused: {problem}{also}.")


def _email_fallback(message: Message, now: datetime) -> Message | None:
    patient = message.patient
    if not (patient.email and patient.email_enabled):
        return None
    fallback, _ = Message.objects.get_or_create(
        session_id=message.session_id,
        offer_id=message.offer_id,
        recall_id=message.recall_id,
        clinic_id=message.clinic_id,
        purpose=message.purpose,
        key=f"fallback-{message.pk}",
        channel=Channel.EMAIL,
        session_version=message.session_version,
        defaults={
            "patient": patient,
            "rule": message.rule,
            "due_at": now,
            "expires_at": message.expires_at,
            "recipient": patient.email,
        },
    )
    return fallback


def _reconcile(message: Message, lease: datetime, now: datetime) -> int:
    """Did the stuck send reach the provider? Found: sent. Not found: send again (or expire).
    1 when the row was settled, 0 when it waits for its next lease."""
    logged: list = []
    if message.channel == Channel.SMS:
        try:
            logged = sms_transport().sent_since(
                message_id=message.pk, to=message.recipient, since=message.sending_started_at
            )
        except TransportError:
            return 0  # the log is unavailable: ask again when this lease ends
    ours = links.message_token_hashes(message=message)
    candidates = [text.sid for text in logged if any(links.token_hash(t) in ours for t in _LINK.findall(text.body))]
    with transaction.atomic():
        current = _lock_message(message.pk)
        if current is None or current.status != Status.SENDING or current.lease_expires_at != lease:
            return 0  # settled meanwhile (a late status callback, another beat)
        # Only this row's own token matches, so a text can belong to no other row; the check
        # stands guard against adopting an id another row holds, which the unique key forbids.
        taken = set(Message.objects.filter(provider_id__in=candidates).values_list("provider_id", flat=True))
        found = next((sid for sid in candidates if sid not in taken), None)
        if found is not None:
            current.status, current.provider_id, current.sent_at = Status.SENT, found, now
            current.reason = "found in the provider's log after an interrupted send"
            current.save(update_fields=["status", "provider_id", "sent_at", "reason", "updated_at"])
            outcome_count(channel=current.channel, outcome=Status.SENT, reason=current.reason)
            return 1
        # Not in the log (or email, which has no log to ask): it never went; try again.
        current.status = Status.CLAIMED
        current.reason = "interrupted send not found at the provider; sending again"
        current.lease_expires_at = now + _claim_lease()
        current.save(update_fields=["status", "reason", "lease_expires_at", "updated_at"])
        transaction.on_commit(lambda: _enqueue([current.pk]))
    return 1


def _lock_message(message_id: int) -> Message | None:
    """The message's row, locked after its patient's (sessions/locking.py), with what a send
    reads: its session's clinic and protocol, and the locked patient with their clinic."""
    patient = lock_patient(pk=Subquery(Message.objects.filter(pk=message_id).values("patient_id")[:1]))
    if patient is None:
        return None
    message = (
        Message.objects.select_for_update(of=("self",), no_key=True)
        .select_related(
            "clinic",
            "session__clinic",
            "session__series__protocol",
            "offer__opening",
            "offer__entry__protocol",
            "recall__protocol",
        )
        .filter(pk=message_id)
        .first()
    )
    if message is not None:
        message.patient = patient
    return message


def _flag(message: Message, kind: str, detail: str) -> None:
    StaffFlag.objects.create(
        clinic=message.clinic,
        patient_id=message.patient_id,
        session_id=message.session_id,
        message=message,
        kind=kind,
        detail=detail[:300],
    )


def _claim_lease() -> timedelta:
    return timedelta(seconds=settings.MESSAGE_CLAIM_LEASE_SECONDS)


def _enqueue(ids: list[int]) -> None:
    """Hand claimed ids to the workers: a dispatch task per chunk, published over one connection."""
    from .tasks import dispatch_sends

    chunks = [ids[at : at + DISPATCH_CHUNK] for at in range(0, len(ids), DISPATCH_CHUNK)]
    _publish(dispatch_sends, [(chunk,) for chunk in chunks])


def enqueue_sends(ids: list[int]) -> None:
    from .tasks import send_message

    _publish(send_message, [(message_id,) for message_id in ids])


def _publish(task, argument_lists: list[tuple]) -> None:
    # One producer and one pipelined batch instead of a connection checkout and a round trip per
    # task: publishing, not claiming, was most of a tick's time.
    with task.app.producer_or_acquire() as producer:
        for arguments in argument_lists:
            task.apply_async(arguments, producer=producer)
