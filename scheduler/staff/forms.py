"""The staff pages' forms: they parse and check input; the booking services decide."""

from datetime import UTC, datetime, time, timedelta

from django import forms
from django.core.validators import MaxLengthValidator
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from sessions.clock import LocalTimeError, to_utc
from sessions.models import WEEKDAY_NAMES, Chair, Clinic, Patient, Protocol, Session
from sessions.serializers import BOOKING_HORIZON


class WallClockField(forms.Field):
    """A datetime-local value. It names the clinic's wall-clock time, so it stays naive here: the
    form applies the clinic's zone, where a DST gap or fold can be named as a form error."""

    widget = forms.DateTimeInput(attrs={"type": "datetime-local", "step": 300}, format="%Y-%m-%dT%H:%M")
    default_error_messages = {"invalid": "Enter a date and time, e.g. 2026-03-09 10:00."}

    def to_python(self, value: object) -> datetime | None:
        if value in self.empty_values:
            return None
        if isinstance(value, datetime):
            return value
        try:
            parsed = parse_datetime(str(value).strip()[:40])
        except ValueError:
            parsed = None
        if parsed is None:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return parsed


def clinic_instant(value: datetime, clinic: Clinic, *, now: datetime | None = None) -> datetime:
    """`value` as a UTC instant in the clinic's zone; raises a form error a scheduler can act on."""
    now = now or timezone.now()
    try:
        instant = to_utc(value, clinic.zone)
    except LocalTimeError as exc:
        if exc.ambiguous:
            raise forms.ValidationError(
                f"{value:%Y-%m-%d %H:%M} happens twice in {clinic.time_zone} (clocks go back): "
                "pick a time outside that hour.",
                code="ambiguous",
            ) from exc
        raise forms.ValidationError(str(exc), code="nonexistent") from exc
    except OverflowError as exc:
        raise forms.ValidationError(f"Book at most {BOOKING_HORIZON.days} days ahead.", code="horizon") from exc
    if instant <= now:
        raise forms.ValidationError("This time has already passed.", code="past")
    if instant > now + BOOKING_HORIZON:
        raise forms.ValidationError(f"Book at most {BOOKING_HORIZON.days} days ahead.", code="horizon")
    return instant.astimezone(UTC)


class PatientSearchForm(forms.Form):
    q = forms.CharField(
        label="Find a patient",
        max_length=80,
        required=False,
        widget=forms.SearchInput(attrs={"placeholder": "Name, MRN or phone", "autocomplete": "off"}),
    )


def _phone_as_typed(field: forms.Field) -> None:
    """The phone as staff write it, "(602) 555-0101": Patient.clean_fields reads it in the
    clinic's country and stores it in E.164, and the model's validator has the last word."""
    field.max_length = 40
    field.validators = [MaxLengthValidator(40)]
    field.widget.attrs.update({"type": "tel", "autocomplete": "off", "maxlength": 40})
    field.help_text = "Without a country code, a number of the clinic's country."


