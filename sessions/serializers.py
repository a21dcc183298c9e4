"""REST shapes of the booking domain. They parse and check input; the services decide."""

import re
from collections.abc import Iterable
from datetime import date, datetime, time
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_field
from rest_framework import serializers

from .access import within_clinics
from .calendar import BOOKING_HORIZON, BookingConflict
from .clock import LocalTimeError, to_utc
from .models import (
    STAYS_IN_ITS_CLINIC,
    Chair,
    Clinic,
    ClosedDate,
    OpeningHours,
    Patient,
    Protocol,
    Recall,
    Series,
    Session,
    SessionMove,
    StaffingBlock,
    WaitlistEntry,
)
from .selectors import SeriesGap, series_gaps
from .validators import phone_in_region, validate_e164, validate_single_line

# Ids as PostgreSQL's bigint holds them: a larger one names no row, and used in a write it fails
# in the database instead of here.
LARGEST_ID = 2**63 - 1
_ID_TEXT = re.compile(r"[0-9]{1,30}")


class ClinicScopedField(serializers.PrimaryKeyRelatedField):
    """An object by id, among those of the requesting user's clinics (sessions/access.py): an id
    from another clinic is refused as one that does not exist, naming the field. An id is a whole
    number (in a query string, its digits): 1.5 is not taken for id 1."""

    def to_internal_value(self, data: Any) -> models.Model:
        if isinstance(data, str) and _ID_TEXT.fullmatch(data):
            data = int(data)
        if type(data) is not int:
            self.fail("incorrect_type", data_type=type(data).__name__)
        if not 1 <= data <= LARGEST_ID:
            self.fail("does_not_exist", pk_value=data)
        return super().to_internal_value(data)

    def get_queryset(self) -> models.QuerySet:
        queryset = super().get_queryset()
        request = self.context.get("request")
        return queryset if request is None else within_clinics(queryset, request.user)


class JsonBooleanField(serializers.BooleanField):
    """true or false, as the schema says. The API reads JSON only, where DRF's field would also
    take 0, 1, "yes" or "on" as booleans."""

    default_error_messages = {"invalid": "Must be true or false."}

    def to_internal_value(self, data: Any) -> bool:
        if isinstance(data, bool):
            return data
        self.fail("invalid")


class DayField(serializers.DateField):
    """A calendar day from 1900 to 2999. Python's calendar runs from year 1 to 9999, but the day
    after 9999-12-31, or the start of 0001-01-01 in a zone east of UTC, is beyond it: an
    OverflowError, where a day's bounds or neighbours are computed, not an answer."""

    FIRST, LAST = date(1900, 1, 1), date(2999, 12, 31)
    default_error_messages = {"range": f"Enter a day from {FIRST} to {LAST}."}

    def to_internal_value(self, value: Any) -> date:
        day = super().to_internal_value(value)
        if not self.FIRST <= day <= self.LAST:
            self.fail("range")
        return day


class ApiModelSerializer(serializers.ModelSerializer):
    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.BooleanField: JsonBooleanField,
        models.DateField: DayField,
    }


class ClinicScopedModelSerializer(ApiModelSerializer):
    serializer_related_field = ClinicScopedField

    def validate_clinic(self, clinic: Clinic) -> Clinic:
        # As the model's clean() says for the admin and the staff forms.
        if self.instance is not None and self.instance.clinic_id != clinic.pk:
            raise serializers.ValidationError(STAYS_IN_ITS_CLINIC)
        return clinic


@extend_schema_field(OpenApiTypes.DATETIME)
class ClinicDateTimeField(serializers.Field):
    """ISO 8601 date-time. Without an offset it is the clinic's wall-clock time, so it stays naive
    here and the clinic's zone is applied once the clinic is known."""

    default_error_messages = {
        "invalid": "Enter a date and time in ISO 8601, e.g. 2026-03-09T10:00 or 2026-03-09T10:00-07:00."
    }

    def to_internal_value(self, data: Any) -> datetime:
        if not isinstance(data, str) or len(data) > 40:
            self.fail("invalid")
        try:
            value = parse_datetime(data)
        except ValueError:
            value = None
        if value is None:
            self.fail("invalid")
        return value

    def to_representation(self, value: datetime) -> str:
        return value.isoformat()


