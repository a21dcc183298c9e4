"""The booking domain: clinics, chairs, staffing, protocols, patients, series and sessions.

Every datetime is stored in UTC; a clinic's zone is applied only at the edges. The rules that
the database can hold, it holds: check constraints here, and on PostgreSQL two exclusion
constraints (migration 0002) so that no code path can double-book a chair or a patient.
"""

from collections.abc import Collection
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import IntegrityError, models, transaction
from django.db.models import F, Q
from django.utils import timezone

from .clock import local_date
from .validators import (
    phone_in_region,
    phone_region,
    validate_date_of_birth,
    validate_e164,
    validate_neutral,
    validate_single_line,
    validate_time_zone,
)


class Weekday(models.IntegerChoices):
    MONDAY = 0, "Monday"
    TUESDAY = 1, "Tuesday"
    WEDNESDAY = 2, "Wednesday"
    THURSDAY = 3, "Thursday"
    FRIDAY = 4, "Friday"
    SATURDAY = 5, "Saturday"
    SUNDAY = 6, "Sunday"


class Language(models.TextChoices):
    ENGLISH = "en", "English"
    SPANISH = "es", "Español"


STAYS_IN_ITS_CLINIC = "This stays in the clinic it was made in: register it anew in the other clinic."


class StaysInItsClinic(models.Model):
    """A row of one clinic stays there. Its history (a patient's visits and texts, a protocol's
    series) belongs to that clinic, and a user of two clinics must not carry it to the other."""

    class Meta:
        abstract = True

    def clean(self) -> None:
        super().clean()
        if self.pk is None or self.clinic_id is None:
            return
        stored = type(self)._base_manager.filter(pk=self.pk).values_list("clinic_id", flat=True).first()
        if stored is not None and stored != self.clinic_id:
            raise ValidationError({"clinic": STAYS_IN_ITS_CLINIC})


class Clinic(models.Model):
    name = models.CharField(max_length=120, unique=True, validators=[validate_single_line])
    time_zone = models.CharField(max_length=64, validators=[validate_time_zone])
    phone = models.CharField(max_length=16, validators=[validate_e164])
    address = models.CharField(max_length=300, validators=[validate_single_line])
    # What patients see as the sender: it must not reveal the treatment.
    sender_name = models.CharField(max_length=40, validators=[validate_single_line, validate_neutral])
    message_window_start = models.TimeField(default=time(9), help_text="No texts before this, patient's time.")
    message_window_end = models.TimeField(default=time(20), help_text="No texts after this, patient's time.")
    turnover_buffer_minutes = models.PositiveSmallIntegerField(default=15, validators=[MaxValueValidator(240)])
    slot_minutes = models.PositiveSmallIntegerField(
        default=15,
        validators=[MinValueValidator(5), MaxValueValidator(60)],
        help_text="Start times are offered on this grid; the stagger cap counts starts per slot.",
    )
    max_starts_per_slot = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(200)],
        help_text="Stagger cap: most sessions that may start in one slot. Empty: no cap.",
    )
    cancellation_notice_hours = models.PositiveSmallIntegerField(default=24, validators=[MaxValueValidator(720)])
    self_service_notice_hours = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MaxValueValidator(720)],
        help_text="The least notice for a time a patient picks by link or text. Empty: the larger of the "
        "protocol's fasting hours and the cancellation notice.",
    )
    patients_may_reflow = models.BooleanField(
        default=False,
        help_text="Patients moving a visit on their link may re-space the later visits of the series with it.",
    )
    mrn_prefix = models.CharField(
        "MRN prefix",
        max_length=20,
        blank=True,
        validators=[validate_single_line],
        help_text="Put before the number of a patient registered without an MRN, e.g. 'PHX-'.",
    )
    next_mrn = models.PositiveIntegerField(
        "next MRN number",
        default=1,
        # Ten digits at most: with the prefix, an MRN still fits Patient.external_id.
        validators=[MaxValueValidator(999_999_999)],
        help_text="The next patient registered without an MRN gets this number; numbers given by hand are skipped.",
    )

    class Meta:
        ordering = ["name"]
        permissions = [("view_reports", "Can see the clinic's reports")]
        constraints = [
            models.CheckConstraint(condition=Q(slot_minutes__gte=5, slot_minutes__lte=60), name="clinic_slot_5_to_60"),
            models.CheckConstraint(
                condition=Q(message_window_start__lt=F("message_window_end")), name="clinic_window_order"
            ),
            models.CheckConstraint(
                condition=Q(max_starts_per_slot__isnull=True) | Q(max_starts_per_slot__gte=1),
                name="clinic_stagger_positive",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    @property
    def region(self) -> str | None:
        """The clinic's country, from its own phone: patients' phones typed without a country
        code are read as numbers of it."""
        return phone_region(self.phone)

    def local(self, moment: datetime) -> datetime:
        return moment.astimezone(self.zone)

    def mrn_take(self) -> str:
        """The clinic's next MRN, as "{prefix}{number:06d}". Call it inside a transaction: the
        UPDATE's lock on the clinic's row (the first level of the lock order, sessions/locking.py)
        is held until it ends, so concurrent registrations take numbers in turn, and a rollback
        gives the number back."""
        Clinic.objects.filter(pk=self.pk).update(next_mrn=F("next_mrn") + 1)
        taken, prefix = Clinic.objects.filter(pk=self.pk).values_list("next_mrn", "mrn_prefix").get()
        return f"{prefix}{taken - 1:06d}"


class OpeningHours(models.Model):
    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="opening_hours")
    weekday = models.PositiveSmallIntegerField(choices=Weekday.choices)
    opens = models.TimeField()
    closes = models.TimeField()

    class Meta:
        ordering = ["clinic", "weekday"]
        verbose_name_plural = "opening hours"
        constraints = [
            models.UniqueConstraint(fields=["clinic", "weekday"], name="opening_hours_one_per_day"),
            models.CheckConstraint(condition=Q(opens__lt=F("closes")), name="opening_hours_order"),
            models.CheckConstraint(condition=Q(weekday__lte=6), name="opening_hours_weekday"),
        ]

    def __str__(self) -> str:
        return f"{self.get_weekday_display()} {self.opens:%H:%M}–{self.closes:%H:%M}"


class ClosedDate(models.Model):
    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="closed_dates")
    date = models.DateField()
    reason = models.CharField(max_length=120, blank=True, validators=[validate_single_line])

    class Meta:
        ordering = ["clinic", "date"]
        constraints = [models.UniqueConstraint(fields=["clinic", "date"], name="closed_date_once")]

    def __str__(self) -> str:
        return f"{self.date} {self.reason}".strip()


