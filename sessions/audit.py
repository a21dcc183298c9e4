"""Who changed a clinic's configuration or a patient record, when, and through which surface.

Booking actions are recorded by `services.py`, which knows what they mean. Every other change a
person makes (a clinic and its hours, closed dates, staffing and chairs, protocols, patients, and
what other apps `track`: reminder rules, wording) is recorded here from the model signals, so no
surface can forget: the admin, the API and the staff pages all save through the ORM. The
middleware tells the receivers who is asking and through which surface.

A write outside any request (a management command, the demo seed, a worker) is recorded as
"system": an auditor needs those as much as a person's. A raw save (loaddata) is skipped, as it
restores rows rather than changing them; migrations use historical models, which these receivers
never see. `bulk_create` and `QuerySet.update` send no signals, so code that writes tracked rows
saves them one by one.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import models
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from .models import AuditEvent, Clinic, Patient
from .services import audit_record

# Each surface, by the start of its path.
_SURFACES = {
    "/admin/": AuditEvent.Via.ADMIN,
    "/api/": AuditEvent.Via.API,
    "/staff/": AuditEvent.Via.STAFF,
    "/twilio/": AuditEvent.Via.SMS,
    "/r/": AuditEvent.Via.LINK,
}


@dataclass(frozen=True)
class _Channel:
    via: str
    # The request rather than its user: DRF authenticates a token inside the view, after every
    # middleware has run, and sets the user on this request then.
    request: HttpRequest | None = None

    @property
    def actor(self):
        return getattr(self.request, "user", None)


# Outside any request: a management command, the demo seed, a worker.
_SYSTEM = _Channel(via=AuditEvent.Via.SYSTEM)
_channel: ContextVar[_Channel | None] = ContextVar("audit_channel", default=None)
_untracked: ContextVar[bool] = ContextVar("audit_untracked", default=False)


class AuditChannelMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        via = next((via for start, via in _SURFACES.items() if request.path_info.startswith(start)), None)
        if via is None:
            return self.get_response(request)
        token = _channel.set(_Channel(via=via, request=request))
        try:
            return self.get_response(request)
        finally:
            _channel.reset(token)


@contextmanager
def untracked() -> Iterator[None]:
    """For a write whose caller records a more telling event itself (a patient's STOP by text)."""
    token = _untracked.set(True)
    try:
        yield
    finally:
        _untracked.reset(token)


def track(model: type[models.Model], *, ignore: frozenset[str] = frozenset()) -> None:
    """Record every create, change and delete of `model`: a Clinic, a model with a `clinic`, or
    one of no clinic (a staff user), whose events only users of every clinic see. A change to
    only the `ignore`d fields is not one (a user's last sign-in)."""
    uid = f"audit:{model._meta.label_lower}"
    _ignored[model] = ignore
    pre_save.connect(_changes_note, sender=model, dispatch_uid=uid)
    post_save.connect(_saved, sender=model, dispatch_uid=uid)
    post_delete.connect(_deleted, sender=model, dispatch_uid=uid)


def track_staff_access() -> None:
    """Who may work in which clinic is set by a user's groups (`clinic:<id>` and the roles) and
    flags: each change to them is recorded too, as a change to the user."""
    user_model = get_user_model()
    track(user_model, ignore=frozenset({"last_login"}))
    track(Group)
    m2m_changed.connect(_groups_changed, sender=user_model.groups.through, dispatch_uid="audit:user-groups")


_ignored: dict[type[models.Model], frozenset[str]] = {}


def _changes_note(sender: type[models.Model], instance: models.Model, raw: bool, update_fields, **kwargs) -> None:
    if raw or instance._state.adding or _untracked.get():
        return
    fields = [
        field
        for field in sender._meta.concrete_fields
        if not field.primary_key
        and field.name not in _ignored.get(sender, ())
        and (update_fields is None or {field.name, field.attname} & update_fields)
    ]
    stored = sender._base_manager.filter(pk=instance.pk).values(*(field.attname for field in fields)).first() or {}
    instance._audit_changed = [f.name for f in fields if stored.get(f.attname) != getattr(instance, f.attname)]


def _saved(sender: type[models.Model], instance: models.Model, created: bool, raw: bool, **kwargs) -> None:
    if raw or _untracked.get():
        return
    changed = instance.__dict__.pop("_audit_changed", [])
    if created or changed:
        _record(instance, "created" if created else "changed", detail=", ".join(changed))


def _deleted(sender: type[models.Model], instance: models.Model, origin, **kwargs) -> None:
    # Rows that go with a deleted parent (a clinic's chairs) are part of the parent's record.
    cascaded = origin is not instance and not (isinstance(origin, models.QuerySet) and origin.model is sender)
    if cascaded or _untracked.get():
        return
    _record(instance, "deleted")


def _record(instance: models.Model, action: str, *, detail: str = "") -> None:
    channel = _channel.get() or _SYSTEM
    gone = action == "deleted"
    # A row that no longer exists cannot be referred to: a deleted clinic or patient is named by
    # its type and id alone.
    if isinstance(instance, Clinic):
        clinic = None if gone else instance.pk
    else:
        clinic = getattr(instance, "clinic_id", None)
    audit_record(
        action=action,
        via=channel.via,
        actor=channel.actor,
        at=timezone.now(),
        clinic=clinic,
        patient=instance.pk if isinstance(instance, Patient) and not gone else None,
        object_type=instance._meta.label_lower,
        object_id=instance.pk,
        detail=detail,
    )


def _groups_changed(sender, instance: models.Model, action: str, reverse: bool, pk_set, **kwargs) -> None:
    if action not in ("post_add", "post_remove") or not pk_set or _untracked.get():
        return
    user_model = get_user_model()
    verb = "added to" if action == "post_add" else "removed from"
    if reverse:  # group.user_set.add(...): one event per user
        for user in user_model.objects.filter(pk__in=pk_set):
            _record(user, "groups changed", detail=f"{verb} {instance}")
        return
    names = ", ".join(sorted(Group.objects.filter(pk__in=pk_set).values_list("name", flat=True)))
    _record(instance, "groups changed", detail=f"{verb} {names}")
