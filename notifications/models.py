"""Messages to patients, planned as rows in the booking transaction and sent by Celery workers.

A `Message` row is the unit of work: planned with a due time, claimed by the beat tick,
`sending` while a worker talks to the provider, then `sent` and, from Twilio's callbacks,
`delivered` / `undelivered` / `failed`; or it ends `cancelled`, `skipped` or `expired` with the
reason. The unique key (session, purpose, channel, session version) means a planning step that
runs twice cannot plan a message twice.
"""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator
from django.db import models
from django.db.models import Q

from sessions.models import Clinic, Language, Offer, Patient, Protocol, Recall, Series, Session, StaysInItsClinic
from sessions.validators import validate_single_line


class Channel(models.TextChoices):
    SMS = "sms", "SMS"
    EMAIL = "email", "Email"


class Purpose(models.TextChoices):
    BOOKED = "booked", "Booking confirmation"
    REMINDER = "reminder", "Reminder"
    MOVED = "moved", "Moved notice"
    CANCELLED = "cancelled", "Cancellation notice"
    CANCEL_ALL = "cancel_all", "Series cancellation notice"
    REFLOWED = "reflowed", "New times notice"
    LINK = "link", "Link sent again"
    OFFER = "offer", "Waitlist offer"
    RECALL = "recall", "Booster recall"


# Notices about visits that no longer happen: sent although (because) the session is cancelled.
CANCELLATIONS = (Purpose.CANCELLED, Purpose.CANCEL_ALL)


