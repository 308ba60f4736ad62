"""Alert rules, Prometheus and Alertmanager configs, checked by Debian's real promtool and amtool.

`promtool test rules` runs docker/prometheus/tests/, which holds a firing and a quiet case for every rule; the
drawdown, drift and expiry thresholds are params.yaml's (monitor.max_drawdown, trading.ood_threshold,
monitor.max_model_age_days); every metric a rule reads is one the project exports.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import ROOT
from tests.manifests.observability import (
    ALERTMANAGER,
    PROMETHEUS_DIR,
    PROMETHEUS_OWN,
    RULE_TESTS,
    RULES,
    exported_metric_names,
    run,
    tradepipe_metrics,
)
from tradepipe.config import Params

pytestmark = pytest.mark.prometheus


def _rules() -> list[dict[str, Any]]:
    return [rule for path in RULES for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]


def _alert(name: str) -> dict[str, Any]:
    return next(rule for rule in _rules() if rule.get("alert") == name)


def test_promtool_checks_the_rules() -> None:
    out = run("promtool", "check", "rules", *map(str, RULES))
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in out.stdout


def test_promtool_unit_tests_pass() -> None:
    out = run("promtool", "test", "rules", *map(str, RULE_TESTS))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_every_rule_has_a_firing_and_a_quiet_unit_test() -> None:
    cases: dict[str, set[bool]] = {}
    for path in RULE_TESTS:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                cases.setdefault(case["alertname"], set()).add(bool(case["exp_alerts"]))
    alerts = {rule["alert"] for rule in _rules()}
    assert set(cases) == alerts, f"untested: {sorted(alerts - set(cases))}, unknown: {sorted(set(cases) - alerts)}"
    assert {name: seen for name, seen in cases.items() if seen != {True, False}} == {}


def test_the_drawdown_rule_uses_the_monitors_limit(params: Params) -> None:
    match = re.fullmatch(r"tradepipe_account_drawdown > ([0-9.]+)", _alert("TradepipeDrawdownBeyondLimit")["expr"])
    assert match, "the drawdown rule's expression changed: update this test"
    assert float(match.group(1)) == params.monitor.max_drawdown  # params.yaml monitor.max_drawdown


def test_the_drift_and_expiry_rules_use_the_guards_and_monitors_limits(params: Params) -> None:
    drift = re.fullmatch(r"tradepipe_model_ood_score > ([0-9.]+)", _alert("TradepipeModelDrift")["expr"])
    expiry = re.fullmatch(r"time\(\) - tradepipe_model_registered_timestamp_seconds > (\d+) \* 86400",
                          _alert("TradepipeModelExpired")["expr"])
    assert drift and expiry, "the drift or expiry rule's expression changed: update this test"
    assert float(drift.group(1)) == params.trading.ood_threshold  # params.yaml trading.ood_threshold
    assert int(expiry.group(1)) == params.monitor.max_model_age_days  # params.yaml monitor.max_model_age_days


def test_the_unit_tests_have_teeth(tmp_path: Path) -> None:
    """A rule whose threshold drifts from what its unit test expects fails `promtool test rules`."""
    shutil.copytree(PROMETHEUS_DIR, tmp_path / "prometheus")
    rules = tmp_path / "prometheus/rules/tradepipe.yml"
    rules.write_text(rules.read_text().replace("tradepipe_account_drawdown > 0.15", "tradepipe_account_drawdown > 0.2"))
    out = run("promtool", "test", "rules", *(str(tmp_path / "prometheus/tests" / p.name) for p in RULE_TESTS))
    assert out.returncode != 0 and "alertname: TradepipeDrawdownBeyondLimit, time: 2m" in out.stderr


def test_rules_read_only_exported_metrics_and_say_what_to_do() -> None:
    exported = exported_metric_names()
    for rule in _rules():
        named = tradepipe_metrics(rule["expr"])
        assert named <= exported, f"{rule['alert']} reads {sorted(named - exported)}, which nothing exports"
        assert named or set(re.findall(r"\w+", rule["expr"])) & PROMETHEUS_OWN, rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]


def test_promtool_checks_the_prometheus_config() -> None:
    config = PROMETHEUS_DIR / "prometheus.yml"
    out = run("promtool", "check", "config", str(config))
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(RULES)} rule files found" in out.stdout
    jobs = {job["job_name"]: job for job in yaml.safe_load(config.read_text())["scrape_configs"]}
    compose = yaml.safe_load((ROOT / "docker/docker-compose.yml").read_text())["services"]
    serving_port = compose["serving"]["command"][compose["serving"]["command"].index("--port") + 1]
    assert jobs["tradepipe-serving"]["static_configs"][0]["targets"] == [f"serving:{serving_port}"]
    assert jobs["tradepipe-serving"]["metrics_path"] == "/metrics"
    assert jobs["node"]["static_configs"][0]["targets"] == ["node-exporter:9100"]
    # the rules select these jobs by name
    selected = set(re.findall(r'job="([^"]+)"', " ".join(r["expr"] for r in _rules())))
    assert "tradepipe-serving" in selected and selected <= set(jobs)


def test_amtool_checks_the_alertmanager_config() -> None:
    out = run("amtool", "check-config", str(ALERTMANAGER))
    assert out.returncode == 0, out.stdout + out.stderr
    config = yaml.safe_load(ALERTMANAGER.read_text())
    receivers = {r["name"]: r for r in config["receivers"]}
    assert receivers[config["route"]["receiver"]]["webhook_configs"][0]["send_resolved"] is True
    alerts = {rule["alert"] for rule in _rules()}
    for inhibit in config["inhibit_rules"]:
        for matcher in inhibit["source_matchers"] + inhibit["target_matchers"]:
            name = re.fullmatch(r'alertname="(\w+)"', matcher)
            assert name is None or name.group(1) in alerts, matcher


def test_the_stage_textfile_reaches_node_exporter() -> None:
    """In compose, the scheduler (where stages run) writes the textfile where node-exporter reads it."""
    services = yaml.safe_load((ROOT / "docker/docker-compose.yml").read_text())["services"]

    def in_workspace(service: str, path: str) -> str:
        mounts = [v.split(":") for v in services[service]["volumes"]]
        (target,) = [m[1] for m in mounts if m[0] == "workspace"]
        assert path.startswith(target + "/"), f"{service}: {path} is outside the workspace volume ({target})"
        return path.removeprefix(target)

    written = services["airflow-scheduler"]["environment"]["TRADEPIPE_METRICS_TEXTFILE_DIR"]
    flag = "--collector.textfile.directory="
    (read,) = [a.removeprefix(flag) for a in services["node-exporter"]["command"] if a.startswith(flag)]
    assert in_workspace("airflow-scheduler", written) == in_workspace("node-exporter", read)
