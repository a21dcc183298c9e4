"""Patient links `/r/<token>`: a random token (72 bits, 12 URL-safe characters) per text, kept
only as a SHA-256 hash. It points at the session row, so after a move it shows the new time."""

import hashlib
import re
import secrets

from sessions.models import Session

from .models import Message, PatientLink

_TOKEN = re.compile(r"(/r/)[A-Za-z0-9_-]{10,}")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def link_create(*, session: Session, message: Message | None = None) -> str:
    token = secrets.token_urlsafe(9)
    PatientLink.objects.create(token_hash=token_hash(token), session=session, message=message)
    return token


def link_session(*, token: str, related: tuple[str, ...] = ()) -> Session | None:
    """The session a token opens, with `related` (paths from the session) loaded in the same query."""
    if not 10 <= len(token) <= 64:
        return None
    # The hash is unique, so no ordering is needed to pick one row (it would cost a sort in the plan
    # and time compiling the query on the busiest page).
    found = Session.objects.select_related(*related).filter(links__token_hash=token_hash(token)).order_by()[:1]
    return next(iter(found), None)


def message_token_hashes(*, message: Message) -> set[str]:
    return set(PatientLink.objects.filter(message=message).values_list("token_hash", flat=True))


def redact(text: str) -> str:
    return _TOKEN.sub(r"\1…", text)