class ReminderRule(StaysInItsClinic):
    """When to remind, per clinic, or per protocol where a protocol needs its own rules.

    A protocol with rules of its own uses only those; every other protocol uses the clinic's.
    """

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="reminder_rules")
    protocol = models.ForeignKey(
        Protocol, on_delete=models.CASCADE, null=True, blank=True, related_name="reminder_rules"
    )
    channel = models.CharField(max_length=5, choices=Channel.choices)
    offset_minutes = models.PositiveIntegerField(
        validators=[MaxValueValidator(60 * 24 * 30)], help_text="How long before the session start."
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["clinic", "protocol", "-offset_minutes", "channel"]
        constraints = [
            models.UniqueConstraint(
                fields=["clinic", "protocol", "channel", "offset_minutes"], name="reminder_rule_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_channel_display()} {self.before} before"

    @property
    def before(self) -> str:
        """The offset as staff say it: "72 h", "2 h 30 min", "45 min"."""
        hours, minutes = divmod(self.offset_minutes, 60)
        return f"{hours} h" + (f" {minutes} min" if minutes else "") if hours else f"{minutes} min"

    def clean(self) -> None:
        super().clean()
        # The API's serializer says the same: a rule of one clinic never times another's protocol.
        if self.protocol_id is not None and self.clinic_id is not None and self.protocol.clinic_id != self.clinic_id:
            raise ValidationError({"protocol": "That protocol belongs to another clinic."})


class MessageTemplate(StaysInItsClinic):
    """A clinic's own wording for one purpose, channel and language; built-in wording otherwise."""

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="message_templates")
    purpose = models.CharField(max_length=10, choices=Purpose.choices)
    channel = models.CharField(max_length=5, choices=Channel.choices)
    language = models.CharField(max_length=2, choices=Language.choices)
    subject = models.CharField(max_length=120, blank=True, validators=[validate_single_line], help_text="Email only.")
    body = models.TextField(
        max_length=4000,
        help_text="Placeholders: {clinic} {date} {time} {link} {phone} {address} {number} {count} {visit}. "
        "A text must fit one GSM-7 segment and carry {link} and STOP.",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["clinic", "purpose", "channel", "language"], name="message_template_unique")
        ]

    def __str__(self) -> str:
        return f"{self.get_purpose_display()} {self.channel} {self.language}"

    def clean(self) -> None:
        super().clean()
        from .wording import template_problems

        problems = template_problems(self)
        if problems:
            raise ValidationError(problems)


class Message(models.Model):
    class Status(models.TextChoices):
        PLANNED = "planned", "Planned"
        CLAIMED = "claimed", "Claimed"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        DELIVERED = "delivered", "Delivered"
        UNDELIVERED = "undelivered", "Undelivered"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"
        SKIPPED = "skipped", "Skipped"
        EXPIRED = "expired", "Expired"

    PENDING = (Status.PLANNED, Status.CLAIMED)
    FINAL = (Status.DELIVERED, Status.UNDELIVERED, Status.FAILED, Status.CANCELLED, Status.SKIPPED, Status.EXPIRED)
    # Texts that reached (or may have reached) the provider count towards a patient's caps.
    WENT_OUT = (Status.SENDING, Status.SENT, Status.DELIVERED, Status.UNDELIVERED)

    # Every message row costs one entry per index on the booking's path: the session's and the
    # patient's lookups use the leading columns of message_planned_once and message_patient_sent_idx,
    # so neither key has an index of its own.
    # What the message is about: a session, or (no session yet) a waitlist offer or a booster
    # recall; exactly one (message_has_one_owner).
    session = models.ForeignKey(
        Session, on_delete=models.CASCADE, null=True, blank=True, related_name="messages", db_index=False
    )
    offer = models.ForeignKey(Offer, on_delete=models.CASCADE, null=True, blank=True, related_name="messages")
    recall = models.ForeignKey(Recall, on_delete=models.CASCADE, null=True, blank=True, related_name="messages")
    # The owner's clinic, kept on the row: staff, the admin and the API see a clinic's messages
    # whatever they are about.
    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="messages")
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="messages", db_index=False)
    purpose = models.CharField(max_length=10, choices=Purpose.choices)
    rule = models.ForeignKey(ReminderRule, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    # Distinguishes messages of one purpose: the rule for reminders, the failed text for a fallback.
    key = models.CharField(max_length=40)
    channel = models.CharField(max_length=5, choices=Channel.choices)
    session_version = models.PositiveIntegerField()
    due_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    status = models.CharField(max_length=11, choices=Status.choices, default=Status.PLANNED)
    reason = models.CharField(max_length=300, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    recipient = models.CharField(max_length=254, blank=True)
    # What was sent, with the patient link's token cut out: the token is only ever stored hashed.
    body_redacted = models.TextField(blank=True)
    # Unique where set (message_provider_id_unique): NULL, not "", for the planned rows (most of
    # the table) that have none, so that the index leaves them out.
    provider_id = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    provider_error = models.CharField(max_length=20, blank=True)
    sending_started_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["due_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["session", "purpose", "key", "channel", "session_version"], name="message_planned_once"
            ),
            models.UniqueConstraint(
                fields=["provider_id"], condition=Q(provider_id__isnull=False), name="message_provider_id_unique"
            ),
            models.UniqueConstraint(fields=["offer", "key", "channel"], condition=Q(offer__isnull=False),
                                    name="message_offer_once"),
            models.UniqueConstraint(fields=["recall", "key", "channel"], condition=Q(recall__isnull=False),
                                    name="message_recall_once"),
            models.CheckConstraint(
                condition=Q(session__isnull=False, offer=None, recall=None)
                | Q(session=None, offer__isnull=False, recall=None)
                | Q(session=None, offer=None, recall__isnull=False),
                name="message_has_one_owner",
            ),
        ]  # fmt: skip
        indexes = [
            # The tick's claim reads only due planned rows: keep that index as small as they are.
            models.Index(fields=["due_at"], condition=Q(status="planned"), name="message_due_planned_idx"),
            models.Index(
                fields=["lease_expires_at"], condition=Q(status__in=["claimed", "sending"]), name="message_lease_idx"
            ),
            models.Index(fields=["patient", "channel", "sending_started_at"], name="message_patient_sent_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_purpose_display()} {self.channel} for {self.owner_text} ({self.status})"

    def save(self, *args, **kwargs) -> None:
        if self.clinic_id is None:
            self.clinic_id = self.owner.clinic_id
        super().save(*args, **kwargs)

    @property
    def owner(self) -> "Session | Offer | Recall":
        """What the message is about: its session, or its offer or recall."""
        return self.offer or self.recall or self.session

    @property
    def owner_text(self) -> str:
        if self.offer_id is not None:
            return f"offer {self.offer_id}"
        if self.recall_id is not None:
            return f"recall {self.recall_id}"
        return f"session {self.session_id}"

    @property
    def what(self) -> str:
        """Which message this is, in staff's words: "Reminder 72 h before", "Booking confirmation".
        A reminder sent by email instead of a text keeps its text rule's offset."""
        if self.purpose == Purpose.REMINDER and self.rule is not None:
            return f"Reminder {self.rule.before} before"
        return self.get_purpose_display()


class ContactStatus(models.Model):
    """What the provider told us about a patient's phone: a number we must not text again."""

    class Problem(models.TextChoices):
        UNSUBSCRIBED = "21610", "Recipient has opted out at the carrier"
        INVALID = "21211", "Invalid phone number"
        NOT_MOBILE = "21614", "Not a mobile number"

    patient = models.OneToOneField(Patient, on_delete=models.CASCADE, related_name="contact_status")
    phone = models.CharField(max_length=16, help_text="The number the problem was found on.")
    sms_problem = models.CharField(max_length=5, choices=Problem.choices, blank=True)
    sms_problem_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "contact statuses"

    def __str__(self) -> str:
        return f"{self.patient}: {self.get_sms_problem_display() or 'ok'}"


class StaffFlag(models.Model):
    """Something a person should look at: it shows on the staff board and in the inbox."""

    class Kind(models.TextChoices):
        SMS_REFUSED = "sms_refused", "Text refused by the provider"
        DELIVERY_FAILED = "delivery_failed", "Text not delivered"
        SEND_UNCERTAIN = "send_uncertain", "Send outcome under review"
        CANCEL_WORD = "cancel_word", "Replied CANCEL"
        # Tasks: something a patient did, or a series' state, that needs a person's next step.
        SERIES_OFF_PROTOCOL = "series_off_protocol", "Series off protocol"
        PATIENT_CANCELLED = "patient_cancelled", "Cancelled by the patient"
        LATE_MOVE = "late_move", "Moved by the patient at short notice"
        DRIVER_UNCONFIRMED = "driver_unconfirmed", "Driver not confirmed"
        OPTED_OUT = "opted_out", "Opted out with visits ahead"
        NO_SHOW = "no_show", "No-show"

    # At most one open task of these kinds per session: a second cause adds nothing to do.
    SESSION_TASKS = (Kind.PATIENT_CANCELLED, Kind.LATE_MOVE, Kind.DRIVER_UNCONFIRMED, Kind.NO_SHOW)

    # Whose staff act on it: the visit's clinic, or the patient's own where there is no visit (a
    # patient may visit a clinic other than the one that registered them).
    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="staff_flags")
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="staff_flags")
    session = models.ForeignKey(Session, on_delete=models.CASCADE, null=True, blank=True, related_name="staff_flags")
    series = models.ForeignKey(Series, on_delete=models.CASCADE, null=True, blank=True, related_name="staff_flags")
    message = models.ForeignKey(Message, on_delete=models.CASCADE, null=True, blank=True, related_name="staff_flags")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    detail = models.CharField(max_length=300)
    next_step = models.CharField(max_length=200, blank=True, help_text="What staff should do about it.")
    created_at = models.DateTimeField(auto_now_add=True)
    handled_at = models.DateTimeField(null=True, blank=True)
    handled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["created_at"], condition=Q(handled_at=None), name="staff_flag_open_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["series", "kind"],
                condition=Q(handled_at=None, kind="series_off_protocol"),
                name="staff_flag_one_open_gap_per_series",
            ),
            models.UniqueConstraint(
                fields=["session", "kind"],
                condition=Q(
                    handled_at=None, kind__in=["patient_cancelled", "late_move", "driver_unconfirmed", "no_show"]
                ),
                name="staff_flag_one_open_task_per_session",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.detail}"

    def save(self, *args, **kwargs) -> None:
        if self.clinic_id is None:
            owner, pk = (Session, self.session_id) if self.session_id else (Patient, self.patient_id)
            self.clinic_id = owner.objects.values_list("clinic_id", flat=True).get(pk=pk)
        super().save(*args, **kwargs)