# HH:MM or HH:MM:SS on the clinic's wall clock. OpenAPI's "time" format is RFC 3339's, which
# requires an offset: documented as that, every opening hour we answer with would break the schema.
WALL_CLOCK_TIME = r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?$"


@extend_schema_field({"type": "string", "pattern": WALL_CLOCK_TIME, "example": "08:30"})
class WallClockTimeField(serializers.TimeField):
    """A time of day in the clinic's zone. An offset is refused rather than silently dropped."""

    default_error_messages = {"invalid": "Enter a time of day as HH:MM, e.g. 08:30, without an offset."}

    def to_internal_value(self, value: Any) -> time:
        if not isinstance(value, str) or not re.fullmatch(WALL_CLOCK_TIME, value):
            self.fail("invalid")
        return super().to_internal_value(value)


class WallClockTimes:
    """Mixin for a ModelSerializer: its model's TimeFields become WallClockTimeFields."""

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.TimeField: WallClockTimeField,
    }


def clinic_instant(value: datetime, clinic: Clinic, *, field: str, now: datetime | None = None) -> datetime:
    """`value` as a UTC instant in `clinic`'s zone, within the booking horizon; errors name `field`."""
    now = now or timezone.now()
    try:
        instant = to_utc(value, clinic.zone)
    except LocalTimeError as exc:
        raise serializers.ValidationError({field: str(exc)}) from exc
    except OverflowError as exc:  # 9999-12-31T23:59 in a zone west of UTC
        raise serializers.ValidationError({field: f"Book at most {BOOKING_HORIZON.days} days ahead."}) from exc
    if instant <= now:
        raise serializers.ValidationError({field: "This time has already passed."})
    if instant > now + BOOKING_HORIZON:
        raise serializers.ValidationError({field: f"Book at most {BOOKING_HORIZON.days} days ahead."})
    return instant


def clinic_moment(value: datetime, clinic: Clinic, *, field: str, now: datetime | None = None) -> datetime:
    """`value` as a UTC instant in `clinic`'s zone, past or future, within the booking horizon of
    now either way: what happened on the day, where the service judges whether it can be true."""
    now = now or timezone.now()
    try:
        instant = to_utc(value, clinic.zone)
    except LocalTimeError as exc:
        raise serializers.ValidationError({field: str(exc)}) from exc
    except OverflowError:  # 0001-01-01T00:00 east of UTC: no instant at all
        instant = None
    if instant is None or abs(instant - now) > BOOKING_HORIZON:
        raise serializers.ValidationError({field: f"Enter a time within {BOOKING_HORIZON.days} days of now."})
    return instant


