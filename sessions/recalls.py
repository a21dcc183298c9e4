"""Booster recall, as staff work it: who is due, who is overdue, and their answers.

A recall is made when a series completes (services._recall_follow, the one place a series turns
completed) and answered when its booster is booked (services.series_book, whatever the edge).
Here: the open recalls in the order staff should call, "not now" (a snooze to a day) and a
decline, each on the audit trail.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from .clock import local_date
from .models import Clinic, Recall, Session
from .services import audit_record


@dataclass(frozen=True)
class RecallRow:
    recall: Recall
    # "soon" (due within RECALL_SOON_DAYS), "due", "overdue" (RECALL_OVERDUE_DAYS past due), "snoozed"
    state: str


def recalls_open(*, clinic: Clinic, now: datetime | None = None) -> list[RecallRow]:
    """The clinic's open recalls due within RECALL_SOON_DAYS or past due, overdue first."""
    today = local_date(now or timezone.now(), clinic.zone)
    horizon = today + timedelta(days=settings.RECALL_SOON_DAYS)
    recalls = (
        Recall.objects.filter(clinic=clinic, status__in=Recall.OPEN, due_on__lte=horizon)
        .select_related("patient__contact_status", "protocol", "series__protocol")
        .order_by("due_on", "id")
    )
    rows = [RecallRow(recall, _state(recall, today)) for recall in recalls]
    order = {"overdue": 0, "due": 1, "soon": 2, "snoozed": 3}
    return sorted(rows, key=lambda row: order[row.state])


def _state(recall: Recall, today: date) -> str:
    if recall.status == Recall.Status.SNOOZED and recall.snoozed_until and recall.snoozed_until > today:
        return "snoozed"
    if recall.due_on > today:
        return "soon"
    overdue = recall.due_on + timedelta(days=settings.RECALL_OVERDUE_DAYS)
    return "overdue" if today > overdue else "due"


def recall_snooze(
    *, recall: Recall, until: date, actor=None, via: str = Session.Channel.STAFF, now: datetime | None = None
) -> Recall:
    """ "Not now": the recall comes back on `until`."""
    now = now or timezone.now()
    today = local_date(now, recall.clinic.zone)
    if until <= today:
        raise ValidationError({"until": "Snooze to a day after today."})
    if until > today + timedelta(days=365):
        raise ValidationError({"until": "Snooze for a year at most."})
    return _answer(recall, Recall.Status.SNOOZED, "recall not now", f"until {until:%d %b %Y}", actor, via, now,
                   until=until)  # fmt: skip


def recall_decline(
    *, recall: Recall, actor=None, via: str = Session.Channel.STAFF, now: datetime | None = None
) -> Recall:
    """The patient does not want the booster: the recall ends."""
    return _answer(recall, Recall.Status.DECLINED, "recall declined", "", actor, via, now or timezone.now())


def _answer(
    recall: Recall, status: str, action: str, detail: str, actor, via: str, now: datetime, *, until: date | None = None
) -> Recall:
    with transaction.atomic():
        recall = Recall.objects.select_for_update(no_key=True).get(pk=recall.pk)
        if recall.status not in Recall.OPEN:
            raise ValidationError({"status": f"This recall is {recall.get_status_display().lower()} already."})
        recall.status, recall.snoozed_until = status, until
        recall.closed_at = None if status == Recall.Status.SNOOZED else now
        recall.save(update_fields=["status", "snoozed_until", "closed_at"])
        audit_record(patient=recall.patient_id, series=recall.series, action=action, via=via, actor=actor, at=now,
                     detail=f"{recall.protocol}: {detail}" if detail else str(recall.protocol))  # fmt: skip
    return recall