class PatientLink(models.Model):
    """A patient's link to one session. Only a hash of the token is kept; each text carries its
    own token, which also lets a stuck send be matched in Twilio's log by the link in its body."""

    token_hash = models.CharField(max_length=64, unique=True)
    # What the link opens: a session's page, or an offer's or a recall's (no session yet).
    session = models.ForeignKey(Session, on_delete=models.CASCADE, null=True, blank=True, related_name="links")
    offer = models.ForeignKey(Offer, on_delete=models.CASCADE, null=True, blank=True, related_name="links")
    recall = models.ForeignKey(Recall, on_delete=models.CASCADE, null=True, blank=True, related_name="links")
    message = models.ForeignKey(Message, on_delete=models.CASCADE, null=True, blank=True, related_name="links")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(session__isnull=False, offer=None, recall=None)
                | Q(session=None, offer__isnull=False, recall=None)
                | Q(session=None, offer=None, recall__isnull=False),
                name="link_has_one_owner",
            )
        ]

    def __str__(self) -> str:
        return f"link to session {self.session_id}"


class OutboxText(models.Model):
    """A text that would have gone to Twilio: without credentials, staff read texts here."""

    message = models.OneToOneField(Message, on_delete=models.CASCADE, related_name="outbox_text")
    to = models.CharField(max_length=16)
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"to {self.to} at {self.created_at:%Y-%m-%d %H:%M}"