class PatientForm(forms.ModelForm):
    sms_consent = forms.BooleanField(label="Agreed to reminders by text", required=False)

    class Meta:
        model = Patient
        fields = [
            "clinic", "first_name", "last_name", "external_id", "date_of_birth", "phone", "email", "language",
            "time_zone", "sms_consent", "sms_consent_source",
        ]  # fmt: skip
        labels = {"sms_consent_source": "How consent was given"}
        help_texts = {"sms_consent_source": "Needed when the patient agreed to reminders by text."}
        widgets = {
            "date_of_birth": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
            "phone": forms.TextInput(attrs={"placeholder": "(602) 555-0123"}),
            "sms_consent_source": forms.TextInput(attrs={"placeholder": "e.g. intake form"}),
        }

    def __init__(self, *args, clinics: QuerySet[Clinic], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.existing: Patient | None = None
        _phone_as_typed(self.fields["phone"])
        self.fields["clinic"].queryset = clinics
        self.fields["clinic"].empty_label = None
        only = list(clinics[:2])
        if len(only) == 1:
            self.fields["clinic"].initial = only[0].pk
            self.fields["clinic"].widget = forms.HiddenInput()

    def clean(self) -> dict:
        cleaned = super().clean()
        if cleaned.get("sms_consent") and not cleaned.get("sms_consent_source"):
            self.add_error("sms_consent_source", "Say how the patient agreed, e.g. 'intake form'.")
        clinic, mrn = cleaned.get("clinic"), cleaned.get("external_id")
        if clinic is not None and mrn:
            # The page links to the patient the MRN already belongs to, instead of a bare refusal.
            self.existing = Patient.objects.filter(clinic=clinic, external_id=mrn).first()
            if self.existing is not None:
                self.add_error("external_id", f"MRN {mrn} is already {self.existing}'s at {clinic.name}.")
        return cleaned

    def save(self, commit: bool = True) -> Patient:
        if self.cleaned_data.get("sms_consent"):
            self.instance.sms_consent_at = timezone.now()
        return super().save(commit=commit)


class ContactForm(forms.ModelForm):
    """How to reach the patient, edited on their page; the phone as staff type it (PatientForm)."""

    class Meta:
        model = Patient
        fields = ["phone", "email", "language", "time_zone", "sms_enabled", "email_enabled"]
        labels = {"sms_enabled": "Reminders by text", "email_enabled": "Reminders by email"}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        _phone_as_typed(self.fields["phone"])


class SeriesCancelForm(forms.Form):
    reason = forms.CharField(max_length=300, widget=forms.TextInput(attrs={"placeholder": "Reason"}))

    def clean_reason(self) -> str:
        return " ".join(self.cleaned_data["reason"].split())


class SeriesForm(forms.Form):
    protocol = forms.ModelChoiceField(queryset=Protocol.objects.none(), empty_label="Choose a protocol")
    first_start = WallClockField(label="First session", help_text="Clinic time. Later sessions are placed for you.")
    chair = forms.ModelChoiceField(queryset=Chair.objects.none(), required=False, empty_label="Any free chair")
    # The sessions the last preview showed (plan_signature): "Book series" books those or nothing.
    plan = forms.CharField(max_length=2000, required=False, widget=forms.HiddenInput)
    # Offered when the preview finds another active series of the protocol (rule 10).
    override_reason = forms.CharField(
        label="Book anyway — reason",
        max_length=300,
        required=False,
        help_text="Why this patient needs a second active series of this protocol; kept in the audit trail.",
    )

    weekdays = forms.TypedMultipleChoiceField(
        label="Only on",
        choices=list(enumerate(WEEKDAY_NAMES)),
        coerce=int,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="E.g. Mon, Wed and Fri; none ticked: any day the gaps allow.",
    )
    # "times" once the scheduler has edited the preview's days and times: the series is then
    # planned (and booked) at exactly those, one `start` per session, instead of placed for them.
    mode = forms.CharField(max_length=10, required=False, widget=forms.HiddenInput)

    def __init__(self, *args, clinic: Clinic, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.clinic = clinic
        self.fields["protocol"].queryset = clinic.protocols.filter(is_active=True)
        self.fields["chair"].queryset = clinic.chairs.filter(is_active=True)

    def clean_first_start(self) -> datetime:
        return clinic_instant(self.cleaned_data["first_start"], self.clinic)

    def clean(self) -> dict:
        cleaned = super().clean()
        action = self.data.get("action", "")
        retimed = action == "retime" or (action == "book" and cleaned.get("mode") == "times")
        cleaned["mode"] = "times" if retimed else ""
        if retimed and cleaned.get("protocol") is not None:
            cleaned["starts"] = self._edited_starts(cleaned["protocol"])
        return cleaned

    def _edited_starts(self, protocol: Protocol) -> list[datetime]:
        """One start per session as the preview's inputs hold them, each checked like first_start;
        what is wrong is said per session."""
        values = self.data.getlist("start") if hasattr(self.data, "getlist") else []
        values = values[: protocol.session_count] + [""] * (protocol.session_count - len(values))
        starts, field = [], WallClockField(required=False)
        for number, value in enumerate(values, start=1):
            try:
                typed = field.clean(value)
                if typed is None:
                    raise forms.ValidationError("give a day and time, or press Preview to place it for you.")
                starts.append(clinic_instant(typed, self.clinic))
            except forms.ValidationError as exc:
                self.add_error(None, f"Session {number}: {' '.join(exc.messages)}")
        return starts

    def clean_override_reason(self) -> str:
        return " ".join(self.cleaned_data["override_reason"].split())


class WaitlistForm(forms.Form):
    """What a patient waits for, as staff note it on the patient page (sessions.waitlist.waitlist_join)."""

    protocol = forms.ModelChoiceField(
        queryset=Protocol.objects.none(), required=False, empty_label="Choose a protocol", label="A new series of"
    )
    session = forms.ModelChoiceField(
        queryset=Session.objects.none(), required=False, empty_label="—", label="Or an earlier time for"
    )
    earliest = forms.DateField(label="From", widget=forms.DateInput(attrs={"type": "date"}))
    latest = forms.DateField(label="Until", widget=forms.DateInput(attrs={"type": "date"}))
    weekdays = forms.TypedMultipleChoiceField(
        label="On", choices=list(enumerate(WEEKDAY_NAMES)), coerce=int, required=False,
        widget=forms.CheckboxSelectMultiple, help_text="None ticked: any day.",
    )  # fmt: skip
    not_before = forms.TimeField(label="Not before", required=False, widget=forms.TimeInput(attrs={"type": "time"}))
    not_after = forms.TimeField(label="Latest start", required=False, widget=forms.TimeInput(attrs={"type": "time"}))
    needed_by = forms.DateField(
        label="Needed by", required=False, widget=forms.DateInput(attrs={"type": "date"}),
        help_text="A deadline ranks the patient before those without one.",
    )  # fmt: skip
    note = forms.CharField(max_length=300, required=False)

    def __init__(self, *args, patient: Patient, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["protocol"].queryset = patient.clinic.protocols.filter(is_active=True)
        upcoming = patient.sessions.filter(status__in=Session.UPCOMING, starts_at__gt=timezone.now())
        self.fields["session"].queryset = upcoming.select_related("series__protocol").order_by("starts_at")
        self.fields["session"].label_from_instance = lambda s: (
            f"{s.series.protocol.name} {s.number}/{s.series.protocol.session_count}, "
            f"{patient.clinic.local(s.starts_at):%a %d %b %H:%M}"
        )


class RecallSnoozeForm(forms.Form):
    until = forms.DateField(label="Call again on", widget=forms.DateInput(attrs={"type": "date"}))


class CancelForm(forms.Form):
    reason = forms.CharField(max_length=300, widget=forms.TextInput(attrs={"placeholder": "Reason"}))


class MarkForm(forms.Form):
    """A mark and, for arrived or completed, the actual chair-in or chair-out time when it was
    not now: clinic wall-clock time on the session's day."""

    status = forms.ChoiceField(
        choices=[(s, s.label) for s in (Session.Status.ARRIVED, Session.Status.COMPLETED, Session.Status.NO_SHOW)],
        error_messages={"required": "Choose arrived, completed or no-show.",
                        "invalid_choice": "Choose arrived, completed or no-show."},
    )  # fmt: skip
    at = forms.TimeField(
        required=False,
        input_formats=["%H:%M"],
        widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
        error_messages={"invalid": "Enter the time as HH:MM, e.g. 09:05."},
    )

    def __init__(self, *args, session: Session, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.session = session

    def clean_at(self) -> datetime | None:
        wall: time | None = self.cleaned_data["at"]
        if wall is None:
            return None
        zone = self.session.clinic.zone
        day = self.session.starts_at.astimezone(zone).date()
        try:
            return to_utc(datetime.combine(day, wall), zone)
        except LocalTimeError as exc:
            raise forms.ValidationError(str(exc), code="local_time") from exc


class ConfirmForm(forms.Form):
    driver_confirmed = forms.BooleanField(required=False)


class MoveForm(forms.Form):
    """One of the offered slots, as "<chair id>@<UTC start>" so the move is exactly the slot shown,
    or another time the scheduler enters (the chair kept where free)."""

    slot = forms.CharField(max_length=60, required=False)
    starts_at = WallClockField(label="Or another time", required=False)
    reason = forms.CharField(max_length=300, required=False)

    def __init__(self, *args, clinic: Clinic, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.clinic = clinic

    def clean_starts_at(self) -> datetime | None:
        value = self.cleaned_data["starts_at"]
        return clinic_instant(value, self.clinic) if value is not None else None

    def clean(self) -> dict:
        cleaned = super().clean()
        if not self.errors and (cleaned.get("slot") is None) == (cleaned.get("starts_at") is None):
            raise forms.ValidationError("Choose one of the offered times, or enter another time.")
        return cleaned

    def clean_slot(self) -> tuple[int, datetime] | None:
        if not self.cleaned_data["slot"]:
            return None
        chair, _, starts = self.cleaned_data["slot"].partition("@")
        try:
            starts_at = datetime.fromisoformat(starts)
        except ValueError:
            starts_at = None
        if not chair.isdigit() or len(chair) > 18 or starts_at is None or starts_at.tzinfo is None:
            raise forms.ValidationError("Choose one of the offered times.")
        return int(chair), starts_at


def slot_value(chair_id: int, starts_at: datetime) -> str:
    return f"{chair_id}@{starts_at.astimezone(UTC).isoformat()}"


class ReflowForm(forms.Form):
    """A re-flow (rule 11): the new time of the session, or of its make-up, and optionally its
    chair. Committing carries `plan`, the changes the preview showed, so that what is booked is
    what the scheduler saw."""

    starts_at = WallClockField(label="New time", help_text="Clinic time. Later sessions are re-spaced for you.")
    chair = forms.ModelChoiceField(
        queryset=Chair.objects.none(), required=False, empty_label="Its chair, else any free"
    )
    reason = forms.CharField(max_length=300, required=False)
    plan = forms.CharField(max_length=2000, required=False, widget=forms.HiddenInput)

    def __init__(self, *args, clinic: Clinic, **kwargs) -> None:
        super().__init__(*args, prefix="reflow", **kwargs)
        self.clinic = clinic
        self.fields["chair"].queryset = clinic.chairs.filter(is_active=True)

    def clean_starts_at(self) -> datetime:
        return clinic_instant(self.cleaned_data["starts_at"], self.clinic)


def plan_signature(changes: list[tuple[int, int, datetime]]) -> str:
    """(number, chair id, start) of each session a booking or re-flow books or moves, as one
    string: the preview carries it, and what is committed must match it."""
    return ";".join(f"{number}:{slot_value(chair_id, starts_at)}" for number, chair_id, starts_at in changes)


class CodeForm(forms.Form):
    """The six digits an authenticator app shows; spaces, as some apps print them, are dropped."""

    code = forms.CharField(
        label="6-digit code",
        max_length=12,
        widget=forms.TextInput(
            attrs={"inputmode": "numeric", "autocomplete": "one-time-code", "pattern": "[0-9 ]{6,7}", "autofocus": True}
        ),
    )

    def clean_code(self) -> str:
        code = self.cleaned_data["code"].replace(" ", "")
        if len(code) != 6 or not code.isdigit():
            raise forms.ValidationError("Enter the 6 digits your authenticator app shows.")
        return code


REPORT_DAYS_MOST = 400
REPORT_DAYS_DEFAULT = 28


class ReportForm(forms.Form):
    """The reports page's choices, all in the query string: a report is a link staff can share."""

    clinic = forms.ModelChoiceField(queryset=Clinic.objects.none(), empty_label=None)
    first = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    last = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    protocol = forms.ModelChoiceField(queryset=Protocol.objects.none(), required=False, empty_label="All protocols")
    weekday = forms.TypedChoiceField(
        choices=[("", "Every weekday"), *enumerate(WEEKDAY_NAMES)], coerce=int, empty_value=None, required=False
    )
    hour = forms.TypedChoiceField(
        label="Start hour",
        choices=[("", "Every hour")] + [(h, f"{h:02d}:00") for h in range(24)],
        coerce=int,
        empty_value=None,
        required=False,
    )

    def __init__(self, *args, clinics: QuerySet[Clinic], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["clinic"].queryset = clinics
        self.fields["protocol"].queryset = Protocol.objects.filter(clinic__in=clinics).select_related("clinic")

    def clean(self) -> dict:
        data = super().clean()
        clinic = data.get("clinic")
        if clinic is None:
            return data
        protocol = data.get("protocol")
        if protocol is not None and protocol.clinic_id != clinic.pk:
            self.add_error("protocol", "Choose a protocol of this clinic.")
        today = clinic.local(timezone.now()).date()
        last = data.get("last") or today
        first = data.get("first") or last - timedelta(days=REPORT_DAYS_DEFAULT - 1)
        if first > last:
            self.add_error("first", "The first day comes after the last.")
        elif (last - first).days >= REPORT_DAYS_MOST:
            self.add_error("first", f"Choose at most {REPORT_DAYS_MOST} days.")
        data["first"], data["last"] = first, last
        return data
