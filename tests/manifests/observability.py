"""Shared by the observability tests: the metric names the project exports, the Debian binaries they run."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests import ROOT
from tradepipe.runtime.stage_metrics import record_stage_run
from tradepipe.serving.metrics import ServingMetrics

PROMETHEUS_DIR = ROOT / "docker/prometheus"
RULES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))
ALERTMANAGER = ROOT / "docker/alertmanager/alertmanager.yml"
DASHBOARDS = sorted((ROOT / "docker/grafana/dashboards").glob("*.json"))
PROMETHEUS_OWN = {"up", "ALERTS"}  # series Prometheus itself writes
# Grafana's variables, replaced by values of their type so that a query is plain PromQL
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h", "$account": ".*"}
_SUFFIXES = {"counter": ["_total"], "gauge": [""], "histogram": ["_bucket", "_count", "_sum"], "info": ["_info"]}


def binary(name: str) -> str:
    """The path of a Debian package's binary, or a failure that says how to install it."""
    path = shutil.which(name)
    assert path, (f"{name} not found: apt-get install -y prometheus prometheus-alertmanager "
                  "(Debian's packages; .ci/run installs them)")
    return path


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([binary(args[0]), *args[1:]], capture_output=True, text=True, cwd=cwd, timeout=60)


def exported_metric_names() -> set[str]:
    """Every sample name the serving app's registry and the stage-run textfile can expose."""
    names = {f"{family.name}{suffix}" for family in ServingMetrics().registry.collect()
             for suffix in _SUFFIXES[family.type]}
    with tempfile.TemporaryDirectory() as tmp:
        text = record_stage_run(Path(tmp), "train", "succeeded", 1.0).read_text()
    samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
    return names | {s.name for s in samples if not s.name.endswith("_created")}


def promql(expr: str) -> str:
    """A Grafana query as plain PromQL: its variables replaced (see GRAFANA_VARIABLES)."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"unknown Grafana variable in {expr}: add it to GRAFANA_VARIABLES"
    return expr


def tradepipe_metrics(expr: str) -> set[str]:
    """The tradepipe metric names a PromQL expression selects (labels never start with ``tradepipe_``)."""
    return set(re.findall(r"\btradepipe_[a-z0-9_]+", expr))
