from typing import Any

from sessions.roles import CLINIC_ADMIN, NURSE, SCHEDULER, roles_sync

_CONFIG = ("reminderrule", "messagetemplate")
_VIEW = [
    "view_message",
    "view_staffflag",
    "view_outboxtext",
    "view_contactstatus",
    "view_inboxtext",
    *(f"view_{m}" for m in _CONFIG),
]

NOTIFICATION_ROLES: dict[str, list[str]] = {
    SCHEDULER: [*_VIEW, "change_staffflag"],
    NURSE: ["view_message", "view_staffflag"],
    CLINIC_ADMIN: [*_VIEW, "change_staffflag", *(f"{a}_{m}" for m in _CONFIG for a in ("add", "change", "delete"))],
}


def notification_roles_sync(**kwargs: Any) -> None:
    roles_sync("notifications", NOTIFICATION_ROLES)
