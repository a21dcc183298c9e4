"""A fake Sentry on loopback: the envelope endpoint the SDK posts events to.

Only the far edge is fake: the app's `sentry_sdk.init`, its scrubbing and the SDK's own transport
(compression, envelope framing, auth header) all run for real against this server, which keeps
each envelope as it arrived, decompressed, so a test can search every byte that would have left.
"""

from __future__ import annotations

import gzip
import json
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

PUBLIC_KEY = "fakepublickey"
PROJECT_ID = 1

_ENVELOPE_PATH = re.compile(r"^/api/(?P<project>\d+)/envelope/$")


@dataclass(frozen=True)
class Item:
    headers: dict[str, Any]
    payload: bytes

    @property
    def type(self) -> str:
        return str(self.headers.get("type", ""))

    def json(self) -> dict[str, Any]:
        return json.loads(self.payload)


@dataclass(frozen=True)
class Envelope:
    raw: bytes  # the body as sent, after its Content-Encoding is undone
    headers: dict[str, Any]
    items: list[Item]


def envelope_parse(raw: bytes) -> Envelope:
    """Sentry's envelope framing: a JSON header line, then per item a JSON header line and a
    payload of the header's `length` bytes (or up to the next newline when it gives none)."""
    header_line, _, rest = raw.partition(b"\n")
    items = []
    while rest.strip():
        item_line, _, rest = rest.partition(b"\n")
        item_headers = json.loads(item_line)
        if "length" in item_headers:
            payload, rest = rest[: item_headers["length"]], rest[item_headers["length"] :].removeprefix(b"\n")
        else:
            payload, _, rest = rest.partition(b"\n")
        items.append(Item(headers=item_headers, payload=payload))
    return Envelope(raw=raw, headers=json.loads(header_line), items=items)


def _decoded(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "br":
        # The SDK compresses with brotli only where the module is installed, so it is here too.
        import brotli  # type: ignore[import-not-found]

        return brotli.decompress(body)
    if encoding in ("", "identity"):
        return body
    raise ValueError(f"unknown Content-Encoding {encoding!r}")


class FakeSentry:
    """Sentry's envelope endpoint on 127.0.0.1, in a background thread; a context manager.

    Envelopes need the `X-Sentry-Auth` header with this fake's public key, as Sentry does.
    """

    def __init__(self) -> None:
        self._lock = threading.Condition(threading.RLock())
        self._envelopes: list[Envelope] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Self:
        self._server = _Server(("127.0.0.1", 0), _Handler, fake=self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-sentry", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        self._server = self._thread = None

    @property
    def dsn(self) -> str:
        assert self._server is not None, "FakeSentry is not running"
        return f"http://{PUBLIC_KEY}@127.0.0.1:{self._server.server_address[1]}/{PROJECT_ID}"

    @property
    def envelopes(self) -> list[Envelope]:
        with self._lock:
            return list(self._envelopes)

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every error event received (transactions, sessions and client reports left out)."""
        return self.items("event")

    def items(self, type: str) -> list[dict[str, Any]]:
        """The payloads of every item of `type` received: event, transaction, sessions…"""
        return [item.json() for envelope in self.envelopes for item in envelope.items if item.type == type]

    @property
    def raw(self) -> bytes:
        """Every byte received, decompressed, in order."""
        return b"\n".join(envelope.raw for envelope in self.envelopes)

    def wait_for(self, type: str = "event", count: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Block until `count` items of `type` arrived (the SDK sends from a thread of its own)."""
        with self._lock:
            if not self._lock.wait_for(lambda: len(self.items(type)) >= count, timeout):
                raise TimeoutError(f"{len(self.items(type))} {type} item(s) received within {timeout}s, wanted {count}")
        return self.items(type)

    def _receive(self, envelope: Envelope) -> None:
        with self._lock:
            self._envelopes.append(envelope)
            self._lock.notify_all()


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # so server_close() joins handler threads

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], *, fake: FakeSentry) -> None:
        self.fake = fake
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"  # one request per connection: no idle keep-alive thread at exit
    timeout = 2

    def do_POST(self) -> None:
        route = _ENVELOPE_PATH.match(self.path.split("?", 1)[0])
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if route is None or int(route["project"]) != PROJECT_ID:
            return self._answer(404, {"detail": "not found"})
        if f"sentry_key={PUBLIC_KEY}" not in (self.headers.get("X-Sentry-Auth") or ""):
            return self._answer(401, {"detail": "bad auth"})
        try:
            raw = _decoded(body, (self.headers.get("Content-Encoding") or "").strip().lower())
            envelope = envelope_parse(raw)
        except (ValueError, OSError, ImportError) as bad:
            return self._answer(400, {"detail": str(bad)})
        self.server.fake._receive(envelope)
        self._answer(200, {})

    def _answer(self, status: int, body: dict[str, str]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: a test reads fake.envelopes."""
