"""Configuration in the Django admin. Bookings change only through the services (API and staff
pages), so sessions and series are read-only here: an admin form cannot check booking rules."""

from django.contrib import admin
from django.http import HttpRequest

from .models import (
    AuditEvent,
    Chair,
    Clinic,
    ClosedDate,
    OpeningHours,
    Patient,
    Protocol,
    Series,
    Session,
    SessionMove,
    StaffingBlock,
)


class OpeningHoursInline(admin.TabularInline):
    model = OpeningHours
    extra = 0


class ClosedDateInline(admin.TabularInline):
    model = ClosedDate
    extra = 0


class StaffingBlockInline(admin.TabularInline):
    model = StaffingBlock
    extra = 0


class ChairInline(admin.TabularInline):
    model = Chair
    extra = 0


@admin.register(Clinic)
class ClinicAdmin(admin.ModelAdmin):
    list_display = ["name", "time_zone", "phone", "turnover_buffer_minutes", "max_starts_per_slot"]
    inlines = [OpeningHoursInline, ClosedDateInline, StaffingBlockInline, ChairInline]


@admin.register(Protocol)
class ProtocolAdmin(admin.ModelAdmin):
    list_display = ["name", "patient_name", "clinic", "session_count", "chair_minutes", "min_gap_days", "max_gap_days"]
    list_filter = ["clinic", "is_active"]


@admin.register(Patient)
class PatientAdmin(admin.ModelAdmin):
    list_display = ["last_name", "first_name", "external_id", "clinic", "phone", "language", "sms_opted_out_at"]
    list_filter = ["clinic", "language"]
    search_fields = ["last_name", "first_name", "external_id", "phone", "email"]


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class SessionInline(admin.TabularInline):
    model = Session
    fields = ["number", "chair", "starts_at", "ends_at", "status", "confirmed_at", "driver_confirmed"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Series)
class SeriesAdmin(ReadOnlyAdmin):
    list_display = ["patient", "protocol", "clinic", "status", "created_at"]
    list_filter = ["clinic", "status"]
    list_select_related = ["patient", "protocol", "clinic"]
    inlines = [SessionInline]


class SessionMoveInline(admin.TabularInline):
    model = SessionMove
    readonly_fields = [
        "from_starts_at",
        "from_chair",
        "to_starts_at",
        "to_chair",
        "reason",
        "via",
        "moved_by",
        "moved_at",
    ]
    fields = readonly_fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Session)
class SessionAdmin(ReadOnlyAdmin):
    list_display = ["starts_at", "patient", "number", "chair", "clinic", "status"]
    list_filter = ["clinic", "status"]
    list_select_related = ["patient", "chair", "clinic"]
    date_hierarchy = "starts_at"
    inlines = [SessionMoveInline]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["at", "patient", "action", "via", "actor", "detail"]
    list_filter = ["action", "via"]
    list_select_related = ["patient", "actor"]
    date_hierarchy = "at"
