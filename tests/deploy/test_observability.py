"""local/observability: the alert rules, their promtool unit tests, the Prometheus config and the
Grafana dashboard, checked offline.

promtool comes from Debian's `prometheus` package (.ci/run installs it where it can); without it
the promtool checks skip and say so. Every metric a rule, a rule test or a panel names must be
one shared/ordinaut/metrics.py exports, so a renamed metric cannot leave an alert silently dead.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.core import Metric

from ordinaut import metrics
from ordinaut.config import Settings

REPO = Path(__file__).resolve().parents[2]
OBSERVABILITY = REPO / "local" / "observability"
RULES = OBSERVABILITY / "alerts.yml"
RULE_TESTS = OBSERVABILITY / "alerts_test.yml"
PROMETHEUS = OBSERVABILITY / "prometheus.yml"
GRAFANA = OBSERVABILITY / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
COMPOSE = REPO / "local" / "compose.yaml"
SEVERITIES = {"critical", "warning"}

# What the operators' issue asks the rules to catch, as the metric each one must read.
REQUIRED_SIGNALS = {
    "runs dead-lettering": "ordinaut_dead_letters_total",
    "failure ratio": "ordinaut_runs_total",
    "due-work lag": "ordinaut_due_work_lag_seconds",
    "runs starting late": "ordinaut_run_start_lag_seconds_bucket",
    "no scheduler tick": "ordinaut_scheduler_last_tick_timestamp_seconds",
    "no live workers": "ordinaut_workers_live",
    "outbox backlog": "ordinaut_outbox_backlog",
    "parked ingest entries": "ordinaut_ingest_entries_total",
    "API 5xx ratio": "ordinaut_http_requests_total",
    "API latency": "ordinaut_http_request_duration_seconds_bucket",
}
# The panels the overview dashboard must have, by the metric each one reads.
REQUIRED_PANELS = {
    "runs by outcome": "ordinaut_runs_total",
    "start lag percentiles": "ordinaut_run_start_lag_seconds_bucket",
    "queue depth": "ordinaut_due_work",
    "tick duration": "ordinaut_tick_duration_seconds_bucket",
    "API rate and errors": "ordinaut_http_requests_total",
    "API latency": "ordinaut_http_request_duration_seconds_bucket",
    "worker in-flight": "ordinaut_worker_in_flight",
}

PROMQL_FUNCTIONS = {
    "abs", "absent", "absent_over_time", "avg", "avg_over_time", "bottomk", "ceil", "changes",
    "clamp", "clamp_max", "clamp_min", "count", "count_over_time", "count_values", "delta",
    "deriv", "floor", "group", "histogram_quantile", "idelta", "increase", "irate",
    "label_replace", "max", "max_over_time", "min", "min_over_time", "quantile",
    "quantile_over_time", "rate", "resets", "round", "scalar", "sort", "sort_desc", "stddev",
    "sum", "sum_over_time", "time", "timestamp", "topk", "vector",
}  # fmt: skip
PROMQL_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "bool", "offset"}
_LABEL_LISTS = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_WORD = re.compile(r"(?<![\w.$])[A-Za-z_:][A-Za-z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads; an unknown function name fails the test
    (a typo would otherwise pass as a metric that is merely absent)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values, regexes
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges, $__rate_interval
    text = _LABEL_LISTS.sub("", text)  # by (le, route), on () ...
    names = set()
    for match in _WORD.finditer(text):
        word = match.group(0)
        if word in PROMQL_KEYWORDS:
            continue
        if text[match.end() :].lstrip().startswith("("):
            assert word in PROMQL_FUNCTIONS, f"unknown PromQL function {word!r} in {expr!r}"
            continue
        names.add(word)
    return names


def exported_names() -> set[str]:
    """Every sample name the Ordinaut processes can expose (suffixes by metric type)."""
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "gauge": ("",),
        "summary": ("", "_count", "_sum", "_created"),
    }
    names: set[str] = set()
    family: Metric
    for family in metrics.REGISTRY.collect():
        names.update(family.name + suffix for suffix in suffixes[family.type])
    return names


def _rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def _rule_tests() -> list[dict[str, Any]]:
    tests: list[dict[str, Any]] = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    return tests


def _dashboards() -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))]


def _panel_exprs(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.skip(
            "promtool not found (Debian: apt-get install prometheus): alert rules not checked"
        )
    return subprocess.run(
        [binary, *args],
        cwd=OBSERVABILITY,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# --- promtool ----------------------------------------------------------------------------------


def test_promtool_checks_the_rules() -> None:
    result = _promtool("check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    result = _promtool("test", "rules", RULE_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_promtool_checks_the_prometheus_config() -> None:
    result = _promtool("check", "config", PROMETHEUS.name)
    assert result.returncode == 0, result.stdout + result.stderr


# --- the rules' content --------------------------------------------------------------------------


def test_every_alert_says_what_happened_where_to_look_and_how_bad() -> None:
    rules = _rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), "alert names must be unique"
    for rule in rules:
        name = rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES, name
        assert rule["annotations"]["summary"].strip(), name
        description = rule["annotations"]["description"]
        # a description an operator can act on: where to look, not a restated summary
        assert len(description.split()) >= 25, f"{name}: description too thin"


def test_the_rules_cover_every_signal_operators_need() -> None:
    read = {name for rule in _rules() for name in metric_names(rule["expr"])}
    missing = {signal: m for signal, m in REQUIRED_SIGNALS.items() if m not in read}
    assert not missing, f"no alert reads {missing}"


def test_every_alert_fires_in_one_unit_test_and_is_quiet_in_another() -> None:
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in _rule_tests():
        for check in case.get("alert_rule_test", []):
            (fires if check["exp_alerts"] else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in _rules()}
    assert names - fires == set(), "alerts never shown firing"
    assert names - quiet == set(), "alerts never shown quiet"
    assert fires | quiet <= names, "tests name alerts that do not exist"
    healthy = _rule_tests()[0]
    assert {c["alertname"] for c in healthy["alert_rule_test"] if not c["exp_alerts"]} == names


def test_the_metric_name_reader_reads_promql() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, route) (rate(a_bucket{route!="/x",le=~"1e3"}'
        "[$__rate_interval]))) > 1e3 and on() (time() - max(b_seconds offset 5m)) < 60 or "
        'absent(c) unless sum without (job) (d_total{status=~"5.."})'
    )
    assert metric_names(expr) == {"a_bucket", "b_seconds", "c", "d_total"}
    with pytest.raises(AssertionError, match="unknown PromQL function"):
        metric_names("ratee(a_total[5m])")


def test_every_metric_a_rule_a_rule_test_or_a_panel_names_is_exported() -> None:
    exported = exported_names()
    named: dict[str, str] = {}
    for rule in _rules():
        for name in metric_names(rule["expr"]):
            named[name] = f"alert {rule['alert']}"
    for case in _rule_tests():
        for series in case["input_series"]:
            named[series["series"].split("{", 1)[0]] = f"rule test {case['name']!r}"
    for dashboard in _dashboards():
        for title, expr in _panel_exprs(dashboard):
            for name in metric_names(expr):
                named[name] = f"panel {title!r}"
    unknown = {name: where for name, where in named.items() if name not in exported}
    assert not unknown, f"not exported by shared/ordinaut/metrics.py: {unknown}"
    assert len(named) >= 12


# --- Grafana and Prometheus in the compose profile ---------------------------------------------


def test_the_overview_dashboard_has_the_panels_operators_need() -> None:
    (dashboard,) = _dashboards()
    assert dashboard["uid"] == "ordinaut-overview"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    read = {name for _, expr in _panel_exprs(dashboard) for name in metric_names(expr)}
    missing = {panel: m for panel, m in REQUIRED_PANELS.items() if m not in read}
    assert not missing, f"no panel reads {missing}"
    datasource = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )["datasources"][0]
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]
        assert panel["targets"], panel["title"]
    assert datasource["url"] == "http://prometheus:9090"


def _compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return doc


def _mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path of a service's bind mounts."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            mounts[target] = (COMPOSE.parent / source).resolve()
    return mounts


def test_prometheus_scrapes_the_api_the_scheduler_and_every_worker() -> None:
    services = _compose()["services"]
    config = yaml.safe_load(PROMETHEUS.read_text())
    targets = {
        job["job_name"]: sorted(t for sc in job["static_configs"] for t in sc["targets"])
        for job in config["scrape_configs"]
    }
    defaults = Settings()
    workers = sorted(name for name in services if name.startswith("worker"))
    assert targets == {
        "ordinaut-api": [f"api:{services['api']['environment']['ORDINAUT_API_PORT']}"],
        "ordinaut-scheduler": [f"scheduler:{defaults.scheduler_metrics_port}"],
        "ordinaut-worker": [f"{w}:{defaults.worker_metrics_port}" for w in workers],
    }
    # the image makes scheduler and worker metrics listen beyond loopback
    assert "ORDINAUT_METRICS_HOST=0.0.0.0" in (REPO / "Dockerfile").read_text()
    assert config["rule_files"] == ["alerts.yml"]


def test_the_observability_profile_mounts_the_checked_files() -> None:
    services = _compose()["services"]
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["observability"], name
    for name in ("api", "scheduler", "worker-1"):
        assert "profiles" not in services[name], "the default stack must not need the profile"
    prometheus = _mounts(services["prometheus"])
    assert prometheus["/etc/prometheus/prometheus.yml"] == PROMETHEUS
    assert prometheus["/etc/prometheus/alerts.yml"] == RULES
    command = services["prometheus"]["command"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in command
    grafana = _mounts(services["grafana"])
    assert grafana["/etc/grafana/provisioning"] == GRAFANA / "provisioning"
    provider = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "ordinaut.yml").read_text()
    )["providers"][0]
    assert grafana[provider["options"]["path"]] == DASHBOARDS
    for service in ("prometheus", "grafana"):
        for port in services[service]["ports"]:
            assert str(port).startswith("127.0.0.1:"), "published on loopback only"


def test_the_readme_points_at_the_rules_and_the_dashboards() -> None:
    readme = (REPO / "README.md").read_text()
    for path in (RULES, RULE_TESTS, DASHBOARDS):
        assert str(path.relative_to(REPO)) in readme, path
    assert "--profile observability" in readme


def test_without_promtool_the_checks_skip_and_say_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    with pytest.raises(pytest.skip.Exception, match="apt-get install prometheus"):
        _promtool("check", "rules", RULES.name)
