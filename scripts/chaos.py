"""Book under load while the worker is SIGKILLed and Redis restarted; then count.

    .venv/bin/python scripts/chaos.py            # about a minute; exit 1 if anything was lost or doubled

Starts, all on loopback and all stopped at the end: a Redis of its own, gunicorn (production
settings), two Celery workers and a beat on a PostgreSQL database named bench_chaos (created and
emptied), and the fake Twilio in this process. The booking API is driven for 30 s by 12 clients;
every booking's confirmation text is due at once. At 8 s one worker is SIGKILLed, at 14 s Redis is
restarted (it keeps nothing on disk: every queued task is lost), at 18 s a new worker starts.
Then it waits for every text to settle and prints what it counted.
"""

import os
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

URL = os.environ.get("CHAOS_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_chaos")
LOAD_SECONDS = 30
KILL_AT, REDIS_RESTART_AT, NEW_WORKER_AT = 8, 14, 18


def main() -> int:
    from bench.run import _django_setup

    _django_setup(URL)
    import json

    from bench.database import database_prepare
    from bench.load import booking_load, overlap_pairs, site_build, web_server
    from notifications.models import Message
    from sessions.models import Clinic, Series
    from tests.fakes import FakeTwilio, SmtpSink
    from tests.processes import CeleryProcess, RedisServer, celery_env, wait_until

    database_prepare()
    Message.objects.all().delete()
    site = site_build(clinics=4, patients=2_000, texts=True, links=0)
    Clinic.objects.update(message_window_start="00:00", message_window_end="23:59:59")
    leases = {"MESSAGE_CLAIM_LEASE_SECONDS": "5", "MESSAGE_SEND_LEASE_SECONDS": "8", "TWILIO_TIMEOUT_SECONDS": "3"}
    with tempfile.TemporaryDirectory(prefix="chaos-") as folder, FakeTwilio() as twilio, SmtpSink() as smtp:
        twilio.latency = 0.05
        redis = RedisServer(Path(folder)).start()
        env = celery_env(redis_url=redis.url, twilio=twilio, smtp=smtp, tick_seconds=1, DATABASE_URL=URL, **leases)
        env["REMINDER_KICK_ON_BOOKING"] = "true"
        processes = [CeleryProcess("worker", env, Path(folder) / f"worker-{n}.log", "--pool=threads",
                                   "--concurrency=4") for n in range(2)]  # fmt: skip
        processes.append(CeleryProcess("beat", env, Path(folder) / "beat.log"))
        web_env = {k: env[k] for k in env if k.startswith(("TWILIO_", "MESSAGE_", "REMINDER_", "PUBLIC_"))}
        try:
            with web_server(redis.url, **web_env) as port:
                outcome: dict = {}
                load = threading.Thread(
                    target=lambda: outcome.update(
                        result=booking_load(port, site, seconds=LOAD_SECONDS, clients=12, keep=True)
                    )
                )
                began = time.monotonic()
                load.start()
                _at(began, KILL_AT)
                processes[0].kill()
                print(f"{KILL_AT:>3} s  SIGKILLed worker 0")
                _at(began, REDIS_RESTART_AT)
                redis.restart()
                print(f"{REDIS_RESTART_AT:>3} s  restarted Redis (every queued task lost)")
                _at(began, NEW_WORKER_AT)
                processes.append(CeleryProcess("worker", env, Path(folder) / "worker-2.log", "--pool=threads",
                                               "--concurrency=4"))  # fmt: skip
                print(f"{NEW_WORKER_AT:>3} s  started worker 2")
                load.join()
            result = outcome["result"]
            booked_ids = {json.loads(body)["id"] for status, body in result.bodies if status == 201}
            print(f"{LOAD_SECONDS:>3} s  load over: {result.statuses} answered, {result.errors} connection errors")
            settle = Message.objects.filter(purpose="booked", channel="sms").exclude(status__in=Message.FINAL)
            wait_until(lambda: not settle.exclude(status="sent").exists(), 180, "every booking text to settle")
        finally:
            for process in processes:
                process.stop()
            redis.stop()
        per_message = Counter(int(parse_qs(urlsplit(t.status_callback).query)["m"][0]) for t in twilio.messages)
        texts_expected = Message.objects.filter(purpose="booked", channel="sms").count()
    in_db = set(Series.objects.filter(pk__in=booked_ids).values_list("pk", flat=True))
    lost = len(booked_ids - in_db)
    doubled = sum(1 for n in per_message.values() if n > 1)
    statuses = Counter(Message.objects.filter(purpose="booked", channel="sms").values_list("status", flat=True))
    overlaps = overlap_pairs()
    print()
    print(f"bookings answered 201:            {len(booked_ids)}")
    print(f"  of them missing from the DB:    {lost}")
    print(f"overlapping sessions afterwards:  {overlaps}")
    print(f"booking texts planned:            {texts_expected}  ({dict(statuses)})")
    print(f"texts received by fake Twilio:    {len(twilio.messages)} for {len(per_message)} messages")
    print(f"  messages texted more than once: {doubled}")
    print(f"  requests to Twilio:             {len(twilio.received)}")
    ok = lost == 0 and doubled == 0 and overlaps == 0 and len(per_message) == texts_expected
    print("\nOK: nothing lost, nothing doubled." if ok else "\nFAILED")
    return 0 if ok else 1


def _at(began: float, second: float) -> None:
    time.sleep(max(0.0, began + second - time.monotonic()))


if __name__ == "__main__":
    sys.exit(main())
