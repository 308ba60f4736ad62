"""Monitoring math (PSI, KS), retrain thresholds, asset-event decisions and the webhook relay's signature check."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from mlflow import MlflowClient
from tradepipe.config import MonitorParams
from tradepipe.monitoring import feature_drift, ks_statistic, psi
from tradepipe.monitoring.decision import drifted_features, retrain_reasons
from tradepipe.monitoring.job import drift_reference
from tradepipe.monitoring.performance import performance
from tradepipe.orchestration.events import champion_changed, new_data
from tradepipe.orchestration.relay import register_champion_webhook, relay_router, sign
from tradepipe.registry.versions import FIT_END_TAG, FIT_START_TAG, TRAIN_END_TAG
from tradepipe.serving import create_app

GRID = stats.norm.ppf((np.arange(20_000) + 0.5) / 20_000)  # a standard normal sample without sampling noise


def test_psi_of_identical_samples_is_zero() -> None:
    assert psi(GRID, GRID) == 0.0


def test_psi_of_shifted_normal_matches_hand_computation() -> None:
    edges = stats.norm.ppf(np.linspace(0, 1, 11))                 # deciles of N(0, 1): 0.1 in every bin
    recent_share = np.diff(stats.norm.cdf(edges - 0.5))            # N(0.5, 1) in the same bins
    expected = float(np.sum((recent_share - 0.1) * np.log(recent_share / 0.1)))
    assert expected == pytest.approx(0.2377, abs=1e-4)
    assert psi(GRID, GRID + 0.5, bins=10) == pytest.approx(expected, abs=2e-3)


def test_psi_ignores_nan_and_handles_empty_bins() -> None:
    assert psi(np.r_[GRID, np.nan], GRID) == pytest.approx(0.0, abs=1e-9)
    far = psi(GRID, GRID + 10.0)  # every recent value in the top bin: finite thanks to the floor
    assert np.isfinite(far) and far > 5.0


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=60), st.lists(st.floats(-1e6, 1e6), min_size=1,
                                                                          max_size=60))
def test_ks_statistic_equals_scipy(a: list[float], b: list[float]) -> None:
    assert ks_statistic(a, b) == pytest.approx(stats.ks_2samp(a, b).statistic, abs=1e-12)


def test_ks_of_shifted_normals_is_the_cdf_gap() -> None:
    # sup |Phi(x) - Phi(x - 0.5)| is reached at x = 0.25.
    assert ks_statistic(GRID, GRID + 0.5) == pytest.approx(2 * stats.norm.cdf(0.25) - 1, abs=1e-3)


def test_feature_drift_table_and_thresholds() -> None:
    ref = pd.DataFrame({"a": GRID, "b": GRID})
    cur = pd.DataFrame({"a": GRID, "b": GRID + 0.5})
    drift = feature_drift(ref, cur, ["a", "b"])
    assert drift.loc["a", "psi"] == 0.0 and drift.loc["a", "ks"] == pytest.approx(0.0, abs=1e-12)
    assert drift.loc["b", "psi"] == pytest.approx(0.2377, abs=3e-3)
    cfg = MonitorParams(max_psi=0.2, max_ks=0.5, max_drifted_features=0, min_sharpe=0.0, max_drawdown=0.1)
    assert drifted_features(drift, cfg) == ["b"]
    assert retrain_reasons(drift, {"sharpe": 0.5, "max_drawdown": 0.05}, cfg) == [
        "1 features drifted (> 0): b"]
    calm = cfg.model_copy(update={"max_drifted_features": 1})
    assert retrain_reasons(drift, {"sharpe": 0.5, "max_drawdown": 0.05}, calm) == []
    assert retrain_reasons(drift, {"sharpe": -0.2, "max_drawdown": 0.3}, calm) == [
        "live Sharpe -0.200 < 0.0", "live max drawdown 0.300 > 0.1"]
    # no out-of-sample bars yet: only drift is judged
    assert retrain_reasons(drift, {}, calm) == []
    assert retrain_reasons(drift, {}, cfg) == ["1 features drifted (> 0): b"]
    aged = MonitorParams(max_model_age_days=30)
    assert retrain_reasons(drift, {}, aged, 30.0) == []
    assert retrain_reasons(drift, {}, aged, 30.6) == ["champion registered 31 days ago (> max_model_age_days 30)"]
    assert retrain_reasons(drift, {}, MonitorParams(max_model_age_days=None), 1e6) == []


def test_performance_of_known_returns() -> None:
    returns = pd.Series([0.01, -0.02, 0.01, 0.0])
    perf = performance(returns)
    assert perf["total_return"] == pytest.approx(1.01 * 0.98 * 1.01 - 1)
    assert perf["max_drawdown"] == pytest.approx(0.02)
    assert perf["sharpe"] == pytest.approx(0.0)
    assert perf["bars"] == 4.0


def test_new_data_event_only_when_the_hash_changes() -> None:
    manifest = {"sha256": "aa", "rows": 10, "source": "s", "symbols": {}}
    assert new_data(None, manifest) == {"sha256": "aa", "rows": 10, "source": "s"}
    assert new_data(manifest, manifest) is None
    assert new_data(manifest, {**manifest, "sha256": "bb"}) == {"sha256": "bb", "rows": 10, "source": "s"}
    assert new_data(manifest, None) is None
    current = {"content_sha256": "cc", "rows": 12, "source": "s"}  # the manifest's newer key
    assert new_data(manifest, current) == {"sha256": "cc", "rows": 12, "source": "s"}
    assert new_data(current, current) is None


def test_champion_event_only_for_a_newly_promoted_version() -> None:
    decision = {"agent_version": "3", "predictor_version": "3", "promoted": True, "checks": {}}
    assert champion_changed(None, decision) == {"agent_version": "3", "predictor_version": "3"}
    assert champion_changed(decision, decision) is None  # DVC skipped register: same decision file
    assert champion_changed({**decision, "agent_version": "2"}, {**decision, "promoted": False}) is None
    assert champion_changed({**decision, "agent_version": "2"}, decision) is not None


SECRET = "s3cret"


def _relay(tmp_path: Path) -> tuple[TestClient, list[dict[str, object]]]:
    triggered: list[dict[str, object]] = []

    def trigger(conf: dict[str, object]) -> str:
        triggered.append(conf)
        return f"run-{len(triggered)}"

    # Mounted in the serving app as `tradepipe serve` does; its lifespan (model loading) is not entered.
    app = create_app("models:/tradepipe-agent@champion", tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", token="t",
                     relay=relay_router(SECRET, trigger))
    return TestClient(app), triggered


def _delivery(data: dict[str, str], entity: str = "model_version_alias") -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"entity": entity, "action": "created", "timestamp": "t", "data": data}).encode()
    return body, _signed(body)


def _signed(body: bytes) -> dict[str, str]:
    """Headers of a fresh delivery of ``body`` signed with SECRET."""
    ts = str(int(time.time()))
    return {"X-MLflow-Delivery-Id": "d-1", "X-MLflow-Timestamp": ts,
            "X-MLflow-Signature": sign(SECRET, "d-1", ts, body), "Content-Type": "application/json"}


def test_relay_signature_matches_mlflows_own_signer() -> None:
    from mlflow.webhooks.delivery import _generate_hmac_signature

    assert sign(SECRET, "d", "17", b'{"a": 1}') == _generate_hmac_signature(SECRET, "d", "17", '{"a": 1}')


def test_relay_triggers_deploy_on_a_valid_champion_delivery(tmp_path: Path) -> None:
    client, triggered = _relay(tmp_path)
    body, headers = _delivery({"name": "tradepipe-agent", "alias": "champion", "version": "7"})
    response = client.post("/v1/webhooks/mlflow", content=body, headers=headers)
    assert response.status_code == 200 and response.json() == {"triggered": "run-1"}
    assert triggered == [{"version": "7", "source": "mlflow-webhook"}]


def test_relay_ignores_other_aliases_and_models(tmp_path: Path) -> None:
    client, triggered = _relay(tmp_path)
    for data in ({"name": "tradepipe-agent", "alias": "challenger", "version": "7"},
                 {"name": "tradepipe-predictor", "alias": "champion", "version": "7"}):
        body, headers = _delivery(data)
        assert client.post("/v1/webhooks/mlflow", content=body, headers=headers).json() == {"triggered": None}
    assert triggered == []


@pytest.mark.parametrize("tamper", ["body", "signature", "missing", "stale", "wrong-secret"])
def test_relay_refuses_bad_signatures(tamper: str, tmp_path: Path) -> None:
    client, triggered = _relay(tmp_path)
    body, headers = _delivery({"name": "tradepipe-agent", "alias": "champion", "version": "7"})
    if tamper == "body":
        body = body.replace(b'"7"', b'"8"')
    elif tamper == "signature":
        headers["X-MLflow-Signature"] = headers["X-MLflow-Signature"][:-4] + "AAA="
    elif tamper == "missing":
        del headers["X-MLflow-Signature"]
    elif tamper == "stale":
        old = str(int(time.time()) - 3600)
        headers.update({"X-MLflow-Timestamp": old, "X-MLflow-Signature": sign(SECRET, "d-1", old, body)})
    else:
        headers["X-MLflow-Signature"] = sign("other", "d-1", headers["X-MLflow-Timestamp"], body)
    response = client.post("/v1/webhooks/mlflow", content=body, headers=headers)
    assert response.status_code == 401
    assert triggered == []


@pytest.mark.parametrize(("body", "status", "message"), [
    (b"{not json", 400, "webhook body is not valid JSON"),
    (b"\xff\xfe", 400, "webhook body is not valid JSON"),
    (b'["a list"]', 400, "must be a JSON object"),
    (b'{"entity": "model_version_alias", "action": "created", "data": null}', 400, "must be a JSON object"),
    (b'{"entity": "model_version_alias", "action": "created", "data": {"name": "tradepipe-agent", '
     b'"alias": "champion"}}', 422, "without a model version number in data.version: 'None'"),
    (b'{"entity": "model_version_alias", "action": "created", "data": {"name": "tradepipe-agent", '
     b'"alias": "champion", "version": {"x": 1}}}', 422, "without a model version number"),
])
def test_relay_answers_a_signed_malformed_body_with_a_client_error(body: bytes, status: int, message: str,
                                                                 tmp_path: Path) -> None:
    client, triggered = _relay(tmp_path)
    response = client.post("/v1/webhooks/mlflow", content=body, headers=_signed(body))
    assert response.status_code == status
    assert message in response.json()["detail"]
    assert triggered == []


def test_champion_webhook_is_registered_in_the_sqlite_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A relay on loopback: MLflow allows plain http and private addresses only when told to.
    monkeypatch.setenv("MLFLOW_WEBHOOK_ALLOWED_SCHEMES", "http,https")
    monkeypatch.setenv("MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS", "true")
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    url = "http://127.0.0.1:8000/v1/webhooks/mlflow"
    webhook = client.get_webhook(register_champion_webhook(client, url, SECRET))
    assert webhook.url == url
    assert [(e.entity.value, e.action.value) for e in webhook.events] == [("model_version_alias", "created")]


def test_the_drift_reference_is_the_live_policys_fit_window() -> None:
    days = pd.bdate_range("2010-01-01", "2020-12-31", tz="UTC")
    features = pd.DataFrame({"timestamp": days, "symbol": "A", "x": np.arange(len(days), dtype=float)})
    tags = {TRAIN_END_TAG: "2012-12-31", FIT_START_TAG: "2017-01-02T00:00:00+00:00",
            FIT_END_TAG: "2020-12-31T00:00:00+00:00"}
    rows, text = drift_reference(features, tags, "2011-12-31")
    assert rows["timestamp"].min() == pd.Timestamp("2017-01-02", tz="UTC") and rows["timestamp"].max() == days[-1]
    assert text == "the live policy's fit window 2017-01-02..2020-12-31"
    old, why = drift_reference(features, {TRAIN_END_TAG: "2012-12-31"}, "2011-12-31")   # before the tags existed
    assert old["timestamp"].max() == pd.Timestamp("2012-12-31", tz="UTC") and "no fit window tags" in why
    assert drift_reference(features, {}, "2011-12-30")[0]["timestamp"].max() == pd.Timestamp("2011-12-30", tz="UTC")
