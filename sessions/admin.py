"""Configuration in the Django admin. Bookings change only through the services (API and staff
pages), so sessions and series are read-only here: an admin form cannot check booking rules.

A user limited to some clinics (sessions/access.py) finds only their clinics' rows here, as on
the staff pages and in the API: every admin page and inline of clinic data, in this app and in
notifications/, is `ClinicScoped`; every other page is for users of every clinic only.
"""

from typing import Any

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.sites import AdminSite
from django.contrib.admin.utils import get_fields_from_path
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth import get_user_model
from django.db.models import ForeignKey, Model, QuerySet
from django.forms import ModelChoiceField
from django.http import Http404, HttpRequest

from .access import clinic_ids_for, users_within_clinics, within_clinics
from .models import (
    AuditEvent,
    Chair,
    Clinic,
    ClosedDate,
    Offer,
    Opening,
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


class QueryCheckedChangeList(ChangeList):
    """A list whose search and filter values are checked before they reach the database. A NUL
    byte, which no admin page offers and PostgreSQL's text cannot hold, is a bad lookup like any
    other: the admin's own "?e=1" answer, not a server error when the query runs."""

    def get_queryset(self, request: HttpRequest, exclude_parameters: list[str] | None = None) -> QuerySet:
        if any("\x00" in value for values in request.GET.lists() for value in values[1]):
            raise IncorrectLookupParameters("a NUL byte in the query")
        return super().get_queryset(request, exclude_parameters)


class QueryChecked:
    """Every admin list, the clinics' and the others' (see `unscoped_admins_restrict`)."""

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return QueryCheckedChangeList


class ClinicScoped:
    """Rows, choices and filters of an admin page or inline narrowed to the user's clinics.
    `clinic_path` leads from the model to its clinic, as `within_clinics` takes it; by default
    the model's `clinic` (a clinic's own id, for the clinics themselves)."""

    clinic_path: str | None = None

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return within_clinics(super().get_queryset(request), request.user, path=self.clinic_path)

    def formfield_for_foreignkey(self, db_field: ForeignKey, request: HttpRequest, **kwargs: Any) -> ModelChoiceField:
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        field.queryset = self._choices_within_clinics(field.queryset, request.user)
        return field

    def _choices_within_clinics(self, queryset: QuerySet, user) -> QuerySet:
        model = queryset.model
        if model is get_user_model():
            return users_within_clinics(queryset, user)
        if not self.admin_site.is_registered(model):
            # A model edited only inline (chairs, opening hours) has a `clinic` of its own.
            return within_clinics(queryset, user)
        model_admin = self.admin_site.get_model_admin(model)
        if isinstance(model_admin, ClinicScoped):
            return within_clinics(queryset, user, path=model_admin.clinic_path)
        # No clinic's data (a text as it arrived, before it reached each clinic's inbox).
        return queryset if clinic_ids_for(user) is None else queryset.none()


class ClinicScopedAdmin(QueryChecked, ClinicScoped, admin.ModelAdmin):
    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> Model:
        found = super().get_object(request, object_id, from_field)
        if found is None:
            # Another clinic's row answers as one that does not exist, as in the API.
            raise Http404
        return found

    def get_list_filter(self, request: HttpRequest) -> list:
        # Django's filter on a relation offers every related row, other clinics' included.
        return [
            (name, admin.RelatedOnlyFieldListFilter)
            if isinstance(name, str) and get_fields_from_path(self.model, name)[-1].is_relation
            else name
            for name in super().get_list_filter(request)
        ]


class ClinicScopedInline(ClinicScoped, admin.TabularInline):
    pass


class UnlimitedOnly(QueryChecked):
    """An admin page of no clinic's data (users and groups, API tokens, beat's schedules, sign-in
    records) is closed to a user limited to some clinics: there they could add themselves to
    another clinic's group, or read who works elsewhere."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return super().has_module_permission(request) and _unlimited(request)

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return super().has_view_permission(request, obj) and _unlimited(request)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return super().has_add_permission(request, *args) and _unlimited(request)

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return super().has_change_permission(request, obj) and _unlimited(request)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return super().has_delete_permission(request, obj) and _unlimited(request)


def _unlimited(request: HttpRequest) -> bool:
    return clinic_ids_for(request.user) is None


def unscoped_admins_restrict(site: AdminSite) -> None:
    """Makes every admin page that is not `ClinicScoped` `UnlimitedOnly`, whichever app registered
    it, so a page added later is closed to limited users until it says where its clinic is."""
    for model, model_admin in list(site._registry.items()):
        if not isinstance(model_admin, ClinicScoped | UnlimitedOnly):
            site.unregister(model)
            site.register(model, type(type(model_admin).__name__, (UnlimitedOnly, type(model_admin)), {}))


class OpeningHoursInline(ClinicScopedInline):
    model = OpeningHours
    extra = 0


class ClosedDateInline(ClinicScopedInline):
    model = ClosedDate
    extra = 0


class StaffingBlockInline(ClinicScopedInline):
    model = StaffingBlock
    extra = 0


class ChairInline(ClinicScopedInline):
    model = Chair
    extra = 0


@admin.register(Clinic)
class ClinicAdmin(ClinicScopedAdmin):
    list_display = ["name", "time_zone", "phone", "turnover_buffer_minutes", "max_starts_per_slot"]
    inlines = [OpeningHoursInline, ClosedDateInline, StaffingBlockInline, ChairInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A new clinic would lie outside a limited user's clinics the moment it existed.
        return super().has_add_permission(request) and _unlimited(request)


@admin.register(Protocol)
class ProtocolAdmin(ClinicScopedAdmin):
    list_display = ["name", "patient_name", "clinic", "session_count", "chair_minutes", "min_gap_days", "max_gap_days"]
    list_filter = ["clinic", "is_active"]


@admin.register(Patient)
class PatientAdmin(ClinicScopedAdmin):
    list_display = ["last_name", "first_name", "external_id", "clinic", "phone", "language", "sms_opted_out_at"]
    list_filter = ["clinic", "language"]
    search_fields = ["last_name", "first_name", "external_id", "phone", "email"]


class ReadOnly:
    """Records, not configuration: they change only through the services."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class ReadOnlyAdmin(ReadOnly, ClinicScopedAdmin):
    pass


class SessionInline(ClinicScopedInline):
    model = Session
    fields = [
        "number", "chair", "starts_at", "ends_at", "status", "confirmed_at", "driver_confirmed", "chair_in_at",
        "chair_out_at", "makeup_for",
    ]  # fmt: skip
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Series)
class SeriesAdmin(ReadOnlyAdmin):
    list_display = ["patient", "protocol", "clinic", "status", "created_at", "override_reason"]
    list_filter = ["clinic", "status"]
    list_select_related = ["patient", "protocol", "clinic"]
    inlines = [SessionInline]
    exclude = ["weekday_mask"]
    readonly_fields = ["kept_weekdays"]

    @admin.display(description="weekdays")
    def kept_weekdays(self, series: Series) -> str:
        return series.weekday_names or "any day"


