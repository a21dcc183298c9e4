"""The one lock order of the whole code base, and the functions that take the first locks in it.

    clinic → patient → series → session → message (notifications/) → anything else

A transaction may skip levels, but never locks a row of an earlier level after one of a later
level. Every write to a patient's bookings or messages locks the patient's row first (after the
clinic's, when the calendar is involved), so those writes are serialised per patient and cannot
wait on each other in a cycle. Waitlist openings and offers sit after the clinic and the patient:
an accept books under the clinic's and the patient's locks with the opening and the offer held,
and the tick, which locks an opening alone, never waits for a clinic or a patient
(docs/waitlist-offers.md). A path that starts from a later row (a worker holding a message
id) reads the ids it needs without locking, takes the locks in this order, then re-reads.

Rows are locked FOR NO KEY UPDATE: nothing here changes a key, and inserting a row that refers to
a locked one (a link to a session, a flag on a message) takes only a key-share lock, which a
no-key lock does not block.
"""

from django.db.models import Expression

from .models import Clinic, Patient


def lock_clinic_and_patient(*, clinic_id: int, patient_id: int) -> None:
    """The calendar's writes: bookings and moves check the whole clinic's day under this lock."""
    Clinic.objects.select_for_update(no_key=True).filter(pk=clinic_id).values_list("pk").get()
    lock_patients(patient_ids=[patient_id])


def lock_patients(*, patient_ids: list[int]) -> None:
    """Several patients (a phone shared by a family) in id order, so two such paths agree."""
    found = list(
        Patient.objects.select_for_update(no_key=True)
        .filter(pk__in=patient_ids)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    if len(found) != len(set(patient_ids)):
        raise Patient.DoesNotExist("patient to lock was not found")


def lock_patient(*, pk: int | Expression) -> Patient | None:
    """One patient's row, locked, with its clinic, for a path that reads the patient anyway. `pk`
    may be a subquery (the patient of a message), so the lock costs no extra round trip."""
    return Patient.objects.select_for_update(no_key=True, of=("self",)).select_related("clinic").filter(pk=pk).first()
