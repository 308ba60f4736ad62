"""Grafana dashboards as code: every query parses as PromQL (promtool, through a rules file), reads only metrics the
project exports and uses the provisioned data source; the provisioning matches the compose stack."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import ROOT
from tests.manifests.observability import DASHBOARDS, exported_metric_names, promql, run, tradepipe_metrics

pytestmark = pytest.mark.prometheus

GRAFANA = ROOT / "docker/grafana"
PANELS = {"Pipeline stage runs", "Account equity: live against the backtest expectation", "Drawdown",
          "Gross exposure and cash", "Orders per day", "Serving latency"}


def _datasource() -> dict[str, Any]:
    (source,) = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())["datasources"]
    return dict(source)


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def _queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target and annotation."""
    queries = [(f"panel {p['title']!r} {t['refId']}", t["expr"]) for p in _panels(dashboard) for t in p["targets"]]
    return queries + [(f"annotation {a['name']!r}", a["expr"]) for a in dashboard["annotations"]["list"]]


@pytest.fixture(scope="module", params=DASHBOARDS, ids=lambda p: p.name)
def dashboard(request: pytest.FixtureRequest) -> dict[str, Any]:
    return dict(json.loads(Path(request.param).read_text()))


def test_every_query_parses_as_promql(dashboard: dict[str, Any], tmp_path: Path) -> None:
    queries = _queries(dashboard)
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"dashboard:query_{i}", "expr": promql(expr)}
                                                        for i, (_, expr) in enumerate(queries)]}]}
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump(rules))
    out = run("promtool", "check", "rules", str(path))
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(queries)} rules found" in out.stdout


def test_promtool_refuses_a_broken_query(tmp_path: Path) -> None:
    """The parse check has teeth."""
    path = tmp_path / "broken.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "d", "rules": [
        {"record": "dashboard:query_0", "expr": "histogram_quantile(0.99, sum by (le) (rate(x[1m]))"}]}]}))
    assert run("promtool", "check", "rules", str(path)).returncode != 0


def test_queries_read_only_exported_metrics(dashboard: dict[str, Any]) -> None:
    exported = exported_metric_names()
    templated = [v["query"]["query"] for v in dashboard["templating"]["list"]]
    for where, expr in [*_queries(dashboard), *(("variable", q) for q in templated)]:
        named = tradepipe_metrics(expr)
        assert named <= exported, f"{where} reads {sorted(named - exported)}, which nothing exports"
    for panel in _panels(dashboard):  # every panel shows a tradepipe metric (the annotation reads ALERTS)
        assert all(tradepipe_metrics(t["expr"]) for t in panel["targets"]), panel["title"]


def test_every_query_uses_the_provisioned_datasource(dashboard: dict[str, Any]) -> None:
    source = {"type": _datasource()["type"], "uid": _datasource()["uid"]}
    used = [p["datasource"] for p in _panels(dashboard)] + [t["datasource"] for p in _panels(dashboard)
                                                           for t in p["targets"]]
    used += [a["datasource"] for a in dashboard["annotations"]["list"]]
    used += [v["datasource"] for v in dashboard["templating"]["list"]]
    assert all(u == source for u in used), [u for u in used if u != source]


def test_the_issues_panels_are_there(dashboard: dict[str, Any]) -> None:
    panels = {p["title"]: p for p in _panels(dashboard)}
    assert set(panels) >= PANELS
    latency = " ".join(t["expr"] for t in panels["Serving latency"]["targets"])
    assert "histogram_quantile(0.99" in latency and "tradepipe_http_request_duration_seconds_bucket" in latency
    equity = {m for t in panels["Account equity: live against the backtest expectation"]["targets"]
              for m in tradepipe_metrics(t["expr"])}
    assert equity == {"tradepipe_account_equity", "tradepipe_account_expected_equity"}
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert all(p["gridPos"]["x"] + p["gridPos"]["w"] <= 24 for p in dashboard["panels"])
    assert dashboard["uid"] and not dashboard["editable"]


def test_provisioning_matches_the_compose_stack() -> None:
    compose = yaml.safe_load((ROOT / "docker/docker-compose.yml").read_text())["services"]
    mounts = dict(v.split(":")[:2] for v in compose["grafana"]["volumes"])
    (provider,) = yaml.safe_load((GRAFANA / "provisioning/dashboards/tradepipe.yml").read_text())["providers"]
    assert mounts["./grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    url = re.fullmatch(r"http://([\w-]+):(\d+)", _datasource()["url"])
    assert url and url.group(1) in compose and url.group(1) == "prometheus"
    assert compose["prometheus"]["ports"] == [f"127.0.0.1:{url.group(2)}:{url.group(2)}"]
    scrape = yaml.safe_load((ROOT / "docker/prometheus/prometheus.yml").read_text())["global"]["scrape_interval"]
    assert _datasource()["jsonData"]["timeInterval"] == scrape
    for name in ("prometheus", "grafana", "alertmanager", "node-exporter"):
        image = compose[name]["image"]
        assert re.fullmatch(r"[\w/-]+:v?\d+\.\d+\.\d+", image), f"{name}: pin the image to a release, not {image}"