@extend_schema_field(OpenApiTypes.DATETIME)
class ClinicTimeField(serializers.ReadOnlyField):
    """An instant on the clinic's wall clock, with its offset, as `clinic_time` shows a start. The
    clinic is the object's own, or the context's for an object that has none (a re-flow step)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(allow_null=True, **kwargs)

    def get_attribute(self, instance: Any) -> str | None:
        value = super().get_attribute(instance)
        if value is None:
            return None
        clinic = getattr(instance, "clinic", None) or self.context["clinic"]
        return value.astimezone(clinic.zone).isoformat()


class OpeningHoursSerializer(WallClockTimes, ApiModelSerializer):
    class Meta:
        model = OpeningHours
        fields = ["weekday", "opens", "closes"]

    def validate(self, attrs: dict) -> dict:
        if attrs["opens"] >= attrs["closes"]:
            raise serializers.ValidationError({"closes": "Closing time must be after opening time."})
        return attrs


class ClosedDateSerializer(ApiModelSerializer):
    class Meta:
        model = ClosedDate
        fields = ["date", "reason"]


class StaffingBlockSerializer(WallClockTimes, ApiModelSerializer):
    class Meta:
        model = StaffingBlock
        fields = ["weekday", "starts", "ends", "nurses", "patients_per_nurse"]

    def validate(self, attrs: dict) -> dict:
        if attrs["starts"] >= attrs["ends"]:
            raise serializers.ValidationError({"ends": "A staffing block must end after it starts."})
        return attrs


class ClinicSerializer(WallClockTimes, ApiModelSerializer):
    opening_hours = OpeningHoursSerializer(many=True, required=False)
    closed_dates = ClosedDateSerializer(many=True, required=False)
    staffing_blocks = StaffingBlockSerializer(many=True, required=False)

    _CHILDREN = {"opening_hours": OpeningHours, "closed_dates": ClosedDate, "staffing_blocks": StaffingBlock}

    class Meta:
        model = Clinic
        fields = [
            "id", "name", "time_zone", "phone", "address", "sender_name", "message_window_start", "message_window_end",
            "turnover_buffer_minutes", "slot_minutes", "max_starts_per_slot", "cancellation_notice_hours",
            "self_service_notice_hours", "patients_may_reflow", "opening_hours", "closed_dates", "staffing_blocks",
        ]  # fmt: skip

    def validate(self, attrs: dict) -> dict:
        start = attrs.get("message_window_start", getattr(self.instance, "message_window_start", None))
        end = attrs.get("message_window_end", getattr(self.instance, "message_window_end", None))
        if start and end and start >= end:
            raise serializers.ValidationError({"message_window_end": "The message window must end after it starts."})
        weekdays = [row["weekday"] for row in attrs.get("opening_hours", [])]
        if len(weekdays) != len(set(weekdays)):
            raise serializers.ValidationError({"opening_hours": "Give at most one opening-hours row per weekday."})
        dates = [row["date"] for row in attrs.get("closed_dates", [])]
        if len(dates) != len(set(dates)):
            raise serializers.ValidationError({"closed_dates": "Each closed date may appear once."})
        return attrs

    @transaction.atomic
    def create(self, validated_data: dict) -> Clinic:
        children = {name: validated_data.pop(name, []) for name in self._CHILDREN}
        clinic = Clinic.objects.create(**validated_data)
        self._replace_children(clinic, children)
        return clinic

    @transaction.atomic
    def update(self, instance: Clinic, validated_data: dict) -> Clinic:
        children = {name: validated_data.pop(name) for name in list(self._CHILDREN) if name in validated_data}
        clinic = super().update(instance, validated_data)
        self._replace_children(clinic, children)
        return clinic

    def _replace_children(self, clinic: Clinic, children: dict[str, list[dict]]) -> None:
        for name, rows in children.items():
            model = self._CHILDREN[name]
            columns = self.fields[name].child.Meta.fields
            current = model.objects.filter(clinic=clinic)
            wanted = [model(clinic=clinic, **row) for row in rows]
            if _column_values(current, columns) == _column_values(wanted, columns):
                continue  # sent back as they are: nothing to write, nothing for the audit trail
            current.delete()
            for row in wanted:
                row.save()  # one by one, so that each new row is audited (sessions/audit.py)


def _column_values(rows: Iterable[models.Model], columns: list[str]) -> list[tuple]:
    return sorted(tuple(getattr(row, column) for column in columns) for row in rows)


class ChairSerializer(ClinicScopedModelSerializer):
    class Meta:
        model = Chair
        fields = ["id", "clinic", "name", "is_active"]


class ProtocolSerializer(ClinicScopedModelSerializer):
    preparation_instructions = serializers.CharField(max_length=4000, allow_blank=True, required=False)

    class Meta:
        model = Protocol
        fields = [
            "id", "clinic", "name", "patient_name", "session_count", "chair_minutes", "min_gap_days", "max_gap_days",
            "fasting_hours", "driver_required", "no_driving_hours", "preparation_instructions", "patient_name_es",
            "preparation_instructions_es", "booster_interval_days", "booster_protocol", "is_active",
        ]  # fmt: skip

    def validate(self, attrs: dict) -> dict:
        booster = attrs.get("booster_protocol")
        clinic = attrs.get("clinic", getattr(self.instance, "clinic", None))
        if booster is not None and clinic is not None and booster.clinic_id != clinic.pk:
            raise serializers.ValidationError(
                {"booster_protocol": "The booster must be a protocol of the same clinic."}
            )
        low = attrs.get("min_gap_days", getattr(self.instance, "min_gap_days", 1))
        high = attrs.get("max_gap_days", getattr(self.instance, "max_gap_days", 7))
        if low > high:
            raise serializers.ValidationError({"max_gap_days": "The maximum gap must be at least the minimum gap."})
        return attrs


class PatientSerializer(ClinicScopedModelSerializer):
    # As typed ("(602) 555-0101"), read in the clinic's country: validate() stores it in E.164.
    phone = serializers.CharField(
        max_length=40, required=False, allow_blank=True,
        help_text="Any usual format; without a country code, a number of the clinic's country. Stored and "
        "answered in E.164 (+16025550101).",
    )  # fmt: skip

    class Meta:
        model = Patient
        fields = [
            "id", "clinic", "first_name", "last_name", "external_id", "date_of_birth", "phone", "email", "time_zone",
            "language", "sms_enabled", "email_enabled", "sms_consent_at", "sms_consent_source", "sms_opted_out_at",
        ]  # fmt: skip
        read_only_fields = ["sms_opted_out_at"]

    def validate(self, attrs: dict) -> dict:
        attrs = super().validate(attrs)
        if self.instance is not None and "external_id" not in self.initial_data:
            # A PUT without the MRN keeps it: the empty default numbers a new patient only.
            attrs.pop("external_id", None)
        if attrs.get("phone"):
            clinic = attrs.get("clinic") or getattr(self.instance, "clinic", None)
            phone = phone_in_region(attrs["phone"], clinic.region if clinic else None)
            try:
                validate_e164(phone)
            except DjangoValidationError as error:
                raise serializers.ValidationError({"phone": error.messages}) from error
            attrs["phone"] = phone
        return attrs


class SessionMoveSerializer(serializers.ModelSerializer):
    class Meta:
        model = SessionMove
        fields = ["from_starts_at", "from_chair", "to_starts_at", "to_chair", "reason", "via", "moved_at"]


class SessionSerializer(serializers.ModelSerializer):
    of = serializers.IntegerField(source="series.protocol.session_count", read_only=True, help_text="n in 'k of n'.")
    clinic_time = serializers.SerializerMethodField(help_text="The start in the clinic's zone, with its offset.")
    # Declared so that the schema allows the empty value of a session not yet confirmed.
    confirmed_via = serializers.ChoiceField(
        choices=Session.Channel.choices, allow_blank=True, read_only=True, help_text="Empty until confirmed."
    )
    chair_in_at = ClinicTimeField(help_text="When the patient sat down (arrived), in the clinic's zone.")
    chair_out_at = ClinicTimeField(help_text="When the patient got up (completed), in the clinic's zone.")
    moves = SessionMoveSerializer(many=True, read_only=True)

    class Meta:
        model = Session
        fields = [
            "id", "series", "number", "of", "patient", "clinic", "chair", "starts_at", "ends_at", "clinic_time",
            "status", "version", "confirmed_at", "confirmed_via", "driver_confirmed", "status_changed_at",
            "cancellation_reason", "chair_in_at", "chair_out_at", "makeup_for", "moves",
        ]  # fmt: skip
        read_only_fields = fields
        extra_kwargs = {"makeup_for": {"help_text": "A make-up: the cancelled or missed session it makes good."}}

    def get_clinic_time(self, session: Session) -> str:
        return session.starts_at.astimezone(session.clinic.zone).isoformat()


class SeriesGapSerializer(serializers.Serializer):
    number = serializers.IntegerField(help_text="The session to rebook, or to re-flow from.")
    text = serializers.CharField()


class SeriesListSerializer(serializers.ListSerializer):
    """Series by the page: why each one is off protocol is read for the whole page in one query."""

    def to_representation(self, data: Any) -> list:
        page = list(data.all() if isinstance(data, models.manager.BaseManager) else data)
        self.child.page_gaps = series_gaps(series_ids=[series.pk for series in page])
        return super().to_representation(page)


# The days of the week as the API names them, Monday first (Python's weekday numbers).
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class SeriesSerializer(serializers.ModelSerializer):
    sessions = SessionSerializer(many=True, read_only=True)
    weekdays = serializers.SerializerMethodField()
    off_protocol = serializers.SerializerMethodField(
        help_text="Where the series has fallen off its protocol (rule 12); empty when it keeps it."
    )
    # Set by SeriesListSerializer for a page of series; one series alone reads its own.
    page_gaps: dict[int, list[SeriesGap]] | None = None

    class Meta:
        model = Series
        fields = ["id", "patient", "protocol", "clinic", "status", "created_at", "override_reason", "weekdays",
                  "off_protocol", "sessions"]  # fmt: skip
        read_only_fields = fields
        list_serializer_class = SeriesListSerializer

    @extend_schema_field(serializers.ListField(child=serializers.ChoiceField(choices=WEEKDAYS)))
    def get_weekdays(self, series: Series) -> list[str]:
        """The weekdays it keeps to when placed or re-spaced, e.g. ["mon", "wed", "fri"]; empty: any day."""
        return [WEEKDAYS[day] for day in sorted(series.weekdays)]

    @extend_schema_field(SeriesGapSerializer(many=True))
    def get_off_protocol(self, series: Series) -> list[dict]:
        gaps = self.page_gaps if self.page_gaps is not None else series_gaps(series_ids=[series.pk])
        return SeriesGapSerializer(gaps.get(series.pk, []), many=True).data


class SeriesBookSerializer(serializers.Serializer):
    patient = ClinicScopedField(queryset=Patient.objects.all())
    protocol = ClinicScopedField(queryset=Protocol.objects.select_related("clinic"))
    chair = ClinicScopedField(queryset=Chair.objects.all(), required=False, allow_null=True)
    first_start = ClinicDateTimeField(required=False, help_text="Auto-place the series from this start.")
    starts = serializers.ListField(
        child=ClinicDateTimeField(), required=False, max_length=52, help_text="Every start, in order."
    )
    override_reason = serializers.CharField(
        max_length=300, required=False, allow_blank=True, default="", validators=[validate_single_line],
        help_text="Why the patient needs a second active series of this protocol (rule 10); kept in the audit trail.",
    )  # fmt: skip
    weekdays = serializers.ListField(
        child=serializers.ChoiceField(choices=WEEKDAYS),
        required=False,
        max_length=7,
        help_text='With first_start: place the sessions only on these days, e.g. ["mon", "wed", "fri"]; '
        "the first start's day must be one of them.",
    )

    def validate_weekdays(self, value: list[str]) -> list[int]:
        return sorted({WEEKDAYS.index(day) for day in value})

    def validate(self, attrs: dict) -> dict:
        protocol: Protocol = attrs["protocol"]
        if ("first_start" in attrs) == ("starts" in attrs):
            raise serializers.ValidationError({"first_start": "Give either first_start or starts, not both."})
        if attrs.get("chair") is not None and attrs["chair"].clinic_id != protocol.clinic_id:
            raise serializers.ValidationError({"chair": "That chair belongs to another clinic."})
        if "first_start" in attrs:
            attrs["first_start"] = clinic_instant(attrs["first_start"], protocol.clinic, field="first_start")
        else:
            attrs["starts"] = [clinic_instant(value, protocol.clinic, field="starts") for value in attrs["starts"]]
            if len(attrs["starts"]) != protocol.session_count:
                raise serializers.ValidationError(
                    {"starts": f"This protocol has {protocol.session_count} sessions; give that many starts."}
                )
        return attrs


class ConflictSerializer(serializers.Serializer):
    code = serializers.CharField()
    rule = serializers.IntegerField()
    rule_text = serializers.CharField()
    detail = serializers.CharField()
    session = serializers.IntegerField(allow_null=True)


class PlannedSessionSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    chair = serializers.IntegerField(source="slot.chair_id", allow_null=True, default=None)
    starts_at = serializers.DateTimeField(source="slot.starts_at", allow_null=True, default=None)
    ends_at = serializers.DateTimeField(source="slot.ends_at", allow_null=True, default=None)
    conflict = serializers.SerializerMethodField()

    @extend_schema_field(ConflictSerializer(allow_null=True))
    def get_conflict(self, planned) -> dict | None:
        conflict: BookingConflict | None = planned.conflict
        return conflict.as_dict() if conflict else None


class SeriesPreviewSerializer(serializers.Serializer):
    bookable = serializers.BooleanField()
    sessions = PlannedSessionSerializer(many=True)


class ReflowSerializer(serializers.Serializer):
    session = ClinicScopedField(
        queryset=Session.objects.select_related("clinic", "series__protocol"),
        help_text="A session of this series: an upcoming one to move, or a cancelled or missed one to make good.",
    )
    starts_at = ClinicDateTimeField(help_text="Its new start (or the make-up's).")
    chair = ClinicScopedField(queryset=Chair.objects.all(), required=False, allow_null=True)
    reason = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")

    def validate(self, attrs: dict) -> dict:
        series: Series = self.context["series"]
        if attrs["session"].series_id != series.pk:
            raise serializers.ValidationError({"session": "That session belongs to another series."})
        attrs["starts_at"] = clinic_instant(attrs["starts_at"], series.clinic, field="starts_at")
        if attrs.get("chair") is not None and attrs["chair"].clinic_id != series.clinic_id:
            raise serializers.ValidationError({"chair": "That chair belongs to another clinic."})
        return attrs


class ReflowStepSerializer(serializers.Serializer):
    """One session of a re-flow: where it is and where it goes, on the clinic's wall clock."""

    # Its times are shown in the zone of the context's `clinic`: a step has no clinic of its own.

    number = serializers.IntegerField()
    session = serializers.IntegerField(source="session_id", allow_null=True, help_text="Null for a make-up.")
    chair = serializers.IntegerField(source="slot.chair_id", allow_null=True, default=None)
    changes = serializers.BooleanField(help_text="False for a session that keeps its time.")
    conflict = serializers.SerializerMethodField()

    def get_fields(self) -> dict[str, serializers.Field]:
        # "from" is a Python keyword: it cannot be declared as a class attribute.
        declared = super().get_fields()
        return {
            "number": declared.pop("number"),
            "session": declared.pop("session"),
            "from": ClinicTimeField(source="from_starts_at", help_text="Where it is now; null for a make-up."),
            "to": ClinicTimeField(
                source="slot.starts_at", help_text="Where it goes (or was asked to go); null where no time was found."
            ),
            **declared,
        }

    @extend_schema_field(ConflictSerializer(allow_null=True))
    def get_conflict(self, step) -> dict | None:
        conflict: BookingConflict | None = step.conflict
        return conflict.as_dict() if conflict else None


