"""An SMTP server on loopback that accepts every message and keeps it, parsed, for assertions.

It speaks real SMTP (aiosmtpd), so Django's SMTP email backend runs unchanged against it: no
TLS, no AUTH, any sender and recipient.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from types import TracebackType
from typing import Self, cast

from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass(frozen=True)
class ReceivedEmail:
    mail_from: str
    rcpt_tos: tuple[str, ...]  # the envelope: Bcc recipients appear only here
    message: EmailMessage
    received_at: datetime


class SmtpSink:
    """Use as a context manager or call start()/stop(); point EMAIL_HOST/EMAIL_PORT at host/port."""

    host = "127.0.0.1"

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._received: list[ReceivedEmail] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self._sessions: set[SMTP] = set()
        self._port: int | None = None

    def start(self) -> Self:
        if self._loop is not None:
            raise RuntimeError("SmtpSink is already running")
        # Binding here, not in the loop, gives a free port with no race against other tests.
        listener = socket.create_server((self.host, 0))
        self._port = listener.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="smtp-sink", daemon=True)
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._serve(listener), self._loop).result(timeout=5)
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        assert self._thread is not None
        self._thread.join()
        self._loop.close()
        self._loop = self._thread = self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._port is None or self._loop is None:
            raise RuntimeError("SmtpSink is not running")
        return self._port

    @property
    def received(self) -> list[ReceivedEmail]:
        with self._lock:
            return list(self._received)

    @property
    def messages(self) -> list[EmailMessage]:
        return [r.message for r in self.received]

    def wait_for(self, count: int = 1, timeout: float = 5.0) -> list[EmailMessage]:
        """Block until at least `count` messages arrived (e.g. sent by a Celery worker)."""
        with self._lock:
            if not self._lock.wait_for(lambda: len(self._received) >= count, timeout):
                raise TimeoutError(f"{len(self._received)} email(s) arrived within {timeout}s, wanted {count}")
            return [r.message for r in self._received]

    def clear(self) -> None:
        with self._lock:
            self._received.clear()

    # aiosmtpd calls this for each message, before it answers 250 to DATA: a send that
    # returned is already here.
    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = cast(bytes, envelope.original_content or envelope.content)
        received = ReceivedEmail(
            mail_from=envelope.mail_from or "",
            rcpt_tos=tuple(envelope.rcpt_tos),
            message=message_from_bytes(raw, policy=policy.default),
            received_at=datetime.now(UTC),
        )
        with self._lock:
            self._received.append(received)
            self._lock.notify_all()
        return "250 Message accepted for delivery"

    async def _serve(self, listener: socket.socket) -> asyncio.base_events.Server:
        assert self._loop is not None
        return await self._loop.create_server(self._new_session, sock=listener)

    def _new_session(self) -> SMTP:
        # A fixed hostname: the default asks DNS for this machine's FQDN, which can take seconds.
        session = SMTP(self, hostname="smtp-sink.test", loop=self._loop)
        self._sessions.add(session)
        return session

    async def _close(self) -> None:
        assert self._server is not None
        self._server.close()
        for session in self._sessions:
            if session.transport is not None:
                session.transport.close()
        self._sessions.clear()
        await self._server.wait_closed()
        current = asyncio.current_task()
        pending = [task for task in asyncio.all_tasks() if task is not current]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
