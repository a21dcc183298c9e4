"""Patient links `/r/<token>`: a random token (72 bits, 12 URL-safe characters) per text, kept
only as a SHA-256 hash. It points at the session row, so after a move it shows the new time."""

import functools
import hashlib
import re
import secrets
from collections.abc import Callable

from django.db import connection
from django.db.models import Model
from django.db.models.expressions import Col

from sessions.models import Clinic, Offer, Patient, Protocol, Recall, Series, Session, WaitlistEntry

from .models import Message, PatientLink

_TOKEN = re.compile(r"(/r/)[A-Za-z0-9_-]{10,}")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def link_create(
    *, session: Session | None = None, offer: Offer | None = None, recall: Recall | None = None,
    message: Message | None = None,
) -> str:  # fmt: skip
    """A new token for the patient's page of a session, an offer or a recall (exactly one)."""
    token = secrets.token_urlsafe(9)
    PatientLink.objects.create(token_hash=token_hash(token), session=session, offer=offer, recall=recall,
                               message=message)  # fmt: skip
    return token


def link_owner(*, token: str) -> Offer | Recall | None:
    """The offer or the recall a token opens (the link page asks when it opens no session)."""
    if not 10 <= len(token) <= 64:
        return None
    link = (
        PatientLink.objects.filter(token_hash=token_hash(token), session=None)
        .select_related("offer__clinic", "offer__patient", "offer__opening", "offer__entry__protocol",
                        "recall__clinic", "recall__patient", "recall__protocol")
        .first()
    )  # fmt: skip
    return None if link is None else link.offer or link.recall


def link_session(*, token: str) -> Session | None:
    """The session a token opens, with its clinic, patient, series and protocol loaded."""
    if not 10 <= len(token) <= 64:
        return None
    sql, shapes = _link_statement()
    with connection.cursor() as cursor:
        cursor.execute(sql, [token_hash(token)])
        row = cursor.fetchone()
    if row is None:
        return None
    session, clinic, patient, series, protocol = _instances(row, shapes)
    session.clinic, session.patient, session.series, series.protocol = clinic, patient, series, protocol
    session.waitlist_waiting = bool(row[-1])
    if patient.clinic_id == clinic.pk:
        patient.clinic = clinic
    return session


# The busiest page's one query, written out once per process. Compiling it through the ORM took
# more of each request than running it; as fixed text PostgreSQL also keeps its plan prepared.
_JOINED: tuple[tuple[type[Model], str, str], ...] = (
    (Session, "s", "FROM {link} l JOIN {table} s ON s.id = l.session_id"),
    (Clinic, "c", "JOIN {table} c ON c.id = s.clinic_id"),
    (Patient, "p", "JOIN {table} p ON p.id = s.patient_id"),
    (Series, "r", "JOIN {table} r ON r.id = s.series_id"),
    (Protocol, "o", "JOIN {table} o ON o.id = r.protocol_id"),
)


_Shape = tuple[type[Model], list[str], list[tuple[int, Callable, Col]]]


@functools.cache
def _link_statement() -> tuple[str, list[_Shape]]:
    """The SQL, and per model its field names and the converters some columns need (SQLite hands
    back timestamps as text; a custom field may have its own)."""
    quote = connection.ops.quote_name
    columns, joins, shapes = [], [], []
    for model, alias, join in _JOINED:
        fields = model._meta.concrete_fields
        columns += [f"{alias}.{quote(field.column)}" for field in fields]
        joins.append(join.format(link=quote(PatientLink._meta.db_table), table=quote(model._meta.db_table)))
        converters = []
        for n, field in enumerate(fields):
            column = field.get_col(alias)
            for convert in connection.ops.get_db_converters(column) + field.get_db_converters(connection):
                converters.append((n, convert, column))
        shapes.append((model, [field.attname for field in fields], converters))
    # Whether the patient already waits for an earlier time for it (the page offers to join
    # otherwise): one index probe here rather than a third query on the busiest page.
    waiting = (
        f"EXISTS (SELECT 1 FROM {quote(WaitlistEntry._meta.db_table)} w WHERE w.session_id = s.id "
        f"AND w.status = '{WaitlistEntry.Status.WAITING}')"
    )
    sql = f"SELECT {', '.join(columns)}, {waiting} {' '.join(joins)} WHERE l.token_hash = %s"
    return sql, shapes


def _instances(row: tuple, shapes: list[_Shape]) -> list[Model]:
    instances, start = [], 0
    for model, names, converters in shapes:
        values = list(row[start : start + len(names)])
        for n, convert, column in converters:
            values[n] = convert(values[n], column, connection)
        instances.append(model.from_db(connection.alias, names, values))
        start += len(names)
    return instances


def message_token_hashes(*, message: Message) -> set[str]:
    return set(PatientLink.objects.filter(message=message).values_list("token_hash", flat=True))


def redact(text: str) -> str:
    return _TOKEN.sub(r"\1…", text)
