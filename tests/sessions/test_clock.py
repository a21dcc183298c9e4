from datetime import UTC, datetime, time, timedelta

import pytest
from django.core.exceptions import ValidationError

from sessions.services import series_book
from tests.factories import clinic_make, patient_make, protocol_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def before_dst():
    return datetime(2026, 3, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("wall_clock", "says"),
    [(datetime(2026, 3, 8, 2, 30), "does not exist"), (datetime(2026, 11, 1, 1, 30), "happens twice")],
)
def test_new_york_refuses_times_that_do_not_exist_or_happen_twice(before_dst, wall_clock, says):
    clinic = clinic_make(time_zone="America/New_York", opens=time(0))
    booster = protocol_make(clinic, kind="booster", chair_minutes=60)

    with pytest.raises(ValidationError) as refused:
        series_book(patient=patient_make(clinic), protocol=booster, starts=[wall_clock], now=before_dst)

    assert says in refused.value.message_dict["starts"][0]


def test_a_time_without_offset_is_clinic_time(before_dst):
    clinic = clinic_make(time_zone="America/New_York")
    booster = protocol_make(clinic, kind="booster")

    series = series_book(
        patient=patient_make(clinic), protocol=booster, starts=[datetime(2026, 3, 9, 10)], now=before_dst
    )

    assert series.sessions.get().starts_at == datetime(2026, 3, 9, 14, tzinfo=UTC)  # EDT, UTC-4


def test_an_explicit_offset_is_taken_as_given_even_in_a_fold(before_dst):
    clinic = clinic_make(time_zone="America/New_York", opens=time(0))
    booster = protocol_make(clinic, kind="booster", chair_minutes=60)
    second_half_thirty = datetime(2026, 11, 1, 6, 30, tzinfo=UTC)  # 01:30 EST, the second one

    series = series_book(patient=patient_make(clinic), protocol=booster, starts=[second_half_thirty], now=before_dst)

    assert series.sessions.get().starts_at == second_half_thirty


def test_phoenix_has_no_dst_surprises(before_dst):
    clinic = clinic_make(time_zone="America/Phoenix", opens=time(0))
    pain = protocol_make(clinic, kind="pain", chair_minutes=120)

    series = series_book(
        patient=patient_make(clinic), protocol=pain, first_start=datetime(2026, 3, 7, 2, 30), now=before_dst
    )

    starts = [s.starts_at for s in series.sessions.order_by("number")]
    assert starts[0] == datetime(2026, 3, 7, 9, 30, tzinfo=UTC)
    assert [b - a for a, b in zip(starts, starts[1:], strict=False)] == [starts[1] - starts[0]] * 4
    assert starts[1] - starts[0] == timedelta(days=1)
