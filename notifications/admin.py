"""Reminder rules and wording are configured here; messages, flags and the outbox are read-only
records (a message changes only through the pipeline). Each page is scoped to the user's clinics
as the booking admin's are (sessions/admin.py)."""

from django.contrib import admin
from django.http import HttpRequest

from sessions.admin import ClinicScopedAdmin, ReadOnly, ReadOnlyAdmin

from .models import (
    ContactStatus,
    InboundSms,
    InboxText,
    Message,
    MessageTemplate,
    OutboxText,
    ReminderRule,
    StaffFlag,
)


@admin.register(ReminderRule)
class ReminderRuleAdmin(ClinicScopedAdmin):
    list_display = ["__str__", "clinic", "protocol", "channel", "offset_minutes", "is_active"]
    list_filter = ["clinic", "channel", "is_active"]


@admin.register(MessageTemplate)
class MessageTemplateAdmin(ClinicScopedAdmin):
    list_display = ["clinic", "purpose", "channel", "language", "subject"]
    list_filter = ["clinic", "purpose", "channel", "language"]


@admin.register(Message)
class MessageAdmin(ReadOnlyAdmin):
    clinic_path = "clinic"
    list_display = ["due_at", "patient", "purpose", "channel", "status", "reason", "attempts", "sent_at"]
    list_filter = ["status", "channel", "purpose"]
    list_select_related = ["patient"]
    raw_id_fields = ["session", "offer", "recall"]
    date_hierarchy = "due_at"
    search_fields = ["provider_id", "recipient"]


@admin.register(StaffFlag)
class StaffFlagAdmin(ClinicScopedAdmin):
    list_display = ["created_at", "patient", "kind", "detail", "handled_at"]
    list_filter = ["kind"]
    list_select_related = ["patient"]
    readonly_fields = ["clinic", "patient", "session", "message", "kind", "detail", "created_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(OutboxText)
class OutboxTextAdmin(ReadOnlyAdmin):
    clinic_path = "message__clinic"
    list_display = ["created_at", "to", "body"]


@admin.register(ContactStatus)
class ContactStatusAdmin(ReadOnlyAdmin):
    clinic_path = "patient__clinic"
    list_display = ["patient", "phone", "sms_problem", "sms_problem_at"]


@admin.register(InboxText)
class InboxTextAdmin(ReadOnlyAdmin):
    """Patients' texts as each clinic's staff see them, beside that clinic's own patient."""

    list_display = ["received_at", "clinic", "patient", "command", "outcome", "needs_staff", "handled_at"]
    list_filter = ["clinic", "inbound__command", "needs_staff"]
    list_select_related = ["inbound", "clinic", "patient"]

    @admin.display(ordering="inbound__received_at")
    def received_at(self, text: InboxText):
        return text.inbound.received_at

    @admin.display(ordering="inbound__command")
    def command(self, text: InboxText) -> str:
        return text.inbound.get_command_display()


@admin.register(InboundSms)
class InboundSmsAdmin(ReadOnly, admin.ModelAdmin):
    """Every text as received, whoever it was for: no clinic of its own, so for users of every
    clinic only (sessions.admin.unscoped_admins_restrict)."""

    list_display = ["received_at", "command", "outcome"]
    list_filter = ["command"]
