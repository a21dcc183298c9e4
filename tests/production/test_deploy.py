"""What a deployment relies on: the --deploy checks, health, the compose file, and logs."""

import logging
import os
import secrets
import shlex
import subprocess
import sys
from importlib import import_module
from pathlib import Path
from unittest import mock

import pytest
import yaml
from django.core.management import get_commands
from django.utils import timezone

from notifications.models import Heartbeat
from scheduler.celery import app

ROOT = Path(__file__).resolve().parents[2]


def production_env(**changes: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(
        DJANGO_SETTINGS_MODULE="scheduler.settings.production",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="scheduler.example.com",
        REDIS_URL=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
    )
    env.update(changes)
    return env


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True)


def test_production_settings_pass_the_deploy_checks_with_no_warning():
    checked = manage("check", "--deploy", "--fail-level", "WARNING", env=production_env())

    assert checked.returncode == 0, checked.stderr + checked.stdout


@pytest.mark.parametrize("missing", ["DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS", "REDIS_URL"])
def test_production_refuses_to_start_without_its_secrets_and_hosts(missing):
    env = production_env()
    del env[missing]

    checked = manage("check", env=env)

    assert checked.returncode != 0
    assert missing in checked.stderr


def test_database_url_options_survive_and_plans_are_kept_prepared():
    url = "postgres://scheduler@db.example.com:5432/scheduler?sslmode=verify-full&connect_timeout=5"
    show = "from django.conf import settings; print(sorted(settings.DATABASES['default']['OPTIONS'].items()))"

    shown = manage("shell", "-c", show, env=production_env(DATABASE_URL=url, DB_PREPARE_THRESHOLD="0"))

    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip().splitlines()[-1] == (
        "[('connect_timeout', 5), ('prepare_threshold', None), ('server_side_binding', True), "
        "('sslmode', 'verify-full')]"
    )


@pytest.mark.django_db
def test_health_says_ok_and_reports_the_tick(client):
    answer = client.get("/healthz")

    assert answer.status_code == 200
    assert answer.json()["checks"]["database"] == "ok"
    assert answer.json()["checks"]["broker"] == "ok"
    assert answer.json()["checks"]["tick"] == {"status": "never run"}
    assert client.get("/healthz?strict=1").status_code == 503


@pytest.mark.django_db
def test_health_names_the_broker_when_it_is_down(client):
    reach = app.connection_for_write
    with mock.patch.object(app, "connection_for_write", lambda: reach(url="redis://127.0.0.1:9/0")):
        answer = client.get("/healthz")

    assert answer.status_code == 503
    assert answer.json()["down"] == ["broker"]


@pytest.mark.django_db
def test_health_tells_a_fresh_tick_from_a_stale_one(client, settings):
    settings.REMINDER_TICK_SECONDS = 60
    Heartbeat.objects.create(name="reminder-tick", at=timezone.now())
    assert client.get("/healthz?strict=1").json()["checks"]["tick"]["status"] == "ok"

    Heartbeat.objects.filter(name="reminder-tick").update(at=timezone.now() - timezone.timedelta(minutes=10))

    answer = client.get("/healthz?strict=1")
    assert (answer.status_code, answer.json()["down"]) == (503, ["tick"])


@pytest.mark.django_db
def test_request_logs_carry_no_patient_link_token(client, caplog):
    with caplog.at_level(logging.INFO, logger="scheduler.requests"):
        client.get("/r/SecretToken123")

    [line] = [r.getMessage() for r in caplog.records if r.name == "scheduler.requests"]
    assert "SecretToken123" not in line
    assert "path=/r/…" in line and "status=" in line and "duration_ms=" in line


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_the_compose_file_runs_only_commands_the_project_has():
    services = compose()["services"]
    ours = {name: s for name, s in services.items() if "image" in s and s["image"] == "infusion-scheduler"}

    assert set(ours) == {"migrate", "web", "worker", "beat"}
    for name, service in ours.items():
        command = service["command"]
        command = shlex.split(command) if isinstance(command, str) else command
        program, *args = command
        if program == "python":
            assert args[0] == "manage.py" and args[1] in get_commands(), (name, command)
        elif program == "gunicorn":
            module, attribute = args[-1].split(":") if ":" in args[-1] else (args[-1], "application")
            assert hasattr(import_module(module), attribute), (name, command)
            if "-c" in args:
                assert (ROOT / args[args.index("-c") + 1]).exists()
        elif program == "celery":
            assert args[:2] == ["-A", "scheduler"] and args[2] in {"worker", "beat"}, (name, command)
        else:
            pytest.fail(f"{name} runs {program!r}, which the project does not provide")
    assert [n for n, s in ours.items() if "beat" in s["command"]] == ["beat"]  # exactly one beat


def test_the_compose_file_keeps_the_broker_and_database_safe():
    services = compose()["services"]

    assert "healthcheck" in services["postgres"] and "healthcheck" in services["redis"]
    redis_command = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in redis_command and "--maxmemory-policy noeviction" in redis_command
    assert services["redis"]["volumes"] and services["postgres"]["volumes"]
    for name in ("web", "worker", "beat"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_behind_a_proxy_the_client_address_comes_from_x_forwarded_for(rf, settings):
    from scheduler.proxy import ClientAddressMiddleware

    settings.TRUSTED_PROXY_HOPS = 1
    seen = []
    middleware = ClientAddressMiddleware(lambda request: seen.append(request.META["REMOTE_ADDR"]) or None)

    middleware(rf.get("/", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.9", REMOTE_ADDR="10.0.0.2"))

    assert seen == ["203.0.113.9"]  # the spoofable left entry is ignored


def test_no_task_can_hang_a_worker_longer_than_its_time_limits(settings):
    soft, hard = app.conf.task_soft_time_limit, app.conf.task_time_limit

    assert soft and hard and soft < hard
    # A send's own waits on its provider, and a tick's recovery budget, end before the soft limit.
    assert max(settings.TWILIO_TIMEOUT_SECONDS, settings.EMAIL_TIMEOUT) * 2 < soft
    assert settings.REMINDER_RECONCILE_SECONDS + settings.TWILIO_TIMEOUT_SECONDS < soft