class SessionMoveInline(ClinicScopedInline):
    model = SessionMove
    clinic_path = "session__clinic"
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


@admin.register(WaitlistEntry)
class WaitlistEntryAdmin(ReadOnlyAdmin):
    """Kept by the staff pages and the API (sessions/waitlist.py), read here."""

    list_display = ["patient", "protocol", "session", "clinic", "earliest", "latest", "needed_by", "status"]
    list_filter = ["clinic", "status"]
    list_select_related = ["patient", "protocol", "session", "clinic"]


@admin.register(Recall)
class RecallAdmin(ReadOnlyAdmin):
    """Made when a series completes and answered on the staff pages or the API (sessions/recalls.py)."""

    list_display = ["patient", "protocol", "clinic", "due_on", "status", "snoozed_until"]
    list_filter = ["clinic", "status"]
    list_select_related = ["patient", "protocol", "clinic"]


@admin.register(Opening)
class OpeningAdmin(ReadOnlyAdmin):
    """Chair time freed ahead, recorded on a cancel or a move and offered by the tick (notifications/offers.py)."""

    list_display = ["starts_at", "clinic", "chair", "freed_by", "reason", "status", "filled_series", "closed_at"]
    list_filter = ["clinic", "status"]
    list_select_related = ["clinic", "chair"]
    raw_id_fields = ["freed_by", "filled_series"]


@admin.register(Offer)
class OfferAdmin(ReadOnlyAdmin):
    """A freed time offered to a waiting patient; answered on the patient's link."""

    list_display = ["created_at", "patient", "clinic", "opening", "status", "expires_at", "created_by", "closed_at"]
    list_filter = ["clinic", "status"]
    list_select_related = ["patient", "clinic", "opening__clinic", "created_by"]
    raw_id_fields = ["opening", "entry", "patient"]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["at", "clinic", "patient", "action", "object_type", "object_id", "via", "actor", "detail"]
    list_filter = ["action", "via", "object_type"]
    list_select_related = ["clinic", "patient", "actor"]
    date_hierarchy = "at"