class ReflowPreviewSerializer(serializers.Serializer):
    fits = serializers.BooleanField(help_text="True when every step can be placed: committing would book them.")
    steps = ReflowStepSerializer(many=True, help_text="Stops at the first session that cannot be placed.")


class ReflowDoneSerializer(serializers.Serializer):
    sessions = SessionSerializer(many=True, help_text="The sessions moved or booked, in number order.")


REFLOW_ANSWER = PolymorphicProxySerializer(
    component_name="ReflowAnswer",
    serializers=[ReflowPreviewSerializer, ReflowDoneSerializer],
    resource_type_field_name=None,
)


class RescheduleSerializer(serializers.Serializer):
    starts_at = ClinicDateTimeField()
    chair = ClinicScopedField(queryset=Chair.objects.all(), required=False, allow_null=True)
    reason = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")

    def validate(self, attrs: dict) -> dict:
        session: Session = self.context["session"]
        attrs["starts_at"] = clinic_instant(attrs["starts_at"], session.clinic, field="starts_at")
        if attrs.get("chair") is not None and attrs["chair"].clinic_id != session.clinic_id:
            raise serializers.ValidationError({"chair": "That chair belongs to another clinic."})
        return attrs


class CancelSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=300)


class ConfirmSerializer(serializers.Serializer):
    driver_confirmed = JsonBooleanField(required=False, default=False)


class MarkSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=[Session.Status.ARRIVED, Session.Status.COMPLETED, Session.Status.NO_SHOW])
    at = ClinicDateTimeField(
        required=False, help_text="When it happened (chair-in for arrived, chair-out for completed); default now."
    )

    def validate(self, attrs: dict) -> dict:
        if "at" in attrs:
            attrs["at"] = clinic_moment(attrs["at"], self.context["session"].clinic, field="at")
        return attrs


class SlotSerializer(serializers.Serializer):
    chair = serializers.IntegerField(source="chair_id")
    starts_at = serializers.DateTimeField()
    ends_at = serializers.DateTimeField()


class SlotQuerySerializer(serializers.Serializer):
    days = serializers.IntegerField(min_value=1, max_value=28, default=14)


class SessionQuerySerializer(serializers.Serializer):
    clinic = ClinicScopedField(queryset=Clinic.objects.all(), required=False)
    date = DayField(required=False, help_text="A day in the clinic's calendar; needs clinic.")
    # A patient of another clinic may have visits in the user's: the list is narrowed to the
    # user's clinics anyway, so the patient is only a filter.
    patient = serializers.IntegerField(required=False, min_value=1, max_value=LARGEST_ID)
    series = ClinicScopedField(queryset=Series.objects.all(), required=False)
    status = serializers.ChoiceField(choices=Session.Status.choices, required=False)

    def validate(self, attrs: dict) -> dict:
        if "date" in attrs and "clinic" not in attrs:
            raise serializers.ValidationError(
                {"clinic": "A date is a day in a clinic's calendar: give the clinic too."}
            )
        return attrs


