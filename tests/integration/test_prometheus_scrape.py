"""The observability loop with Debian's real servers: the serving app (real uvicorn, a real registry) and
node-exporter (the stage-run textfile) scraped by a real Prometheus running the repository's rules, which sends a
firing alert through a real Alertmanager (the repository's routing) to a webhook receiver on loopback.

The configs are the repository's (docker/prometheus/prometheus.yml, docker/alertmanager/alertmanager.yml), with
only the targets, the webhook URL and the intervals changed for a test that takes seconds.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import uvicorn
import yaml

from tests import ROOT
from tests.manifests.observability import DASHBOARDS, RULES, binary, promql
from tradepipe.runtime.stage_metrics import record_stage_run
from tradepipe.serving import create_app
from tradepipe.serving.metrics import AccountSnapshot, ServingMetrics

pytestmark = pytest.mark.prometheus
TOKEN = "s3cret"
SIGNALS = 3  # POST /v1/signals requests the test sends


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except (httpx.HTTPError, KeyError, IndexError, ValueError) as exc:
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last error: {last!r})")


class Receiver(BaseHTTPRequestHandler):
    """Alertmanager's webhook: every payload POSTed is kept on the server."""

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.payloads.append(json.loads(body))  # type: ignore[attr-defined]
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def app_url(registry: str) -> Iterator[tuple[str, ServingMetrics]]:
    """The serving app under real uvicorn on a loopback port: (base URL, its metrics)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    app = create_app(tracking_uri=registry, token=TOKEN, poll_seconds=0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    _wait("uvicorn to start", lambda: server.started)
    _wait("the model to load", lambda: app.state.models.wait_loaded(1))  # the app loads it in the background
    yield f"http://127.0.0.1:{sock.getsockname()[1]}", app.state.metrics
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    server.payloads = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/alerts", server.payloads  # type: ignore[attr-defined]
    server.shutdown()


def _start(cmd: list[str], log: Path, ready: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        _wait(f"{Path(cmd[0]).name} at {ready}", lambda: process.poll() is None and httpx.get(ready).status_code == 200)
    except AssertionError:
        process.kill()
        raise AssertionError(f"{cmd[0]} did not start:\n{log.read_text()[-3000:]}") from None
    return process


@pytest.fixture(scope="module")
def stack(app_url: tuple[str, ServingMetrics], receiver: tuple[str, list[dict[str, Any]]],
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """node-exporter, Alertmanager and Prometheus on free ports, configured from the repository's files; the
    Prometheus URL."""
    tmp = tmp_path_factory.mktemp("prometheus")
    record_stage_run(tmp / "textfile", "train", "succeeded", 12.5)
    record_stage_run(tmp / "textfile", "train", "succeeded", 11.0)
    node, alertmanager, prometheus = _free_port(), _free_port(), _free_port()

    am_config = yaml.safe_load((ROOT / "docker/alertmanager/alertmanager.yml").read_text())
    am_config["route"].update(group_wait="0s", group_interval="1s")
    for route in [am_config["route"], *am_config["route"]["routes"]]:
        receivers = {r["name"]: r for r in am_config["receivers"]}
        receivers[route["receiver"]]["webhook_configs"][0]["url"] = receiver[0]
    (tmp / "alertmanager.yml").write_text(yaml.safe_dump(am_config))

    config = yaml.safe_load((ROOT / "docker/prometheus/prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(ROOT / "docker/prometheus" / f) for f in config["rule_files"]]
    config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = [f"127.0.0.1:{alertmanager}"]
    targets = {"tradepipe-serving": app_url[0].removeprefix("http://"), "node": f"127.0.0.1:{node}",
               "prometheus": f"127.0.0.1:{prometheus}"}
    for job in config["scrape_configs"]:
        job["static_configs"][0]["targets"] = [targets[job["job_name"]]]
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))

    processes = [
        _start([binary("prometheus-node-exporter"), f"--web.listen-address=127.0.0.1:{node}",
                "--collector.disable-defaults", "--collector.textfile",
                f"--collector.textfile.directory={tmp / 'textfile'}"], tmp / "node.log", f"http://127.0.0.1:{node}/metrics"),
        _start([binary("prometheus-alertmanager"), f"--config.file={tmp / 'alertmanager.yml'}",
                f"--storage.path={tmp / 'am'}", f"--web.listen-address=127.0.0.1:{alertmanager}",
                "--cluster.listen-address="], tmp / "alertmanager.log", f"http://127.0.0.1:{alertmanager}/-/ready"),
        _start([binary("prometheus"), f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prometheus}"], tmp / "prometheus.log",
               f"http://127.0.0.1:{prometheus}/-/ready"),
    ]
    yield f"http://127.0.0.1:{prometheus}"
    for process in processes:
        process.terminate()
    for process in processes:
        process.wait(timeout=10)


def _query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    body = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}).json()
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def _value(prometheus: str, expr: str) -> float | None:
    result = _query(prometheus, expr)
    return float(result[0]["value"][1]) if len(result) == 1 else None


def _payload(bars: pd.DataFrame) -> list[dict[str, Any]]:
    return [{"timestamp": ts.isoformat(), "symbol": sym, "close": close}
            for ts, sym, close in bars[["timestamp", "symbol", "close"]].itertuples(index=False)]


def test_prometheus_scrapes_the_app_and_the_stage_textfile(stack: str, app_url: tuple[str, ServingMetrics],
        bars: pd.DataFrame) -> None:
    base, metrics = app_url
    min_bars = httpx.get(f"{base}/health").json()["min_bars"]
    body = {"bars": _payload(bars.groupby("symbol").tail(min_bars + 5))}
    for _ in range(SIGNALS):
        response = httpx.post(f"{base}/v1/signals", json=body, headers={"Authorization": f"Bearer {TOKEN}"},
                              timeout=30)
        assert response.status_code == 200, response.text
    assert httpx.post(f"{base}/v1/signals", json=body).status_code == 401
    metrics.record_account(AccountSnapshot("demo", 95_000.0, 100_000.0, 0.75, 23_750.0, False, datetime.now(UTC), 1,
                                           expected_equity=96_000.0))
    metrics.count_orders("demo", "submitted", 4)

    ok = 'tradepipe_http_requests_total{job="tradepipe-serving", endpoint="/v1/signals", method="POST", status="200"}'
    _wait(f"{ok} == {SIGNALS}", lambda: _value(stack, ok) == SIGNALS)
    assert _value(stack, ok.replace('"200"', '"401"')) == 1.0
    assert _value(stack, 'tradepipe_model_version{name="tradepipe-agent"}') == 1.0
    _wait("the account's gauges", lambda: _value(stack, 'tradepipe_account_drawdown{account="demo"}') is not None)
    assert _value(stack, 'tradepipe_account_drawdown{account="demo"}') == pytest.approx(0.05)
    assert _value(stack, 'tradepipe_account_orders_total{account="demo", status="submitted"}') == 4.0
    assert _value(stack, 'tradepipe_http_request_duration_seconds_count{endpoint="/v1/signals"}') == SIGNALS + 1
    stage = 'tradepipe_stage_runs_total{job="node", stage="train", status="succeeded"}'
    assert _wait(stage, lambda: _value(stack, stage)) == 2.0
    assert _value(stack, 'tradepipe_stage_duration_seconds{stage="train"}') == 11.0
    every_target = {"tradepipe-serving": "1", "node": "1", "prometheus": "1"}  # each job's first scrape may lag
    _wait("every target up", lambda: {r["metric"]["job"]: r["value"][1] for r in _query(stack, "up")} == every_target)


def test_the_rules_evaluate_and_the_dashboards_queries_run(stack: str) -> None:
    def evaluated() -> list[dict[str, Any]]:
        groups = httpx.get(f"{stack}/api/v1/rules").json()["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        return rules if all(rule["lastEvaluation"] != "0001-01-01T00:00:00Z" for rule in rules) else []

    rules = _wait("every rule evaluated", evaluated)
    assert {(rule["name"], rule["health"]) for rule in rules} == {(rule["name"], "ok") for rule in rules}
    assert len(rules) == sum(len(g["rules"]) for path in RULES for g in yaml.safe_load(path.read_text())["groups"])
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        for expr in [t["expr"] for p in dashboard["panels"] if p["type"] != "row" for t in p["targets"]]:
            _query(stack, promql(expr))  # the real engine runs it over live data without an error


def test_a_firing_alert_reaches_the_webhook(stack: str, app_url: tuple[str, ServingMetrics],
        receiver: tuple[str, list[dict[str, Any]]]) -> None:
    _, metrics = app_url
    metrics.record_account(AccountSnapshot("halted-account", 50_000.0, 50_000.0, 0.0, 50_000.0, True,
                                           datetime.now(UTC), 1))

    def delivered() -> list[dict[str, Any]]:
        return [alert for payload in receiver[1] for alert in payload["alerts"]
                if alert["labels"]["alertname"] == "TradepipeKillSwitchEngaged" and alert["status"] == "firing"]

    (alert,) = _wait("TradepipeKillSwitchEngaged at the webhook", delivered)
    assert alert["labels"]["account"] == "halted-account" and alert["labels"]["severity"] == "critical"
    assert alert["annotations"]["summary"] == "Paper account halted-account is halted: the kill switch is engaged"
    assert not [a for p in receiver[1] for a in p["alerts"] if a["labels"].get("account") == "demo"]
