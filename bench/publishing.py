"""The broker the reminder benchmarks publish to, and prototypes of faster ways for the tick to
hand its ids to workers.

The prototypes are proposals measured here, not the app's code: the tick itself still publishes
with `notifications.sending._enqueue`, one `send_message.delay()` per id, each of which takes a
producer from the pool, builds a Redis client and makes one round trip to Redis.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from tempfile import TemporaryDirectory

import redis

from notifications import sending
from notifications.tasks import send_message
from scheduler.celery import app
from tests.processes import RedisServer

Publish = Callable[[list[int]], None]

# Redis commands buffered before a flush: workers get the first ids while the tick builds the rest.
BATCH_SIZE = 100
# Ids per task in the chunked prototype (a task the app does not have: `send_messages(ids)`).
CHUNK_SIZE = 25


@contextmanager
def bench_broker() -> Iterator[RedisServer]:
    """A redis-server of the bench's own, with the bench process's Celery app publishing to it."""
    with TemporaryDirectory(prefix="bench-redis-") as folder:
        server = RedisServer(Path(folder)).start()
        try:
            # Nothing in the bench publishes before this (a booking's kick is off), so the app's
            # producer pool is created on the first publish, for this server.
            app.conf.update(broker_url=server.url, broker_transport_options={})
            if app.pool.connection.port != server.port:
                raise RuntimeError("Celery published before the bench pointed it at its own Redis.")
            yield server
        finally:
            app.pool.force_close_all()
            server.stop()


def broker_queue_empty(server: RedisServer) -> None:
    """Drop what the bench published: no worker drains the queue while the tick is timed."""
    with redis.Redis.from_url(server.url) as client:
        client.delete(app.conf.task_default_queue)


def publish_one_producer(ids: list[int]) -> None:
    """One producer (and so one Redis client) for the whole batch; still a round trip per task."""
    with app.producer_or_acquire() as producer:
        for message_id in ids:
            send_message.apply_async((message_id,), producer=producer)


def publish_pipelined(ids: list[int]) -> None:
    """One producer, and kombu's publish batch: the tasks' LPUSHes go in Redis pipelines of
    BATCH_SIZE, one round trip each."""
    with app.producer_or_acquire() as producer, producer.batch(max_size=BATCH_SIZE):
        for message_id in ids:
            send_message.apply_async((message_id,), producer=producer)


def publish_chunked(ids: list[int]) -> None:
    """A task per CHUNK_SIZE ids instead of one per id, pipelined as above."""
    with app.producer_or_acquire() as producer, producer.batch(max_size=BATCH_SIZE):
        for start in range(0, len(ids), CHUNK_SIZE):
            app.send_task("notifications.tasks.send_messages", (ids[start : start + CHUNK_SIZE],), producer=producer)


@contextmanager
def publishing_replaced(publish: Publish) -> Iterator[None]:
    """The tick with another way of publishing its ids (or none), for as long as the block runs."""
    original = sending._enqueue
    sending._enqueue = publish
    try:
        yield
    finally:
        sending._enqueue = original


PROTOTYPES: dict[str, Publish] = {
    "one producer for all": publish_one_producer,
    f"one producer, pipelined by {BATCH_SIZE} (kombu Producer.batch)": publish_pipelined,
    f"a task per {CHUNK_SIZE} ids, pipelined": publish_chunked,
}
