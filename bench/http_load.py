"""A small asyncio HTTP/1.1 load generator: N clients on keep-alive connections, each sending
requests back to back until a deadline, recording every latency.

Written for loopback load tests of our own gunicorn; it speaks just enough HTTP for that
(Content-Length or chunked answers, keep-alive, reconnect on close).
"""

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

Request = tuple[str, str, dict[str, str], bytes]  # method, path, headers, body


@dataclass
class Outcome:
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    elapsed: float = 0.0
    bodies: list[tuple[int, bytes]] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.latencies)

    def per_second(self) -> float:
        return self.count / self.elapsed if self.elapsed else 0.0

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))] * 1000


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("closed")
    status = int(status_line.split()[1])
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while (size := int((await reader.readline()).strip() or b"0", 16)) > 0:
            body += await reader.readexactly(size)
            await reader.readline()
        await reader.readline()
    else:
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, body, headers.get("connection", "").lower() == "close"


async def _client(port: int, make: Callable[[], Request], deadline: float, outcome: Outcome, keep: bool) -> None:
    reader = writer = None
    while time.perf_counter() < deadline:
        method, path, headers, body = make()
        lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        payload = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
        started = time.perf_counter()
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(payload)
            status, answer, closing = await _read_answer(reader)
        except (ConnectionError, asyncio.IncompleteReadError, OSError, ValueError):
            outcome.errors += 1
            writer = None
            continue
        outcome.latencies.append(time.perf_counter() - started)
        outcome.statuses[status] = outcome.statuses.get(status, 0) + 1
        if keep:
            outcome.bodies.append((status, answer))
        if closing:
            writer.close()
            writer = None
    if writer is not None:
        writer.close()


def run_load(port: int, make: Callable[[], Request], *, clients: int, seconds: float, keep: bool = False) -> Outcome:
    """`clients` concurrent connections sending `make()` requests for `seconds`."""
    outcome = Outcome()

    async def main() -> None:
        deadline = time.perf_counter() + seconds
        started = time.perf_counter()
        await asyncio.gather(*(_client(port, make, deadline, outcome, keep) for _ in range(clients)))
        outcome.elapsed = time.perf_counter() - started

    asyncio.run(main())
    return outcome
