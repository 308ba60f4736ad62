"""The trial ledger: every configuration evaluated on the way to a backtest, with its validation-window Sharpe.

A trial is one configuration scored on a validation window: a predictor tuning trial (the Sharpe of its
forecast strategy, :func:`forecast_sharpe`), an RL tuning trial, each algorithm fitted with each seed, the
pipeline run itself (the ensemble it deploys), and every promotion attempt (the register stage records the
policy it tried with its out-of-sample Sharpe on the test span, the figure the attempt was judged on; its run
carries the span tag too). Each has a key, the SHA-256 of what defines it, so a rerun of the same
configuration is the same trial, not a new one. The ledger of a test span is the union, over every pipeline run
that reached the backtest on that span, of the trials it counted: the backtest and register stages' MLflow runs
carry them (tag :data:`SPAN_TAG`, one metric ``ledger.<kind>.<key>`` per trial, the annualised validation
Sharpe; a promotion's out-of-sample one), so the ledger lives where every run of the project is recorded, shared
by a team's tracking server and by DVC
experiments, and survives any workspace. The earliest record of a key wins, so a rerun reads back exactly the
ledger the first run wrote.

The Deflated Sharpe ratio (Bailey & López de Prado 2014) deflates by the expected maximum Sharpe of N trials
with zero true Sharpe, SR0 = sqrt(V) ((1 - γ) Φ⁻¹(1 - 1/N) + γ Φ⁻¹(1 - 1/(N e))), with N the ledger's trial
count and V the *measured* sample variance of its trials' annualised Sharpes (0 when N < 2).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from mlflow import MlflowClient
from tradepipe.core.execution import execute
from tradepipe.core.metrics import expected_max_sharpe, sharpe_ratio
from tradepipe.core.types import Array

Kind = Literal["predictor", "rl_tune", "rl_seed", "pipeline_run", "promotion"]
KINDS: tuple[Kind, ...] = ("predictor", "rl_tune", "rl_seed", "pipeline_run", "promotion")
SPAN_TAG = "tradepipe.ledger.span"
PREFIX = "ledger."


def trial_key(kind: Kind, what: Mapping[str, Any]) -> str:
    """The trial's key: the first 16 hex digits of the SHA-256 of ``kind`` and ``what`` (JSON, sorted keys)."""
    text = json.dumps({"kind": kind, **what}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Trial:
    """One configuration evaluated: its kind, key and annualised validation-window Sharpe."""

    kind: Kind
    key: str
    val_sharpe: float

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "key": self.key, "val_sharpe": self.val_sharpe}

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> Trial:
        kind = str(record["kind"])
        if kind not in KINDS:
            raise ValueError(f"ledger trial kind {kind!r} is not one of {KINDS}")
        return cls(kind, str(record["key"]), float(record["val_sharpe"]))


@dataclass(frozen=True)
class Ledger:
    """The trials behind a strategy: N, the measured variance of their Sharpes and the DSR's benchmark SR0."""

    trials: tuple[Trial, ...]

    @classmethod
    def merged(cls, *groups: Iterable[Trial]) -> Ledger:
        """The union of ``groups`` (oldest first): one trial per key, the earliest record of it."""
        seen: dict[str, Trial] = {}
        for group in groups:
            for trial in group:
                seen.setdefault(trial.key, trial)
        return cls(tuple(seen.values()))

    @property
    def n(self) -> int:
        return max(1, len(self.trials))

    @property
    def variance(self) -> float:
        """Sample variance (ddof=1) of the trials' annualised Sharpes; 0 with fewer than two trials."""
        values = np.array([t.val_sharpe for t in self.trials], dtype=np.float64)
        return float(np.var(values, ddof=1)) if values.size > 1 else 0.0

    @property
    def sr0(self) -> float:
        """Expected maximum annualised Sharpe of N zero-skill trials with this variance (the DSR's benchmark)."""
        return expected_max_sharpe(self.n, math.sqrt(self.variance))

    def counts(self) -> dict[str, int]:
        """Trials per kind."""
        return {kind: sum(t.kind == kind for t in self.trials) for kind in KINDS}

    def summary(self) -> dict[str, float]:
        """The figures the backtest reports: N, variance, SR0 (annualised) and the count per kind."""
        return {"n_trials": float(self.n), "sharpe_variance": self.variance, "sr0": self.sr0,
                **{f"n_{kind}": float(count) for kind, count in self.counts().items()}}

    def mlflow_metrics(self) -> dict[str, float]:
        """One metric per trial, ``ledger.<kind>.<key>``: what :func:`read_ledger` reads back."""
        return {f"{PREFIX}{t.kind}.{t.key}": t.val_sharpe for t in self.trials}


def span_key(symbols: list[str], first: pd.Timestamp, last: pd.Timestamp) -> str:
    """The test span a ledger belongs to: dates, number of symbols and a digest of them."""
    digest = hashlib.sha256(",".join(sorted(symbols)).encode()).hexdigest()[:12]
    return f"{first.date()}..{last.date()} {len(symbols)} symbols {digest}"


def backtest_span(timestamps: pd.DatetimeIndex, symbols: list[str], val_end: str) -> str:
    """The span of the backtest on bars ``timestamps``: its fills, from the second bar after ``split.val_end`` (the
    first only decides) to the last; the key the backtest's ledger and the registered versions carry."""
    first = int(timestamps.searchsorted(pd.Timestamp(val_end, tz="UTC") + pd.Timedelta(days=1)))
    return span_key(symbols, timestamps[first + 1], timestamps[-1])


def read_ledger(client: MlflowClient, experiment_id: str, span: str) -> list[Trial]:
    """Trials recorded by the finished runs of ``span`` in the experiment (backtest and register), oldest first."""
    runs = client.search_runs([experiment_id], f"tags.`{SPAN_TAG}` = '{span}' and attributes.status = 'FINISHED'",
                              order_by=["attributes.start_time ASC"], max_results=50_000)
    trials = []
    for run in runs:
        for name, value in sorted(run.data.metrics.items()):
            if name.startswith(PREFIX) and name.count(".") == 2:
                _, kind, key = name.split(".")
                if kind in KINDS:
                    trials.append(Trial(kind, key, float(value)))
    return trials


def top_quartile(forecasts: Array) -> Array:
    """Equal weight in the ``max(1, N // 4)`` assets with the highest forecast at each bar, cash when none is
    positive: the backtest's ``forecast_top_quartile`` schedule (``backtest.strategies.top_k_forecast``, which
    tuning may not import; a test holds the two equal)."""
    k = max(1, forecasts.shape[1] // 4)
    ranks = np.argsort(-forecasts, axis=1)[:, :k]
    out = np.zeros_like(forecasts, dtype=np.float64)
    np.put_along_axis(out, ranks, 1.0 / k, axis=1)
    out[~(forecasts > 0).any(axis=1)] = 0.0
    return out


def forecast_sharpe(forecasts: npt.ArrayLike, returns: Array, cost_rate: float) -> float:
    """Annualised Sharpe of the forecast strategy (:func:`top_quartile`) over bars (T, N): decided on
    ``forecasts[t]``, filled at close t+1 as every strategy, from the first fill on. NaN forecasts (no sample)
    count as 0, as the backtest's market does."""
    f = np.nan_to_num(np.asarray(forecasts, dtype=np.float64), nan=0.0)
    return sharpe_ratio(pd.Series(execute(top_quartile(f), returns, cost_rate).net_returns[1:]))