class InboundSms(models.Model):
    """A patient's text to us, stored once per Twilio MessageSid before anything acts on it.

    It is the text as received and what the service did and answered; staff see it through the
    `InboxText` of their own clinic, never this row.
    """

    class Command(models.TextChoices):
        CONFIRM = "confirm", "Confirm"
        RESCHEDULE = "reschedule", "Reschedule"
        OPT_OUT = "opt_out", "Opt out"
        OPT_IN = "opt_in", "Opt in"
        HELP = "help", "Help"
        OTHER = "other", "Needs a person"

    sid = models.CharField(max_length=64, unique=True)
    from_number = models.CharField(max_length=32)
    to_number = models.CharField(max_length=32, blank=True)
    body = models.TextField(max_length=1600, blank=True)
    received_at = models.DateTimeField()
    command = models.CharField(max_length=10, choices=Command.choices)
    outcome = models.CharField(max_length=200, blank=True)
    reply = models.CharField(max_length=320, blank=True)

    class Meta:
        ordering = ["-received_at"]
        verbose_name = "inbound text"
        indexes = [models.Index(fields=["from_number", "-received_at"], name="inbound_from_idx")]

    def __str__(self) -> str:
        return f"{self.get_command_display()} from {self.from_number[:4]}… at {self.received_at:%Y-%m-%d %H:%M}"


class InboxText(models.Model):
    """An inbound text as one clinic sees it, beside that clinic's own patient.

    One phone may belong to patients of several clinics (a family; one sender number serving
    many clinics): each clinic gets a row of its own, handles it on its own, and sees only its own
    patients and what was done for them. `patient` is empty when several of the clinic's own
    patients share the number.
    """

    inbound = models.ForeignKey(InboundSms, on_delete=models.CASCADE, related_name="clinic_copies")
    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="inbox_texts")
    patient = models.ForeignKey(Patient, on_delete=models.SET_NULL, null=True, blank=True, related_name="inbox_texts")
    session = models.ForeignKey(Session, on_delete=models.SET_NULL, null=True, blank=True, related_name="inbox_texts")
    outcome = models.CharField(max_length=200, blank=True, help_text="What the service did for this clinic.")
    # What the patient was answered, kept only where the number is this clinic's alone: an answer
    # to a shared number may name another clinic or its patient's visit.
    reply = models.CharField(max_length=320, blank=True)
    needs_staff = models.BooleanField(default=False)
    handled_at = models.DateTimeField(null=True, blank=True)
    handled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-inbound__received_at"]
        verbose_name = "inbox text"
        constraints = [models.UniqueConstraint(fields=["inbound", "clinic"], name="inbox_text_once_per_clinic")]
        indexes = [
            models.Index(fields=["clinic"], condition=Q(needs_staff=True, handled_at=None), name="inbox_text_open_idx")
        ]

    def __str__(self) -> str:
        return f"{self.inbound} for {self.clinic}"


class Heartbeat(models.Model):
    """When a periodic job last ran: the tick writes one, so health can tell a stalled beat or
    worker from a quiet day."""

    name = models.CharField(max_length=40, unique=True)
    at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} at {self.at:%Y-%m-%d %H:%M:%S}"
