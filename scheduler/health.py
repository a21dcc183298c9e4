"""GET /healthz: is the database up, is the broker up, and is the reminder tick running?

503 names what is down. The tick runs on beat and a worker, so a fresh heartbeat shows both
alive; a stale one is reported, and fails the check only with ?strict=1 (the probe for the
worker and beat), so that web stays in rotation while a worker restarts.
"""

import time
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from notifications.models import Heartbeat
from notifications.sending import TICK_HEARTBEAT

from .celery import app


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    checks = {"database": _database(), "broker": _broker(), "tick": _tick()}
    down = [name for name in ("database", "broker") if checks[name] != "ok"]
    if request.GET.get("strict") == "1" and checks["tick"]["status"] != "ok":
        down.append("tick")
    body = {"status": "ok" if not down else "down", "down": down, "checks": checks}
    return JsonResponse(body, status=200 if not down else 503)


def _database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except Exception as exc:  # any failure to reach it is the answer, not an error of ours
        return f"down: {type(exc).__name__}"


def _broker() -> str:
    started = time.perf_counter()
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return "ok" if time.perf_counter() - started < 5 else "slow"
    except Exception as exc:
        return f"down: {type(exc).__name__}"


def _tick() -> dict[str, object]:
    try:
        last = Heartbeat.objects.filter(name=TICK_HEARTBEAT).values_list("at", flat=True).first()
    except Exception as exc:
        return {"status": f"unknown: {type(exc).__name__}"}
    if last is None:
        return {"status": "never run"}
    age = timezone.now() - last
    fresh = age <= timedelta(seconds=max(3 * settings.REMINDER_TICK_SECONDS, 30))
    return {
        "status": "ok" if fresh else "stale",
        "last_run": last.isoformat(),
        "age_seconds": round(age.total_seconds()),
    }
