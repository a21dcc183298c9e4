"""Writes of several rows of one model in one statement, an array per column, on PostgreSQL.

Django's bulk_create writes this way too, but first prepares every value through its field, and
its bulk_update writes a CASE per field and row. On the booking path (a booking plans some 30
messages, a re-flow moves several sessions) that preparation cost more than the database's work.
These take the values as the instances hold them, so callers set plain values the driver writes
as they are (ints, strings, aware datetimes, None). Elsewhere than PostgreSQL they fall back on
Django's own.
"""

from collections.abc import Sequence
from functools import cache

from django.db import connection
from django.db.models import Field, Model
from django.utils import timezone


def rows_insert(rows: Sequence[Model]) -> None:
    """bulk_create(rows, ignore_conflicts=True): rows that would break a unique key are left out."""
    _insert(rows, returning=False)


def rows_create(rows: Sequence[Model]) -> None:
    """bulk_create(rows): each row gets its id; one that breaks a constraint fails them all."""
    _insert(rows, returning=True)


def _insert(rows: Sequence[Model], *, returning: bool) -> None:
    if not rows:
        return
    model = type(rows[0])
    if connection.vendor != "postgresql" or len(rows) < 2:
        model._default_manager.bulk_create(rows, ignore_conflicts=not returning)
        return
    fields = [field for field in model._meta.concrete_fields if not field.primary_key]
    values = _values(rows, fields, adding=True)
    with connection.cursor() as cursor:
        cursor.execute(_insert_sql(model, returning=returning), values)
        if not returning:
            return
        # In the order given, as Django's own bulk_create counts on.
        ids = [found for (found,) in cursor.fetchall()]
    for row, found in zip(rows, ids, strict=True):
        row.pk = found
        row._state.adding, row._state.db = False, connection.alias


def rows_update(rows: Sequence[Model], fields: Sequence[str]) -> None:
    """Save `fields` of each row (as save(update_fields=fields) would, one statement for all)."""
    if not rows:
        return
    model = type(rows[0])
    if connection.vendor != "postgresql":
        for row in rows:
            row.save(update_fields=fields)
        return
    chosen = [model._meta.get_field(name) for name in fields]
    values = _values(rows, [model._meta.pk, *chosen], adding=False)
    with connection.cursor() as cursor:
        cursor.execute(_update_sql(model, tuple(fields)), values)


def _values(rows: Sequence[Model], fields: list[Field], *, adding: bool) -> list[list]:
    """A list per field of its value in each row; the timestamps Django sets on save, set now."""
    now = timezone.now()
    columns = []
    for field in fields:
        if getattr(field, "auto_now", False) or (adding and getattr(field, "auto_now_add", False)):
            for row in rows:
                setattr(row, field.attname, now)
        columns.append([getattr(row, field.attname) for row in rows])
    return columns


def _arrays(fields: Sequence[Field]) -> str:
    # As Django's own: no length on the array's type, so that a cast cannot cut a value short.
    # %b sends each array in the driver's binary format: in text, every string is escaped first.
    return ", ".join(f"%b::{field.db_type(connection).split('(')[0]}[]" for field in fields)


@cache
def _insert_sql(model: type[Model], *, returning: bool) -> str:
    quote = connection.ops.quote_name
    fields = [field for field in model._meta.concrete_fields if not field.primary_key]
    columns = ", ".join(quote(field.column) for field in fields)
    tail = f"RETURNING {quote(model._meta.pk.column)}" if returning else "ON CONFLICT DO NOTHING"
    return f"INSERT INTO {quote(model._meta.db_table)} ({columns}) SELECT * FROM UNNEST({_arrays(fields)}) {tail}"


@cache
def _update_sql(model: type[Model], names: tuple[str, ...]) -> str:
    quote = connection.ops.quote_name
    pk = model._meta.pk
    fields = [model._meta.get_field(name) for name in names]
    columns = [quote(field.column) for field in fields]
    assignments = ", ".join(f"{column} = given.{column}" for column in columns)
    return (
        f"UPDATE {quote(model._meta.db_table)} AS saved SET {assignments} "
        f"FROM UNNEST({_arrays([pk, *fields])}) AS given({quote(pk.column)}, {', '.join(columns)}) "
        f"WHERE saved.{quote(pk.column)} = given.{quote(pk.column)}"
    )
