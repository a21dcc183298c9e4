"""Staff working the inbox: a reply that needs a person, or a flag, is marked handled once.

The mark is a compare-and-set on `handled_at`, so two people clicking at once record one
handler, and the second learns that someone was faster.
"""

from datetime import UTC, datetime

from django.db import transaction
from django.utils import timezone

from sessions.models import Session
from sessions.services import audit_record

from .models import InboundSms, StaffFlag


def inbound_mark_handled(*, inbound: InboundSms, actor, now: datetime | None = None) -> bool:
    """False when the text was handled already (or never needed a person)."""
    now = now or timezone.now()
    with transaction.atomic():
        marked = InboundSms.objects.filter(pk=inbound.pk, needs_staff=True, handled_at=None).update(
            handled_at=now, handled_by=actor
        )
        if marked and inbound.patient_id is not None:
            received = f"{inbound.received_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
            audit_record(
                patient=inbound.patient_id, action="reply handled", via=Session.Channel.STAFF, actor=actor, at=now,
                detail=f"text received {received}",
            )  # fmt: skip
    return bool(marked)


def flag_mark_handled(*, flag: StaffFlag, actor, now: datetime | None = None) -> bool:
    """False when the flag was handled already."""
    now = now or timezone.now()
    with transaction.atomic():
        marked = StaffFlag.objects.filter(pk=flag.pk, handled_at=None).update(handled_at=now, handled_by=actor)
        if marked:
            audit_record(
                patient=flag.patient_id, action="flag handled", via=Session.Channel.STAFF, actor=actor, at=now,
                detail=flag.get_kind_display(),
            )  # fmt: skip
    return bool(marked)
