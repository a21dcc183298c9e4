import importlib

import pytest
from django.apps import apps
from django.core.exceptions import ValidationError

from sessions.models import Clinic
from sessions.validators import validate_single_line
from tests.factories import clinic_make, patient_make

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "value", ["Desert\r\nBloom", "Desert\nBloom", "Desert\rBloom", "Desert\x00", "A\tB", "A\x85B", "A\u2028B"]
)
def test_it_refuses_line_breaks_and_control_characters(value):
    with pytest.raises(ValidationError):
        validate_single_line(value)


def test_it_accepts_one_line_in_any_script():
    validate_single_line("Clínica Niño — O'Brien, Suite 2 · 東京")


def test_the_migration_puts_text_saved_before_the_validator_on_one_line():
    clinic = clinic_make()
    patient = patient_make(clinic, first_name="Ana  María")
    Clinic.objects.filter(pk=clinic.pk).update(sender_name="Desert\r\nBloom", address="1 Main St\n")
    migration = importlib.import_module("sessions.migrations.0007_single_line_text")

    migration.single_line_text_clean(apps, None)

    clinic.refresh_from_db()
    patient.refresh_from_db()
    assert (clinic.sender_name, clinic.address, patient.first_name) == ("Desert Bloom", "1 Main St", "Ana  María")
