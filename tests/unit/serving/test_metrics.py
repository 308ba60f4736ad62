"""ServingMetrics: the account, order and OOD metrics, read back from the real prometheus_client registry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tradepipe.serving.metrics import AccountSnapshot, ServingMetrics

AT = datetime(2024, 3, 8, 21, 0, tzinfo=UTC)


def snapshot(**changes: object) -> AccountSnapshot:
    base: dict[str, object] = {"account": "demo", "equity": 950_000.0, "peak_equity": 1_000_000.0,
                               "gross_exposure": 0.8, "cash": 190_000.0, "halted": False, "last_decision_at": AT,
                               "model_version": 3}
    return AccountSnapshot(**{**base, **changes})  # type: ignore[arg-type]


def value(metrics: ServingMetrics, sample: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(sample, labels)


def test_record_account_exports_every_gauge() -> None:
    metrics = ServingMetrics()
    metrics.record_account(snapshot(expected_equity=960_000.0))
    assert value(metrics, "tradepipe_account_equity", account="demo") == 950_000.0
    assert value(metrics, "tradepipe_account_expected_equity", account="demo") == 960_000.0
    assert value(metrics, "tradepipe_account_drawdown", account="demo") == pytest.approx(0.05)
    assert value(metrics, "tradepipe_account_gross_exposure", account="demo") == 0.8
    assert value(metrics, "tradepipe_account_cash", account="demo") == 190_000.0
    assert value(metrics, "tradepipe_account_halted", account="demo") == 0.0
    assert value(metrics, "tradepipe_account_last_decision_timestamp_seconds", account="demo") == 1709931600.0
    assert value(metrics, "tradepipe_account_model_version", account="demo") == 3.0
    for status in ("submitted", "filled", "rejected"):  # present at 0 before the first order
        assert value(metrics, "tradepipe_account_orders_total", account="demo", status=status) == 0.0


def test_accounts_are_separate_series_and_later_snapshots_overwrite() -> None:
    metrics = ServingMetrics()
    metrics.record_account(snapshot(expected_equity=1.0))
    metrics.record_account(snapshot(account="other", equity=2_000.0, peak_equity=2_000.0))
    metrics.record_account(snapshot(equity=1_100_000.0, peak_equity=1_100_000.0, halted=True, model_version=4))
    assert value(metrics, "tradepipe_account_equity", account="demo") == 1_100_000.0
    assert value(metrics, "tradepipe_account_drawdown", account="demo") == 0.0
    assert value(metrics, "tradepipe_account_halted", account="demo") == 1.0
    assert value(metrics, "tradepipe_account_model_version", account="demo") == 4.0
    assert value(metrics, "tradepipe_account_expected_equity", account="demo") is None  # no stale expectation
    assert value(metrics, "tradepipe_account_equity", account="other") == 2_000.0


def test_drawdown_is_never_negative() -> None:
    assert snapshot(equity=1_000_001.0).drawdown == 0.0  # a peak not yet updated with this bar's equity
    assert snapshot(equity=0.0).drawdown == 1.0


@pytest.mark.parametrize(("changes", "message"), [
    ({"account": ""}, "account is empty"),
    ({"equity": float("nan")}, "non-finite equity=nan"),
    ({"expected_equity": float("inf")}, "non-finite expected_equity=inf"),
    ({"peak_equity": 0.0}, "peak_equity must be > 0"),
    ({"last_decision_at": datetime(2024, 3, 8, 21, 0)}, "has no timezone"),
])
def test_bad_snapshots_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        snapshot(**changes)


def test_timestamps_in_any_timezone_are_unix_time() -> None:
    metrics = ServingMetrics()
    metrics.record_account(snapshot(last_decision_at=AT.astimezone(timezone(timedelta(hours=-5)))))
    assert value(metrics, "tradepipe_account_last_decision_timestamp_seconds", account="demo") == AT.timestamp()


def test_count_orders() -> None:
    metrics = ServingMetrics()
    metrics.count_orders("demo", "submitted", 5)
    metrics.count_orders("demo", "filled", 4)
    metrics.count_orders("demo", "rejected")
    metrics.count_orders("demo", "submitted", 2)
    assert value(metrics, "tradepipe_account_orders_total", account="demo", status="submitted") == 7.0
    assert value(metrics, "tradepipe_account_orders_total", account="demo", status="filled") == 4.0
    assert value(metrics, "tradepipe_account_orders_total", account="demo", status="rejected") == 1.0
    with pytest.raises(ValueError, match="'cancelled' is not one of submitted, filled, rejected"):
        metrics.count_orders("demo", "cancelled")
    with pytest.raises(ValueError, match="counted up"):
        metrics.count_orders("demo", "filled", -1)


def test_record_ood() -> None:
    metrics = ServingMetrics()
    metrics.record_ood("tradepipe-agent", 2.5)
    metrics.record_ood("tradepipe-agent", 1.25)
    assert value(metrics, "tradepipe_model_ood_score", name="tradepipe-agent") == 1.25
    with pytest.raises(ValueError, match="must be finite"):
        metrics.record_ood("tradepipe-agent", float("nan"))


def test_reload_outcomes_start_at_zero_and_the_exposition_names() -> None:
    metrics = ServingMetrics()
    for outcome in ("swapped", "unchanged", "failed"):
        assert value(metrics, "tradepipe_model_reloads_total", outcome=outcome) == 0.0
    metrics.reloaded("failed", None)
    assert value(metrics, "tradepipe_model_reloads_total", outcome="failed") == 1.0
    metrics.record_account(snapshot())
    metrics.count_orders("demo", "filled", 2)
    families = {f.name: f.type for f in text_string_to_metric_families(generate_latest(metrics.registry).decode())}
    assert families["tradepipe_account_orders"] == "counter"
    assert families["tradepipe_account_halted"] == "gauge"
    assert families["tradepipe_model_reloads"] == "counter"
