"""Offers racing everything that touches them, each on its own connection: three accepts, a no
thanks, the staff's undo of the cancel, the tick's expiry and offering, all released at once.
One lock order (clinic → patient → … → opening → offer) means no deadlock and no error; the
freed time is held by at most one visit, and an accepted offer is the one that holds it."""

import threading
from collections import Counter
from datetime import time, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from notifications import offers
from sessions.calendar import BookingConflict
from sessions.clock import local_date, wall_clock
from sessions.models import Offer, Opening, Session
from sessions.services import series_book, session_cancel, session_undo
from sessions.waitlist import offer_accept, offer_decline, waitlist_join
from tests.factories import patient_make, protocol_make, staffing_make
from tests.notifications.conftest import always_open_clinic

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.concurrency,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks and deadlocks are PostgreSQL's"),
]
ROUNDS = 12


def released_at_once(attempts: dict[str, object]) -> Counter:
    """Each attempt in a thread of its own, all let go together; what each ended in."""
    gate = threading.Barrier(len(attempts))
    outcomes: Counter = Counter()
    lock = threading.Lock()

    def run(name: str, attempt) -> None:
        try:
            gate.wait()
            outcome = attempt()
        except BookingConflict as conflict:
            outcome = conflict.code
        except Exception as error:  # a deadlock or any other error is what this test is for
            outcome = f"error {type(error).__name__}: {error}"
        finally:
            connection.close()
        with lock:
            outcomes[f"{name}: {outcome}"] += 1

    threads = [threading.Thread(target=run, args=item) for item in attempts.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


def wait_for(clinic, booster, start, now) -> None:
    day = local_date(start, clinic.zone)
    waitlist_join(patient=patient_make(clinic), protocol=booster, earliest=day - timedelta(days=1),
                  latest=day + timedelta(days=1), now=now)  # fmt: skip


def everything_at_once(gone: Session, made: list[Offer], declining: Offer, later) -> dict[str, object]:
    attempts: dict[str, object] = {
        f"accept {n}": (lambda o=offer: offer_accept(offer=o, now=later).outcome) for n, offer in enumerate(made)
    }
    attempts["decline"] = lambda: offer_decline(offer=declining, now=later).outcome
    attempts["undo"] = lambda: session_undo(session=gone, now=later).status
    attempts["tick"] = lambda: offers.offers_tick(now=later + timedelta(hours=2))
    return attempts


def test_accepts_declines_undo_and_the_tick_racing_never_deadlock_or_double_book(settings):
    settings.WAITLIST_OFFER_BATCH = 3
    clinic = always_open_clinic(chairs=1, cancellation_notice_hours=24)
    staffing_make(clinic, nurses=2, per_nurse=4)
    booster = protocol_make(clinic, kind="booster", driver_required=False, fasting_hours=0)
    now = timezone.now()
    day = local_date(now, clinic.zone) + timedelta(days=3)
    seen: Counter = Counter()
    for round_ in range(ROUNDS):
        start = wall_clock(day + timedelta(days=round_ // 4), time(6 + 4 * (round_ % 4)), clinic.zone)
        gone = series_book(patient=patient_make(clinic), protocol=booster, starts=[start], now=now).sessions.get()
        session_cancel(session=gone, reason="race", now=now)
        for _ in range(3):
            wait_for(clinic, booster, start, now)
        offers.offers_tick(now=now)
        made = list(Offer.objects.filter(opening__freed_by=gone, status="offered"))
        assert len(made) == 3

        outcomes = released_at_once(everything_at_once(gone, made, made[round_ % 3], now + timedelta(minutes=1)))

        assert not [outcome for outcome in outcomes if " error " in f" {outcome.split(': ', 1)[1]}"], outcomes
        holders = Session.objects.filter(starts_at=start, status__in=Session.HOLDING)
        assert holders.count() <= 1, outcomes
        accepted = Offer.objects.filter(opening__freed_by=gone, status="accepted")
        assert accepted.count() <= 1, outcomes
        if accepted.exists():
            assert holders.get().patient_id == accepted.get().patient_id
            assert Opening.objects.get(freed_by=gone).status == Opening.Status.FILLED
        seen.update(outcome.split(": ", 1)[1] for outcome in outcomes)
    # The race went both ways over the rounds: some accepts won, some found the time gone.
    assert seen["accepted"] >= 1 and seen["taken"] + seen["expired"] >= 1, seen