class WaitlistEntrySerializer(serializers.ModelSerializer):
    """A patient waiting for chair time: `protocol` for a new series, or `session` for an earlier
    time for that booked session (its protocol then), between `earliest` and `latest`."""

    patient = ClinicScopedField(queryset=Patient.objects.select_related("clinic"))
    protocol = ClinicScopedField(queryset=Protocol.objects.all(), required=False, allow_null=True)
    session = ClinicScopedField(
        queryset=Session.objects.select_related("clinic", "series__protocol"), required=False, allow_null=True
    )
    weekdays = serializers.ListField(
        child=serializers.ChoiceField(choices=WEEKDAYS), required=False, max_length=7,
        help_text='The days the patient can come, e.g. ["mon", "wed"]; empty: any day.',
    )  # fmt: skip
    wish = serializers.CharField(read_only=True)

    class Meta:
        model = WaitlistEntry
        fields = [
            "id", "clinic", "patient", "protocol", "session", "wish", "earliest", "latest", "weekdays", "not_before",
            "not_after", "needed_by", "note", "status", "created_at", "booked_series",
        ]  # fmt: skip
        read_only_fields = ["clinic", "status", "created_at", "booked_series"]
        # The one-waiting-wish constraints are waitlist_join's to explain (400 naming the field):
        # DRF's own validators for them would make `session` a required field.
        validators: list = []

    def to_representation(self, entry: WaitlistEntry) -> dict:
        data = super().to_representation(entry)
        data["weekdays"] = [WEEKDAYS[day] for day in sorted(entry.weekdays)]
        return data

    def validate_weekdays(self, value: list[str]) -> list[int]:
        return sorted({WEEKDAYS.index(day) for day in value})


class WaitlistBookSerializer(serializers.Serializer):
    starts_at = ClinicDateTimeField(
        help_text="The freed time: the first session of the series, or the session's new start."
    )
    chair = ClinicScopedField(queryset=Chair.objects.all(), required=False, allow_null=True)


class WaitlistCandidateSerializer(serializers.Serializer):
    entry = WaitlistEntrySerializer()
    starts = serializers.ListField(child=serializers.DateTimeField(), help_text="What the booking would be.")


class RecallSerializer(serializers.ModelSerializer):
    """A booster due after a completed series (`series`): `state` is soon, due, overdue or snoozed."""

    state = serializers.SerializerMethodField()

    class Meta:
        model = Recall
        fields = ["id", "clinic", "patient", "series", "protocol", "due_on", "status", "snoozed_until", "state",
                  "booked_series"]  # fmt: skip
        read_only_fields = fields

    def get_state(self, recall: Recall) -> str:
        return self.context.get("states", {}).get(recall.pk, recall.status)


class RecallSnoozeSerializer(serializers.Serializer):
    until = serializers.DateField(help_text="The day to call the patient again.")