class Chair(StaysInItsClinic):
    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="chairs")
    name = models.CharField(max_length=40, validators=[validate_single_line])
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["clinic", "name"]
        constraints = [models.UniqueConstraint(fields=["clinic", "name"], name="chair_name_unique_in_clinic")]

    def __str__(self) -> str:
        return self.name


class StaffingBlock(models.Model):
    """Nurses on shift in a weekly time block; their patients-per-nurse bound concurrent sessions."""

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="staffing_blocks")
    weekday = models.PositiveSmallIntegerField(choices=Weekday.choices)
    starts = models.TimeField()
    ends = models.TimeField()
    nurses = models.PositiveSmallIntegerField(validators=[MaxValueValidator(200)])
    patients_per_nurse = models.PositiveSmallIntegerField(
        default=4, validators=[MinValueValidator(1), MaxValueValidator(20)]
    )

    class Meta:
        ordering = ["clinic", "weekday", "starts"]
        constraints = [
            models.CheckConstraint(condition=Q(starts__lt=F("ends")), name="staffing_block_order"),
            models.CheckConstraint(condition=Q(weekday__lte=6), name="staffing_block_weekday"),
        ]

    def __str__(self) -> str:
        return f"{self.get_weekday_display()} {self.starts:%H:%M}–{self.ends:%H:%M}: {self.nurses} nurses"

    @property
    def capacity(self) -> int:
        return self.nurses * self.patients_per_nurse


