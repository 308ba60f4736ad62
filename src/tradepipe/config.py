"""params.yaml's schema: typed, frozen sections, with errors that name the key and say what to do.

Schema only: nothing here imports the rest of tradepipe. What only the library can decide (``features.ohlcv:
null`` from the source's columns, a reward's own parameter checks) is resolved by ``tradepipe.runtime.params``
where a stage loads its params.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class ConfigError(ValueError):
    """params.yaml is missing, malformed or holds an invalid value."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrackingParams(_Section):
    uri: str = "sqlite:///mlflow.db"
    experiment: str = "tradepipe"


class FormatParams(_Section):
    """How to read bars files (sources ``files`` and ``s3``)."""

    layout: Literal["long", "wide"] = "long"  # long: a row per (timestamp, symbol); wide: a close column per symbol
    columns: dict[str, str] = Field(default_factory=dict)  # file column -> canonical name
    timezone: str = "UTC"  # zone of timestamps written without an offset


class S3Params(_Section):
    bucket: str | None = None
    prefix: str = ""
    endpoint_url: str | None = None  # MinIO or another S3-compatible store; None: AWS
    region: str | None = None


class YFinanceParams(_Section):
    interval: str = "1d"
    auto_adjust: bool = True


class DataParams(_Section):
    source: str = "skfolio_sp500"
    benchmark: str | None = "skfolio_sp500_index"  # buy-and-hold reference for the backtest
    symbols: list[str] = Field(default_factory=list)
    start: str = "1990-01-01"
    end: str = "2022-12-31"
    path: str | None = None  # source 'files': a .csv/.parquet file or a folder of them
    format: FormatParams = FormatParams()
    s3: S3Params = S3Params()
    yfinance: YFinanceParams = YFinanceParams()


class SplitParams(_Section):
    train_end: str
    val_end: str
    embargo: int = Field(0, ge=0)  # bars skipped after each boundary, on top of the label-horizon purge


class ValidateParams(_Section):
    # Simple return |close/prev - 1| of one bar. 0.7 catches decimal/unit errors (x10, /10, x2) yet
    # passes the largest real move in the bundled data: RRC -66.7% on 1990-04-10 (12 to 4 ticks of
    # 1/8 dollar in a thinly traded small cap). An unadjusted 2:1 split (-50%) can't be told from a
    # real crash (AAPL -52% on 2000-09-29) by this threshold alone.
    max_abs_return: float = Field(0.7, gt=0)
    min_rows_per_symbol: int = Field(300, ge=1)
    # Sessions of the universe's own bar grid (timestamps at which any symbol has a bar) missing between
    # two consecutive bars of a symbol: market-wide closures (9/11) miss no session; works for hourly bars.
    # The bundled 20-stock universe misses none; 5 (a trading week) flags a symbol halted or dropped.
    # A one-symbol universe has nothing to compare with, so it never misses a session.
    max_gap_sessions: int = Field(5, ge=0)
    # Optional boolean column whose true rows are known large moves, exempt from max_abs_return.
    return_flag_column: str | None = None
    # Bars in a row with an identical close. RRC's close stood still for up to 69 sessions in
    # 1990-93 (it rarely traded then), so the default only catches feeds frozen for more than about
    # a quarter; use ~5 for liquid universes or intraday bars.
    max_stale_run: int = Field(70, ge=1)


class SentimentParams(_Section):
    path: str | None = None  # headlines (.csv/.parquet, local or s3://bucket/key); None: no sentiment features
    endpoint_url: str | None = None  # for an s3:// path on an S3-compatible store
    close_time: str = "16:00"  # a daily bar's close, local time (intraday bars close at their own timestamp)
    timezone: str = "America/New_York"  # of close_time, and of published_at values written without an offset


class FeatureParams(_Section):
    indicators: list[str]  # close-only indicators, always built
    ohlcv_indicators: list[str] = Field(default_factory=list)  # built only when ``ohlcv`` is true
    ohlcv: bool | None = None  # None: true when the source's bars have open/high/low/volume (runtime.params)
    return_horizons: list[int] = Field(default_factory=lambda: [1, 5, 21])
    volatility_window: int = Field(21, ge=2)
    ranks: list[str] = Field(default_factory=list)  # features ranked across the universe at each timestamp
    label_horizon: int = Field(5, ge=1)
    sentiment: SentimentParams = SentimentParams()


class SearchDim(_Section):
    type: Literal["loguniform", "uniform", "choice", "randint"]
    low: float | None = None
    high: float | None = None
    values: list[Any] | None = None

    @model_validator(mode="after")
    def _check(self) -> SearchDim:
        if self.type == "choice" and not self.values:
            raise ValueError("a 'choice' dimension needs a non-empty 'values' list")
        if self.type != "choice" and (self.low is None or self.high is None or self.low >= self.high):
            raise ValueError(f"a '{self.type}' dimension needs 'low' < 'high'")
        return self


