"""Reminder rules and wording are configured here; messages, flags and the outbox are read-only
records (a message changes only through the pipeline)."""

from django.contrib import admin
from django.http import HttpRequest

from sessions.admin import ReadOnlyAdmin

from .models import ContactStatus, InboundSms, Message, MessageTemplate, OutboxText, ReminderRule, StaffFlag


@admin.register(ReminderRule)
class ReminderRuleAdmin(admin.ModelAdmin):
    list_display = ["__str__", "clinic", "protocol", "channel", "offset_minutes", "is_active"]
    list_filter = ["clinic", "channel", "is_active"]


@admin.register(MessageTemplate)
class MessageTemplateAdmin(admin.ModelAdmin):
    list_display = ["clinic", "purpose", "channel", "language", "subject"]
    list_filter = ["clinic", "purpose", "channel", "language"]


@admin.register(Message)
class MessageAdmin(ReadOnlyAdmin):
    list_display = ["due_at", "patient", "purpose", "channel", "status", "reason", "attempts", "sent_at"]
    list_filter = ["status", "channel", "purpose"]
    list_select_related = ["patient"]
    date_hierarchy = "due_at"
    search_fields = ["provider_id", "recipient"]


@admin.register(StaffFlag)
class StaffFlagAdmin(admin.ModelAdmin):
    list_display = ["created_at", "patient", "kind", "detail", "handled_at"]
    list_filter = ["kind"]
    list_select_related = ["patient"]
    readonly_fields = ["patient", "session", "message", "kind", "detail", "created_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(OutboxText)
class OutboxTextAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "to", "body"]


@admin.register(ContactStatus)
class ContactStatusAdmin(ReadOnlyAdmin):
    list_display = ["patient", "phone", "sms_problem", "sms_problem_at"]


@admin.register(InboundSms)
class InboundSmsAdmin(ReadOnlyAdmin):
    list_display = ["received_at", "patient", "command", "outcome", "needs_staff", "handled_at"]
    list_filter = ["command", "needs_staff"]
    list_select_related = ["patient"]