class Protocol(StaysInItsClinic):
    """A series template. `name` is internal; patients only ever see `patient_name`."""

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="protocols")
    name = models.CharField(max_length=120, validators=[validate_single_line])
    patient_name = models.CharField(
        max_length=60,
        validators=[validate_single_line, validate_neutral],
        help_text="Neutral name shown to patients, e.g. 'Wellness visit'.",
    )
    session_count = models.PositiveSmallIntegerField(validators=[MinValueValidator(1), MaxValueValidator(52)])
    chair_minutes = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(5), MaxValueValidator(720)], help_text="Pre-assessment + treatment + recovery."
    )
    min_gap_days = models.PositiveSmallIntegerField(default=1, validators=[MaxValueValidator(365)])
    max_gap_days = models.PositiveSmallIntegerField(default=7, validators=[MaxValueValidator(365)])
    fasting_hours = models.PositiveSmallIntegerField(default=0, validators=[MaxValueValidator(48)])
    driver_required = models.BooleanField(default=True)
    no_driving_hours = models.PositiveSmallIntegerField(default=24, validators=[MaxValueValidator(168)])
    preparation_instructions = models.TextField(blank=True)
    # What Spanish-speaking patients read instead; empty: the English above.
    patient_name_es = models.CharField(
        "patient name (Spanish)",
        max_length=60,
        blank=True,
        validators=[validate_single_line, validate_neutral],
        help_text="e.g. 'Visita de bienestar'. Empty: Spanish-speaking patients see the name above.",
    )
    preparation_instructions_es = models.TextField(
        "preparation instructions (Spanish)", blank=True, help_text="Empty: the instructions above."
    )
    booster_interval_days = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MaxValueValidator(730)],
        help_text="Days after a completed series that its booster falls due; empty: no recall.",
    )  # fmt: skip
    booster_protocol = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="What a recall books when a series of this protocol completes (a booster of the same clinic).",
    )  # fmt: skip
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["clinic", "name"]
        constraints = [
            models.UniqueConstraint(fields=["clinic", "name"], name="protocol_name_unique_in_clinic"),
            models.CheckConstraint(
                condition=Q(session_count__gte=1, session_count__lte=52), name="protocol_count_range"
            ),
            models.CheckConstraint(
                condition=Q(chair_minutes__gte=5, chair_minutes__lte=720), name="protocol_chair_minutes_range"
            ),
            models.CheckConstraint(condition=Q(min_gap_days__lte=F("max_gap_days")), name="protocol_gap_order"),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()
        if self.booster_protocol_id is not None and self.booster_protocol.clinic_id != self.clinic_id:
            raise ValidationError({"booster_protocol": "The booster must be a protocol of the same clinic."})

    def patient_name_in(self, language: str) -> str:
        return self.patient_name_es if language == "es" and self.patient_name_es else self.patient_name

    def instructions_in(self, language: str) -> str:
        if language == "es" and self.preparation_instructions_es:
            return self.preparation_instructions_es
        return self.preparation_instructions


MRN_UNIQUE = "patient_mrn_unique_in_clinic"


class Patient(StaysInItsClinic):
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="patients")
    first_name = models.CharField(max_length=80, validators=[validate_single_line])
    last_name = models.CharField(max_length=80, validators=[validate_single_line])
    external_id = models.CharField(
        "MRN",
        max_length=40,
        blank=True,
        validators=[validate_single_line],
        help_text="Leave empty to number it automatically.",
    )
    date_of_birth = models.DateField(null=True, blank=True, validators=[validate_date_of_birth])
    phone = models.CharField(max_length=16, blank=True, validators=[validate_e164])
    email = models.EmailField(blank=True)
    time_zone = models.CharField(
        max_length=64,
        blank=True,
        validators=[validate_time_zone],
        help_text="An IANA zone such as America/Phoenix; empty: the clinic's.",
    )
    language = models.CharField(max_length=2, choices=Language.choices, default=Language.ENGLISH)
    sms_enabled = models.BooleanField(default=True)
    email_enabled = models.BooleanField(default=True)
    sms_consent_at = models.DateTimeField(null=True, blank=True)
    sms_consent_source = models.CharField(
        max_length=80,
        blank=True,
        validators=[validate_single_line],
        help_text="How consent was given, e.g. 'intake form'.",
    )
    sms_opted_out_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["last_name", "first_name"]
        constraints = [models.UniqueConstraint(fields=["clinic", "external_id"], name=MRN_UNIQUE)]
        indexes = [models.Index(fields=["phone"], name="patient_phone_idx")]

    def __str__(self) -> str:
        return f"{self.first_name} {self.last_name}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        # An MRN left empty (the staff form, the admin and the API all save here) is the clinic's
        # next number that no patient of the clinic holds yet.
        if self.external_id:
            super().save(*args, **kwargs)
            return
        try:
            with transaction.atomic():
                self._save_numbered(*args, **kwargs)
        except Exception:
            # Nothing was saved: the number goes back to the clinic, and the MRN stays empty.
            self.external_id = ""
            raise

    def _save_numbered(self, *args: Any, **kwargs: Any) -> None:
        while True:
            self.external_id = self.clinic.mrn_take()
            if Patient.objects.filter(clinic_id=self.clinic_id, external_id=self.external_id).exists():
                continue  # typed by hand before the counter reached it
            try:
                with transaction.atomic():
                    super().save(*args, **kwargs)
                return
            except IntegrityError as error:
                # Typed by hand in a registration not yet committed when we looked.
                if getattr(getattr(error.__cause__, "diag", None), "constraint_name", None) != MRN_UNIQUE:
                    raise

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone) if self.time_zone else self.clinic.zone

    @property
    def age(self) -> int | None:
        """Whole years on the clinic's today; 0 for a birth dated its tomorrow, which
        validate_date_of_birth allows where that day has begun."""
        born: date | None = self.date_of_birth
        if born is None:
            return None
        today = local_date(timezone.now(), self.clinic.zone)
        return max(0, today.year - born.year - ((today.month, today.day) < (born.month, born.day)))

    def clean_fields(self, exclude: Collection[str] | None = None) -> None:
        # A phone as staff type it, read in the clinic's country, is stored in E.164 before the
        # field's validator checks it: every form of this model (staff pages, admin) and the API
        # (PatientSerializer) take "(602) 555-0101" alike.
        if self.phone and self.clinic_id is not None and not (exclude and "phone" in exclude):
            self.phone = phone_in_region(self.phone, self.clinic.region)
        super().clean_fields(exclude=exclude)


