"""The staff roles of the spec as Django groups, kept in step after every migrate."""

from typing import Any

from django.contrib.auth.models import Group, Permission

_VIEW = [
    f"booking.view_{m}"
    for m in (
        "clinic",
        "chair",
        "protocol",
        "patient",
        "series",
        "session",
        "openinghours",
        "closeddate",
        "staffingblock",
    )
]

ROLES: dict[str, list[str]] = {
    "Scheduler": _VIEW
    + [
        "booking.add_patient",
        "booking.change_patient",
        "booking.add_series",
        "booking.move_session",
        "booking.cancel_session",
        "booking.confirm_session",
    ],
    "Nurse": _VIEW + ["booking.mark_attendance", "booking.confirm_session"],
    "Clinic admin": _VIEW
    + [
        f"booking.{action}_{model}"
        for model in ("clinic", "chair", "protocol", "patient", "openinghours", "closeddate", "staffingblock")
        for action in ("add", "change")
    ]
    + [
        "booking.add_series",
        "booking.move_session",
        "booking.cancel_session",
        "booking.confirm_session",
        "booking.mark_attendance",
    ],
}


def roles_sync(**kwargs: Any) -> None:
    for name, codenames in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        wanted = set()
        for dotted in codenames:
            app_label, codename = dotted.split(".")
            wanted |= set(Permission.objects.filter(content_type__app_label=app_label, codename=codename))
        group.permissions.set(wanted)
