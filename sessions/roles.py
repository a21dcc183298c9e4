"""The staff roles of the spec as Django groups, kept in step after every migrate.

Each app owns the permissions it grants: `roles_sync` sets a group's permissions of one app
label and leaves every other app's alone.
"""

from typing import Any

from django.contrib.auth.models import Group, Permission

SCHEDULER, NURSE, CLINIC_ADMIN = "Scheduler", "Nurse", "Clinic admin"

_CONFIG = ("clinic", "chair", "protocol", "openinghours", "closeddate", "staffingblock")
_VIEW = [f"view_{m}" for m in (*_CONFIG, "patient", "series", "session")]

_WAITLIST = [
    "view_waitlistentry", "add_waitlistentry", "change_waitlistentry", "view_recall", "change_recall", "view_offer",
    "add_offer",
]  # fmt: skip

BOOKING_ROLES: dict[str, list[str]] = {
    SCHEDULER: _VIEW
    + ["add_patient", "change_patient", "add_series", "move_session", "cancel_session", "confirm_session"]
    + ["view_reports"]
    + _WAITLIST,
    NURSE: _VIEW + ["mark_attendance", "confirm_session"],
    CLINIC_ADMIN: _VIEW
    + [f"{action}_{model}" for model in (*_CONFIG, "patient") for action in ("add", "change")]
    + ["add_series", "move_session", "cancel_session", "confirm_session", "mark_attendance", "view_reports"]
    + _WAITLIST,
}


def roles_sync(app_label: str, roles: dict[str, list[str]]) -> None:
    for name, codenames in roles.items():
        group, _ = Group.objects.get_or_create(name=name)
        ours = Permission.objects.filter(content_type__app_label=app_label)
        group.permissions.remove(*ours.exclude(codename__in=codenames))
        group.permissions.add(*ours.filter(codename__in=codenames))


def booking_roles_sync(**kwargs: Any) -> None:
    roles_sync("booking", BOOKING_ROLES)