# Staff pages' short names of the weekdays, Monday first (Python's weekday numbers).
WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def weekdays_text(weekdays: Collection[int]) -> str:
    """ "Mon/Wed/Fri"."""
    return "/".join(WEEKDAY_NAMES[day] for day in sorted(weekdays))


class KeepsToWeekdays(models.Model):
    """Some days of the week, as a series booked on a pattern such as Mon/Wed/Fri keeps to them
    (a re-flow too), or as a waiting patient can come: bit n is Python's weekday n (Monday 0);
    0 is any day."""

    weekday_mask = models.PositiveSmallIntegerField(default=0, validators=[MaxValueValidator(127)])

    class Meta:
        abstract = True

    @property
    def weekdays(self) -> frozenset[int]:
        return frozenset(day for day in range(7) if self.weekday_mask & (1 << day))

    @property
    def weekday_names(self) -> str:
        """ "Mon/Wed/Fri"; empty for any day."""
        return weekdays_text(self.weekdays)

    @staticmethod
    def weekday_mask_of(weekdays: Collection[int] | None) -> int:
        return sum(1 << day for day in set(weekdays or ()))


class Series(KeepsToWeekdays):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        COMPLETED = "completed", "Completed"
        CANCELLED = "cancelled", "Cancelled"

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="series")
    protocol = models.ForeignKey(Protocol, on_delete=models.PROTECT, related_name="series")
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="series")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Set only when staff booked this beside another active series of the same protocol (rule 10).
    override_reason = models.CharField(max_length=300, blank=True, validators=[validate_single_line])

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "series"
        constraints = [
            models.UniqueConstraint(
                fields=["patient", "protocol"],
                condition=Q(status="active", override_reason=""),
                name="series_one_active_per_protocol",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.patient} – {self.protocol}"


class Session(models.Model):
    class Status(models.TextChoices):
        BOOKED = "booked", "Booked"
        CONFIRMED = "confirmed", "Confirmed"
        ARRIVED = "arrived", "Arrived"
        COMPLETED = "completed", "Completed"
        CANCELLED = "cancelled", "Cancelled"
        NO_SHOW = "no_show", "No-show"

    # Statuses that hold the chair and the patient's time. Kept in step with the exclusion
    # constraints of migration 0002.
    HOLDING = (Status.BOOKED, Status.CONFIRMED, Status.ARRIVED, Status.COMPLETED)
    # Statuses in which the session is still to happen and may be moved, confirmed or cancelled.
    UPCOMING = (Status.BOOKED, Status.CONFIRMED)

    class Channel(models.TextChoices):
        STAFF = "staff", "Staff"
        SMS = "sms", "SMS"
        LINK = "link", "Patient link"
        API = "api", "API"

    series = models.ForeignKey(Series, on_delete=models.CASCADE, related_name="sessions")
    # Denormalised from the series so the database can hold rules 2 and 3 on this one table.
    # The patient's and the clinic's lookups use session_patient_start_idx and
    # session_clinic_start_idx, which lead with them: no index of their own to keep on each insert.
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="sessions", db_index=False)
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="sessions", db_index=False)
    chair = models.ForeignKey(Chair, on_delete=models.PROTECT, related_name="sessions")
    number = models.PositiveSmallIntegerField(help_text="k in 'session k of n'.")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    # ends_at plus the clinic's turnover buffer: the chair is not free before this.
    chair_free_at = models.DateTimeField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.BOOKED)
    version = models.PositiveIntegerField(default=1, help_text="Goes up each time the session moves.")
    confirmed_at = models.DateTimeField(null=True, blank=True)
    confirmed_via = models.CharField(max_length=8, choices=Channel.choices, blank=True)
    driver_confirmed = models.BooleanField(default=False)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    cancellation_reason = models.CharField(max_length=300, blank=True)
    # Attendance as it happened: when the patient sat down and got up (rule 15).
    chair_in_at = models.DateTimeField(null=True, blank=True)
    chair_out_at = models.DateTimeField(null=True, blank=True)
    # A make-up session takes the number of the cancelled or missed one it makes good (rule 11).
    makeup_for = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="made_up_by"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["starts_at"]
        constraints = [
            # One holding session per number: a cancelled or missed one may be made up under its number.
            models.UniqueConstraint(
                fields=["series", "number"],
                condition=Q(status__in=["booked", "confirmed", "arrived", "completed"]),
                name="session_number_unique_in_series",
            ),
            models.CheckConstraint(
                condition=Q(chair_out_at__isnull=True)
                | Q(chair_in_at__isnull=False, chair_out_at__gt=F("chair_in_at")),
                name="session_chair_out_after_in",
            ),
            models.CheckConstraint(condition=Q(ends_at__gt=F("starts_at")), name="session_ends_after_start"),
            models.CheckConstraint(condition=Q(chair_free_at__gte=F("ends_at")), name="session_chair_free_after_end"),
        ]
        indexes = [
            models.Index(fields=["clinic", "starts_at"], name="session_clinic_start_idx"),
            models.Index(fields=["patient", "starts_at"], name="session_patient_start_idx"),
            # Every clinic's visits still to come, by start: the tick's look for drivers unconfirmed.
            models.Index(
                fields=["starts_at"], condition=Q(status__in=["booked", "confirmed"]), name="session_upcoming_start_idx"
            ),
        ]
        permissions = [
            ("move_session", "Can move a session"),
            ("cancel_session", "Can cancel a session"),
            ("confirm_session", "Can confirm a session for a patient"),
            ("mark_attendance", "Can mark arrived, completed or no-show"),
        ]

    def __str__(self) -> str:
        return (
            f"{self.patient} {self.number}/{self.series.protocol.session_count} at {self.starts_at:%Y-%m-%d %H:%M} UTC"
        )

    @property
    def is_upcoming(self) -> bool:
        return self.status in self.UPCOMING