class TuneParams(_Section):
    num_samples: int = Field(ge=1)
    max_epochs: int = Field(ge=1)
    grace_period: int = Field(1, ge=1)
    cpus: int = Field(2, ge=1)
    address: str | None = None  # an existing Ray cluster; None starts a local one
    search_space: dict[str, SearchDim]


class WalkForwardParams(_Section):
    start: str | None = None  # first refit date; None: no forecasts before the validation window
    refit_years: int = Field(4, ge=1)


class TrainParams(_Section):
    task: Literal["regression", "classification"] = "regression"
    walk_forward: WalkForwardParams = WalkForwardParams()
    max_epochs: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    patience: int = Field(ge=1)
    weight_decay: float = Field(0.0, ge=0)
    grad_clip: float = Field(1.0, gt=0)
    max_train_samples: int = Field(ge=100)


Algo = Literal["sac", "td3", "ppo"]


class AgentParams(_Section):
    """Hyperparameters of one SB3 algorithm; SAC/TD3 ignore ``n_steps``, PPO ignores ``buffer_size``."""

    learning_rate: float = Field(3e-4, gt=0)
    batch_size: int = Field(256, ge=1)
    buffer_size: int = Field(50_000, ge=1)
    n_steps: int = Field(256, ge=2)         # PPO: steps per env between updates
    n_envs: int = Field(1, ge=1)            # books stepped together in PortfolioVecEnv
    gamma: float = Field(0.99, gt=0, le=1)
    net_arch: list[int] = Field(default_factory=lambda: [64, 64])


class RLTuneParams(_Section):
    """Optional Ray Tune + Optuna + ASHA search over each algorithm's hyperparameters (off while num_samples is 0)."""

    num_samples: int = Field(0, ge=0)       # trials per algorithm
    reports: int = Field(4, ge=1)           # validation Sharpe checkpoints per trial (ASHA's time axis)
    grace_period: int = Field(1, ge=1)      # checkpoints before ASHA may stop a trial
    cpus: int = Field(2, ge=1)
    address: str | None = None              # an existing Ray cluster; None starts a local one
    search_space: dict[str, SearchDim] = Field(default_factory=dict)  # over AgentParams' scalar fields

    @model_validator(mode="after")
    def _check(self) -> RLTuneParams:
        unknown = set(self.search_space) - (set(AgentParams.model_fields) - {"net_arch"})
        if unknown:
            raise ValueError(f"search_space: {sorted(unknown)} are not tunable agent hyperparameters")
        return self


class RLParams(_Section):
    algos: list[Algo] = Field(default_factory=lambda: ["sac"], min_length=1)  # type: ignore[arg-type]
    ensemble: Literal["select", "blend"] = "select"
    validation_fraction: float = Field(0.25, gt=0, lt=1)  # last part of the RL window, held out to pick/blend
    total_timesteps: int = Field(ge=1)                    # per agent
    episode_length: int = Field(252, ge=1)
    lookback: int = Field(1, ge=1)
    reward: Literal["log_return", "differential_sharpe", "drawdown_penalty"] = "log_return"  # training reward
    reward_params: dict[str, float] = Field(default_factory=dict)  # keyword arguments of that reward
    sac: AgentParams = AgentParams()
    td3: AgentParams = AgentParams()
    ppo: AgentParams = AgentParams(learning_rate=3e-4, batch_size=64, n_steps=128, n_envs=8)
    tune: RLTuneParams = RLTuneParams()

    def agent(self, algo: Algo) -> AgentParams:
        """The hyperparameters of ``algo``."""
        return {"sac": self.sac, "td3": self.td3, "ppo": self.ppo}[algo]

    def with_agents(self, hyperparameters: dict[str, dict[str, Any]]) -> RLParams:
        """These params with some algorithms' hyperparameters replaced (e.g. by tuned ones), validated."""
        return RLParams.model_validate({**self.model_dump(), **hyperparameters})


