"""Which clinics a staff user may see and change: the one rule behind the staff pages and the API.

A user in one or more groups named "clinic:<id>" (e.g. "clinic:3") works in those clinics only;
a user in no such group works in every clinic (a single-clinic install needs no groups). A
malformed name such as "clinic:main" still limits the user but grants nothing, so a typo narrows
access instead of widening it.
"""

from typing import TypeVar

from django.db.models import Model, QuerySet

from .models import Clinic

CLINIC_GROUP_PREFIX = "clinic:"
M = TypeVar("M", bound=Model)


def clinic_ids_for(user) -> frozenset[int] | None:
    """The ids of the clinics `user` is limited to; None when the user is not limited."""
    # Cached on the user object for the request, as Django's ModelBackend caches permissions.
    if not hasattr(user, "_clinic_ids"):
        suffixes = [
            name[len(CLINIC_GROUP_PREFIX) :].strip()
            for name in user.groups.filter(name__startswith=CLINIC_GROUP_PREFIX).values_list("name", flat=True)
        ]
        user._clinic_ids = frozenset(int(s) for s in suffixes if s.isdigit() and len(s) < 18) if suffixes else None
    return user._clinic_ids


def clinics_for(user) -> QuerySet[Clinic]:
    return within_clinics(Clinic.objects.all(), user)


def within_clinics(queryset: QuerySet[M], user, *, path: str | None = None) -> QuerySet[M]:
    """`queryset` narrowed to the rows of `user`'s clinics. `path` leads from the model to its
    clinic; by default the clinic itself, or the model's `clinic` field."""
    ids = clinic_ids_for(user)
    if ids is None:
        return queryset
    if path is None:
        path = "pk" if queryset.model is Clinic else "clinic"
    return queryset.filter(**{f"{path}__in": ids})


def users_within_clinics(queryset: QuerySet[M], user) -> QuerySet[M]:
    """`queryset` of users narrowed to those who work in one of `user`'s clinics: a user limited to
    some clinics is not shown who works elsewhere."""
    ids = clinic_ids_for(user)
    if ids is None:
        return queryset
    return queryset.filter(groups__name__in=[f"{CLINIC_GROUP_PREFIX}{pk}" for pk in ids]).distinct()