class SessionMove(models.Model):
    """One move of a session: the history staff see and the audit trail keeps."""

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="moves")
    from_starts_at = models.DateTimeField()
    from_chair = models.ForeignKey(Chair, on_delete=models.PROTECT, related_name="+")
    to_starts_at = models.DateTimeField()
    to_chair = models.ForeignKey(Chair, on_delete=models.PROTECT, related_name="+")
    reason = models.CharField(max_length=300, blank=True)
    via = models.CharField(max_length=8, choices=Session.Channel.choices)
    moved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    moved_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["moved_at"]

    def __str__(self) -> str:
        return f"{self.from_starts_at:%Y-%m-%d %H:%M} → {self.to_starts_at:%Y-%m-%d %H:%M} UTC"


class PatientNote(models.Model):
    """What the front desk keeps about a patient ("prefers mornings", "call her sister first"):
    staff-only, never in a message. Kept in the clinic the patient belongs to."""

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="notes")
    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="+")
    text = models.TextField(max_length=2000)
    written_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    written_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-written_at", "-id"]
        indexes = [models.Index(fields=["patient", "-written_at"], name="note_patient_written_idx")]

    def __str__(self) -> str:
        return f"Note on {self.patient} ({self.written_at:%Y-%m-%d})"


class WaitlistEntry(StaysInItsClinic, KeepsToWeekdays):
    """A patient waiting for chair time: a new series of a protocol (a booster is a protocol of one
    session), or an earlier time for a session already booked. Chair time that frees up is
    matched against the entries still waiting (sessions/waitlist.py), within their dates and the
    days and hours they can come, keeping every booking rule."""

    class Status(models.TextChoices):
        WAITING = "waiting", "Waiting"
        BOOKED = "booked", "Booked from the waitlist"
        REMOVED = "removed", "Removed"

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="waitlist")
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="waitlist_entries")
    protocol = models.ForeignKey(Protocol, on_delete=models.PROTECT, related_name="waitlist_entries")
    # Set for an earlier time for this booked session; empty for a new series of `protocol`.
    session = models.ForeignKey(
        "Session", null=True, blank=True, on_delete=models.CASCADE, related_name="waitlist_entries"
    )
    earliest = models.DateField(help_text="The first day the patient can come.")
    latest = models.DateField(help_text="The last day worth offering.")
    not_before = models.TimeField(null=True, blank=True, help_text="Clinic time; empty: from opening.")
    not_after = models.TimeField(null=True, blank=True, help_text="Latest start, clinic time; empty: any.")
    # Urgency: entries with the nearest deadline rank first (WAITLIST_RANKING).
    needed_by = models.DateField(null=True, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.WAITING)
    note = models.CharField(max_length=300, blank=True, validators=[validate_single_line])
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    via = models.CharField(max_length=5, choices=Session.Channel.choices, default=Session.Channel.STAFF)
    booked_series = models.ForeignKey(Series, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name_plural = "waitlist entries"
        constraints = [
            models.CheckConstraint(condition=Q(earliest__lte=F("latest")), name="waitlist_dates_in_order"),
            # One wish waiting per patient and protocol (a new series), or per booked session.
            models.UniqueConstraint(
                fields=["patient", "protocol"], condition=Q(status="waiting", session__isnull=True),
                name="waitlist_one_waiting_series",
            ),
            models.UniqueConstraint(
                fields=["session"], condition=Q(status="waiting", session__isnull=False),
                name="waitlist_one_waiting_per_session",
            ),
        ]  # fmt: skip
        indexes = [models.Index(fields=["clinic", "latest"], condition=Q(status="waiting"), name="waitlist_open_idx")]

    def __str__(self) -> str:
        return f"{self.patient} waiting for {self.wish}"

    @property
    def wish(self) -> str:
        """What the patient waits for: "a Booster series", "an earlier session 3 of Depression induction"."""
        if self.session_id is not None:
            return f"an earlier session {self.session.number} of {self.protocol}"
        return f"a {self.protocol} series"


class Recall(StaysInItsClinic):
    """A booster falling due after a completed series: `due_on` is its last session's day plus the
    protocol's booster interval. Staff see who is due and who is overdue (sessions/recalls.py);
    booking the booster closes it, "not now" snoozes it, a decline ends it."""

    class Status(models.TextChoices):
        DUE = "due", "Due"
        SNOOZED = "snoozed", "Snoozed"
        BOOKED = "booked", "Booked"
        DECLINED = "declined", "Declined"
        WITHDRAWN = "withdrawn", "Withdrawn"

    OPEN = (Status.DUE, Status.SNOOZED)

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="recalls")
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="recalls")
    series = models.OneToOneField(Series, on_delete=models.CASCADE, related_name="recall")
    protocol = models.ForeignKey(Protocol, on_delete=models.PROTECT, related_name="recalls")
    due_on = models.DateField()
    status = models.CharField(max_length=9, choices=Status.choices, default=Status.DUE)
    snoozed_until = models.DateField(null=True, blank=True)
    booked_series = models.ForeignKey(Series, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # The day (due_on, or the end of a snooze) the patient was last texted for: one text per.
    texted_for = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["due_on", "id"]
        indexes = [models.Index(fields=["clinic", "due_on"], condition=Q(status__in=["due", "snoozed"]),
                                name="recall_open_idx")]  # fmt: skip

    def __str__(self) -> str:
        return f"{self.patient}: {self.protocol} due {self.due_on:%d %b %Y}"

    @property
    def next_on(self) -> date:
        """When staff should act: the due day, or the end of a snooze."""
        return self.snoozed_until if self.status == self.Status.SNOOZED and self.snoozed_until else self.due_on


class Opening(StaysInItsClinic):
    """Chair time freed ahead of its start (a cancel, a move away): the beat tick offers it to the
    waitlist (notifications/offers.py) until it is filled, its time comes too close, or staff
    book it otherwise."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        FILLED = "filled", "Filled from the waitlist"
        LAPSED = "lapsed", "Lapsed"

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="openings")
    starts_at = models.DateTimeField()
    # The chair the freed session held; empty: any chair free then (a move's old time).
    chair = models.ForeignKey(Chair, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    freed_by = models.ForeignKey("Session", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    status = models.CharField(max_length=6, choices=Status.choices, default=Status.OPEN)
    reason = models.CharField(max_length=200, blank=True)
    # When the tick last looked for candidates: a time nobody fits is looked at again later, not
    # on every tick.
    checked_at = models.DateTimeField(null=True, blank=True)
    filled_series = models.ForeignKey(Series, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["starts_at", "id"]
        indexes = [models.Index(fields=["starts_at"], condition=Q(status="open"), name="opening_open_idx")]

    def __str__(self) -> str:
        return f"{self.clinic}: {self.starts_at:%Y-%m-%d %H:%M} UTC ({self.status})"


class Offer(StaysInItsClinic):
    """A freed time offered to one waitlisted patient by text, with a link. The first patient to
    accept an opening gets it; the rest of its offers end as taken."""

    class Status(models.TextChoices):
        OFFERED = "offered", "Offered"
        ACCEPTED = "accepted", "Accepted"
        DECLINED = "declined", "Declined"
        EXPIRED = "expired", "Expired"
        TAKEN = "taken", "No longer available"
        UNREACHED = "unreached", "Not reached"

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="offers")
    opening = models.ForeignKey(Opening, on_delete=models.CASCADE, related_name="offers")
    entry = models.ForeignKey(WaitlistEntry, on_delete=models.CASCADE, related_name="offers")
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="offers")
    expires_at = models.DateTimeField()
    status = models.CharField(max_length=9, choices=Status.choices, default=Status.OFFERED)
    created_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["opening", "entry"], name="offer_once_per_entry")]
        indexes = [models.Index(fields=["expires_at"], condition=Q(status="offered"), name="offer_out_idx")]

    def __str__(self) -> str:
        return f"{self.patient}: {self.opening} ({self.status})"


class AuditEvent(models.Model):
    """Who changed what, when and through which channel: staff, API, admin, a patient's text or link.

    A booking action (booked, moved, confirmed, cancelled, attendance) names its patient, series
    and session. A change to configuration or a patient record (sessions/audit.py) names the
    object's type and id, and in `detail` the fields that changed, never their values.
    """

    class Via(models.TextChoices):
        # A session's channels, and two surfaces that never confirm or move one.
        STAFF = "staff", "Staff"
        SMS = "sms", "SMS"
        LINK = "link", "Patient link"
        API = "api", "API"
        ADMIN = "admin", "Admin"
        SYSTEM = "system", "System"

    at = models.DateTimeField(db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    via = models.CharField(max_length=8, choices=Via.choices)
    action = models.CharField(max_length=40)
    # Kept when a clinic is deleted, so the deletion itself stays on record.
    # Looked up by audit_clinic_at_idx and audit_patient_at_idx, which lead with them.
    clinic = models.ForeignKey(
        Clinic, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    patient = models.ForeignKey(
        Patient, null=True, blank=True, on_delete=models.CASCADE, related_name="audit_events", db_index=False
    )
    series = models.ForeignKey(Series, null=True, blank=True, on_delete=models.CASCADE, related_name="audit_events")
    session = models.ForeignKey(Session, null=True, blank=True, on_delete=models.CASCADE, related_name="audit_events")
    object_type = models.CharField(max_length=60, blank=True, help_text="app_label.model of a changed record.")
    object_id = models.PositiveBigIntegerField(null=True, blank=True)
    detail = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["patient", "-at"], name="audit_patient_at_idx"),
            models.Index(fields=["clinic", "-at"], name="audit_clinic_at_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.action} via {self.via}"