class RiskParams(_Section):
    """Risk manager between every policy and the market (see tradepipe.risk); null disables a rule."""

    long_only: bool = True
    max_weight: float = Field(0.25, gt=0)                  # per-asset |weight| cap
    max_gross: float = Field(1.0, gt=0)                    # sum of |weights| cap
    target_vol: float | None = Field(0.20, gt=0)           # annualised, ex ante from trailing covariance
    vol_window: int = Field(63, ge=2)
    max_vol_scale: float = Field(1.0, gt=0)                # vol targeting never scales exposure up beyond this
    max_drawdown: float | None = Field(0.25, gt=0, lt=1)   # breaker: cut to cash beyond this drawdown of equity
    breaker_cooldown: int = Field(21, ge=1)                # bars in cash before re-entry (peak reset at re-entry)
    stop_loss: float | None = Field(0.25, gt=0, lt=1)      # per position, from its entry price
    take_profit: float | None = Field(1.0, gt=0)
    stop_cooldown: int = Field(5, ge=1)                    # bars a stopped asset stays flat
    turbulence_window: int = Field(252, ge=2)              # trailing bars for the mean/covariance and quantile
    turbulence_quantile: float | None = Field(0.99, gt=0, lt=1)  # threshold: trailing quantile of turbulence
    turbulence_scale: float = Field(0.0, ge=0, le=1)       # exposure multiplier while turbulent (0: all cash)
    min_periods: int = Field(21, ge=2)                     # history needed before vol/turbulence rules act


class CostParams(_Section):
    cost_bps: float = Field(10.0, ge=0)
    slippage_bps: float = Field(5.0, ge=0)

    @property
    def rate(self) -> float:
        """Total proportional cost per unit of turnover, as a fraction."""
        return (self.cost_bps + self.slippage_bps) / 1e4


class BacktestWindowParams(_Section):
    """Walk-forward windows of the backtest: agents are refitted per window and traded on its test slice."""

    scheme: Literal["rolling", "expanding"] = "rolling"  # rolling: train_years before each slice; expanding: all
    train_years: int = Field(4, ge=1)                    # rolling history (expanding: from split.train_end)
    test_years: int = Field(2, ge=1)                     # test slice length and step between windows
    warmup_bars: int = Field(63, ge=0)                   # bars rolled out before a slice to warm the risk manager


class BacktestParams(_Section):
    periods_per_year: int = 252
    risk_free_rate: float = 0.0
    walk_forward: BacktestWindowParams = BacktestWindowParams()
    benchmark_window: int = Field(252, ge=20)            # trailing bars the inverse-vol/MV/HRP benchmarks fit on


class RegisterParams(_Section):
    min_sharpe: float = 0.0
    min_dsr: float = Field(0.0, ge=0, le=1)  # Deflated Sharpe Ratio: P(true Sharpe > best of the trials by luck)
    max_drawdown: float = Field(0.5, gt=0, le=1)
    must_beat_benchmark: bool = True


class MonitorParams(_Section):
    """Thresholds of the daily monitor; crossing any of them triggers training_pipeline."""

    recent_bars: int = Field(63, ge=10)         # the live window: the most recent bars of data/raw/bars.parquet
    psi_bins: int = Field(10, ge=2)
    max_psi: float = Field(0.25, gt=0)         # per feature, recent window vs the training window
    max_ks: float = Field(0.3, gt=0, le=1)     # Kolmogorov-Smirnov statistic, per feature
    max_drifted_features: int = Field(3, ge=0)  # retrain when more features than this cross max_psi or max_ks
    min_sharpe: float = 0.0                     # annualized Sharpe of the champion over the live window
    max_drawdown: float = Field(0.15, gt=0, le=1)


class Params(_Section):
    seed: int = 42
    tracking: TrackingParams = TrackingParams()
    data: DataParams = DataParams()
    split: SplitParams
    validate_: ValidateParams = Field(default_factory=ValidateParams, alias="validate")
    features: FeatureParams
    tune: TuneParams
    train: TrainParams
    rl_train: RLParams
    risk: RiskParams = RiskParams()
    costs: CostParams = CostParams()
    backtest: BacktestParams = BacktestParams()
    register_: RegisterParams = Field(default_factory=RegisterParams, alias="register")
    monitor: MonitorParams = MonitorParams()

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _check_dates(self) -> Params:
        order = [self.data.start, self.split.train_end, self.split.val_end, self.data.end]
        if order != sorted(order):
            raise ValueError(
                "dates must satisfy data.start < split.train_end < split.val_end < data.end, got "
                + " < ".join(order)
            )
        return self


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml; raise ConfigError naming the bad key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: not found; run from the project root or pass --params") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return Params.model_validate(raw or {})
    except ValidationError as exc:
        lines = [f"{path}: invalid params:"]
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"])
            lines.append(f"  {key}: {err['msg']}")
        raise ConfigError("\n".join(lines)) from exc


def set_dotted(raw: MutableMapping[str, Any], dotted: str, value: Any) -> None:
    """Set ``a.b.c`` in a nested params mapping in place; the key must already exist."""
    node = raw
    *parents, leaf = dotted.split(".")
    for key in parents:
        if not isinstance(node.get(key), MutableMapping):
            raise ConfigError(f"override {dotted!r}: {key!r} is not a section of params.yaml")
        node = node[key]
    if leaf not in node:
        raise ConfigError(f"override {dotted!r}: no such key in params.yaml")
    node[leaf] = value
