"""The monitoring files in ops/ and the compose file's monitoring profile: they name only metrics
that /metrics serves, and they fit together (paths, token, datasource)."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.processes import ROOT

OPS = ROOT / "ops"
ALERTS = OPS / "prometheus" / "alerts.yml"
DASHBOARD = OPS / "grafana" / "dashboards" / "scheduler.json"
# Our metrics and django-prometheus'; Prometheus' own (`up`, `time()`) are not /metrics' to serve.
METRIC = re.compile(r"(?<![\w:])((?:scheduler|django)_[a-zA-Z0-9_]+)")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def alert_exprs() -> list[str]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def dashboard_exprs() -> list[str]:
    return [target["expr"] for panel in dashboard()["panels"] for target in panel.get("targets", [])]


def named(exprs: list[str]) -> set[str]:
    return {name for expr in exprs for name in METRIC.findall(expr)}


def served(text: str) -> set[str]:
    """Every series name a scrape declares: its samples', and those its families' types imply
    (a labelled counter nothing has counted yet still declares its name)."""
    names = set()
    for family in text_string_to_metric_families(text):
        names |= {sample.name for sample in family.samples}
        names |= {family.name + suffix for suffix in SUFFIXES.get(family.type, ())}
    return names


@pytest.mark.django_db
def test_every_metric_the_alerts_and_the_dashboard_name_is_served(client, settings, redis):
    settings.METRICS_TOKEN, settings.METRICS_LOOPBACK_OPEN = "", True
    settings.CELERY_BROKER_URL = redis.url  # the queue's length is read from a Redis broker only
    client.get("/healthz")  # a request and some queries for django-prometheus to count

    answer = client.get("/metrics", REMOTE_ADDR="127.0.0.1")

    assert answer.status_code == 200
    assert named(alert_exprs()) and named(dashboard_exprs())
    assert named(alert_exprs()) - served(answer.content.decode()) == set()
    assert named(dashboard_exprs()) - served(answer.content.decode()) == set()


def test_the_alert_rules_are_valid_and_fire_when_they_should():
    assert shutil.which("promtool"), "promtool is missing: `make promtool` installs Debian's prometheus package"
    for command in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts_test.yml"]):
        done = subprocess.run(["promtool", *command], cwd=ALERTS.parent, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr


def test_the_dashboard_reads_the_provisioned_prometheus_in_every_panel():
    datasource = yaml.safe_load((OPS / "grafana/provisioning/datasources/prometheus.yml").read_text())
    [prometheus] = datasource["datasources"]
    panels = [panel for panel in dashboard()["panels"] if panel["type"] != "row"]

    assert prometheus["url"] == "http://prometheus:9090"
    assert len({panel["id"] for panel in dashboard()["panels"]}) == len(dashboard()["panels"])
    for panel in panels:
        assert panel["targets"], panel["title"]
        assert {panel["datasource"]["uid"]} | {t["datasource"]["uid"] for t in panel["targets"]} == {prometheus["uid"]}


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_web_worker_and_beat_count_into_one_shared_folder():
    services, volumes = compose()["services"], compose()["volumes"]
    folders = {name: services[name]["environment"]["PROMETHEUS_MULTIPROC_DIR"] for name in ("web", "worker", "beat")}

    [folder] = set(folders.values())
    for name in folders:
        assert f"metrics:{folder}" in services[name]["volumes"], name
    # In memory, writable by the image's user.
    options = volumes["metrics"]["driver_opts"]
    uid = re.search(r"--uid (\d+)", (ROOT / "Dockerfile").read_text()).group(1)
    assert options["type"] == "tmpfs" and f"uid={uid}" in options["o"]


def test_the_monitoring_profile_scrapes_web_with_the_metrics_token():
    services, secrets = compose()["services"], compose()["secrets"]
    prometheus, grafana = services["prometheus"], services["grafana"]
    config = yaml.safe_load((OPS / "prometheus/prometheus.yml").read_text())
    [job] = config["scrape_configs"]

    assert prometheus["profiles"] == grafana["profiles"] == ["monitoring"]
    assert "profiles" not in services["web"]
    for service in (prometheus, grafana):
        for mount in service["volumes"]:
            source = mount.split(":")[0]
            assert not source.startswith("./") or (ROOT / source).exists(), mount
    assert secrets["metrics_token"] == {"environment": "METRICS_TOKEN"} and "metrics_token" in prometheus["secrets"]
    assert job["authorization"]["credentials_file"] == "/run/secrets/metrics_token"
    assert [OPS / "prometheus" / name for name in config["rule_files"]] == [ALERTS]
    # web's gunicorn, by its service name: the Host of the scrape, which web must allow.
    [target] = job["static_configs"][0]["targets"]
    host, port = target.split(":")
    assert (host, port) == ("web", "8000") and '"0.0.0.0:8000"' in (ROOT / "gunicorn.conf.py").read_text()
    assert services["web"]["environment"]["DJANGO_ALLOWED_HOSTS"].split(",")[-1] == host


def test_grafana_loads_the_dashboard_from_where_compose_mounts_it():
    provider = yaml.safe_load((OPS / "grafana/provisioning/dashboards/scheduler.yml").read_text())
    mounts = dict(mount.split(":")[:2] for mount in compose()["services"]["grafana"]["volumes"])

    [dashboards] = provider["providers"]
    assert mounts["./ops/grafana/dashboards"] == dashboards["options"]["path"]
    assert Path(ROOT, "ops/grafana/dashboards", DASHBOARD.name).exists()
