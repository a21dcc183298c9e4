"""Staff working the inbox: a reply that needs a person, or a flag, is marked handled once.

The mark is a compare-and-set on `handled_at`, so two people clicking at once record one
handler, and the second learns that someone was faster.
"""

from datetime import UTC, datetime

from django.db import transaction
from django.utils import timezone

from sessions.models import Session
from sessions.services import audit_record

from .models import InboxText, StaffFlag


def inbox_text_mark_handled(*, text: InboxText, actor, now: datetime | None = None) -> bool:
    """False when the text was handled already (or never needed a person). Marks this clinic's
    copy only: another clinic the same number texts handles its own."""
    now = now or timezone.now()
    with transaction.atomic():
        marked = InboxText.objects.filter(pk=text.pk, needs_staff=True, handled_at=None).update(
            handled_at=now, handled_by=actor
        )
        if marked:
            received = f"{text.inbound.received_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
            audit_record(
                patient=text.patient_id, clinic=text.clinic_id, action="reply handled", via=Session.Channel.STAFF,
                actor=actor, at=now, detail=f"text received {received}",
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
