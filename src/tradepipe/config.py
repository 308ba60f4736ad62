"""params.yaml's schema: typed, frozen sections, with errors that name the key and say what to do.

Schema only: nothing here imports the rest of tradepipe. What only the library can decide (``features.ohlcv:
null`` from the source's columns, a reward's own parameter checks) is resolved by ``tradepipe.runtime.params``
where a stage loads its params.
"""

from __future__ import annotations

import datetime as dt
import difflib
import itertools
import re
from collections.abc import MutableMapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    model_validator,
)


class ConfigError(ValueError):
    """params.yaml is missing, malformed or holds an invalid value."""


_DATE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})")


def _calendar_date(value: Any) -> Any:
    """A date as ISO ``YYYY-MM-DD`` text; an unquoted YAML date is taken too. Anything else is refused."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value.isoformat()
    if not isinstance(value, str):
        raise ValueError(f"expected a date written as \"YYYY-MM-DD\", got {value!r}")
    match = _DATE.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"{value!r} is not a date: write it as \"YYYY-MM-DD\", e.g. \"2014-12-31\"")
    try:
        return dt.date(*map(int, match.groups())).isoformat()
    except ValueError as exc:  # month 13, February 30, ...
        raise ValueError(f"{value!r} is not a calendar date ({exc}): write a real day as \"YYYY-MM-DD\"") from None


# Strict scalars: YAML gives ints, floats and booleans natively, so ``max_epochs: true`` or ``"3"`` is a mistake
# to refuse, not to coerce (to 1, to 3). A float field still takes an int (``cost_bps: 10``), not a boolean.
Int = StrictInt
Bool = StrictBool
Float = Annotated[float, Field(strict=True)]
# A calendar date, kept as ISO text (``"2014-1-5"`` becomes ``"2014-01-05"``, so dates order as text too).
Date = Annotated[str, BeforeValidator(_calendar_date)]


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
    auto_adjust: Bool = True


class DataParams(_Section):
    source: str = "skfolio_sp500"
    benchmark: str | None = "skfolio_sp500_index"  # buy-and-hold reference for the backtest
    symbols: list[str] = Field(default_factory=list)
    start: Date = "1990-01-01"
    end: Date = "2022-12-31"
    path: str | None = None  # source 'files': a .csv/.parquet file or a folder of them
    format: FormatParams = FormatParams()
    s3: S3Params = S3Params()
    yfinance: YFinanceParams = YFinanceParams()


class SplitParams(_Section):
    # The predictor's selection window (tune's trials and their validation Sharpes) is (select_end, train_end]: it
    # ends before the RL window (train_end, val_end] starts, so the agent trains on forecasts nothing was chosen on.
    # None: tune validates on the RL window (the old layout).
    select_end: Date | None = None
    train_end: Date
    val_end: Date
    embargo: Int = Field(0, ge=0)  # bars skipped after each boundary, on top of the label-horizon purge


class ValidateParams(_Section):
    # Simple return |close/prev - 1| of one bar. 0.7 catches decimal/unit errors (x10, /10, x2) yet
    # passes the largest real move in the bundled data: RRC -66.7% on 1990-04-10 (12 to 4 ticks of
    # 1/8 dollar in a thinly traded small cap). An unadjusted 2:1 split (-50%) can't be told from a
    # real crash (AAPL -52% on 2000-09-29) by this threshold alone.
    max_abs_return: Float = Field(0.7, gt=0)
    min_rows_per_symbol: Int = Field(300, ge=1)
    # Sessions of the universe's own bar grid (timestamps at which any symbol has a bar) missing between
    # two consecutive bars of a symbol: market-wide closures (9/11) miss no session; works for hourly bars.
    # The bundled 20-stock universe misses none; 5 (a trading week) flags a symbol halted or dropped.
    # A one-symbol universe has nothing to compare with, so it never misses a session.
    max_gap_sessions: Int = Field(5, ge=0)
    # Optional boolean column whose true rows are known large moves, exempt from max_abs_return.
    return_flag_column: str | None = None
    # Bars in a row with an identical close. RRC's close stood still for up to 69 sessions in
    # 1990-93 (it rarely traded then), so the default only catches feeds frozen for more than about
    # a quarter; use ~5 for liquid universes or intraday bars.
    max_stale_run: Int = Field(70, ge=1)


class SentimentParams(_Section):
    path: str | None = None  # headlines (.csv/.parquet, local or s3://bucket/key); None: no sentiment features
    endpoint_url: str | None = None  # for an s3:// path on an S3-compatible store
    close_time: str = "16:00"  # a daily bar's close, local time (intraday bars close at their own timestamp)
    timezone: str = "America/New_York"  # of close_time, and of published_at values written without an offset


class FeatureParams(_Section):
    indicators: list[str]  # close-only indicators, always built
    ohlcv_indicators: list[str] = Field(default_factory=list)  # built only when ``ohlcv`` is true
    ohlcv: Bool | None = None  # None: true when the source's bars have open/high/low/volume (runtime.params)
    return_horizons: list[Int] = Field(default_factory=lambda: [1, 5, 21])
    volatility_window: Int = Field(21, ge=2)
    ranks: list[str] = Field(default_factory=list)  # features ranked across the universe at each timestamp
    label_horizon: Int = Field(5, ge=1)
    sentiment: SentimentParams = SentimentParams()


class SearchDim(_Section):
    type: Literal["loguniform", "uniform", "choice", "randint"]
    low: Float | None = None
    high: Float | None = None
    values: list[Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _integer_randint_bounds(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("type") == "randint":
            for bound in ("low", "high"):
                value = data.get(bound)
                if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                    raise ValueError(f"a 'randint' dimension samples integers in [low, high): '{bound}' must be an "
                                     f"integer, got {value!r}")
        return data

    @model_validator(mode="after")
    def _check(self) -> SearchDim:
        if self.type == "choice":
            if not self.values:
                raise ValueError("a 'choice' dimension needs a non-empty 'values' list")
            if self.low is not None or self.high is not None:
                raise ValueError("a 'choice' dimension takes 'values' only: remove 'low'/'high'")
            return self
        if self.values is not None:
            raise ValueError(f"a '{self.type}' dimension takes 'low' and 'high': remove 'values' (or use 'choice')")
        if self.low is None or self.high is None or self.low >= self.high:
            raise ValueError(f"a '{self.type}' dimension needs 'low' < 'high', got low={self.low}, high={self.high}")
        if self.type == "loguniform" and self.low <= 0:
            raise ValueError(f"a 'loguniform' dimension needs 0 < 'low' < 'high', got low={self.low}: use a positive "
                             "'low' (or 'uniform' for a range that includes 0)")
        return self


# the predictor's hyperparameters: the network's keyword arguments (defaults where absent) and the two every trial
# needs (a choice of one value fixes one); tune.search_space names only these
MODEL_KEYS = ("conv_filters", "kernel_size", "lstm_hidden", "lstm_layers", "dropout", "attention", "dilations")
TRIAL_KEYS = ("lr", "seq_len")


class TuneParams(_Section):
    num_samples: Int = Field(ge=1)
    max_epochs: Int = Field(ge=1)
    grace_period: Int = Field(1, ge=1)
    cpus: Int = Field(2, ge=1)
    address: str | None = None  # an existing Ray cluster; None starts a local one
    search_space: dict[str, SearchDim]

    @model_validator(mode="after")
    def _check(self) -> TuneParams:
        tunable = (*TRIAL_KEYS, *MODEL_KEYS)
        for name in self.search_space:
            if name not in tunable:
                close = difflib.get_close_matches(name, tunable, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise ValueError(f"search_space: {name!r} is not a hyperparameter of the predictor; {hint}it takes "
                                 f"{', '.join(tunable)}")
        missing = [name for name in TRIAL_KEYS if name not in self.search_space]
        if missing:
            raise ValueError(f"search_space: {missing} missing: every trial needs them (a choice of one value fixes "
                             "one, e.g. seq_len: {type: choice, values: [20]})")
        return self


class WalkForwardParams(_Section):
    start: Date | None = None  # first refit date; None: no forecasts before the validation window
    refit_years: Int = Field(4, ge=1)


class TrainParams(_Section):
    task: Literal["regression", "classification"] = "regression"
    walk_forward: WalkForwardParams = WalkForwardParams()
    # tuned: train the tuned epoch count (tune's best_epoch, chosen on the selection window) with no early stopping;
    # early_stopping: stop on the validation window (train_end, val_end], i.e. on the RL window, with patience
    epochs: Literal["tuned", "early_stopping"] = "tuned"
    max_epochs: Int = Field(ge=1)
    batch_size: Int = Field(ge=1)
    patience: Int = Field(ge=1)
    weight_decay: Float = Field(0.0, ge=0)
    grad_clip: Float = Field(1.0, gt=0)
    max_train_samples: Int = Field(ge=100)


Algo = Literal["sac", "td3", "ppo"]


class AgentParams(_Section):
    """Hyperparameters of one SB3 algorithm; SAC/TD3 ignore ``n_steps``, PPO ignores ``buffer_size``."""

    learning_rate: Float = Field(3e-4, gt=0)
    batch_size: Int = Field(256, ge=1)
    buffer_size: Int = Field(50_000, ge=1)
    n_steps: Int = Field(256, ge=2)         # PPO: steps per env between updates
    n_envs: Int = Field(1, ge=1)            # books stepped together in PortfolioVecEnv
    gamma: Float = Field(0.99, gt=0, le=1)
    net_arch: list[Int] = Field(default_factory=lambda: [64, 64])


class RLTuneParams(_Section):
    """Optional Ray Tune + Optuna + ASHA search over each algorithm's hyperparameters (off while num_samples is 0)."""

    num_samples: Int = Field(0, ge=0)       # trials per algorithm
    reports: Int = Field(4, ge=1)           # validation Sharpe checkpoints per trial (ASHA's time axis)
    grace_period: Int = Field(1, ge=1)      # checkpoints before ASHA may stop a trial
    cpus: Int = Field(2, ge=1)
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
    seeds: Int = Field(1, ge=1)  # fits per algorithm, seeds seed, seed+1, ...; the first seed's fit is deployed
    validation_fraction: Float = Field(0.25, gt=0, lt=1)  # last part of the RL window, held out to pick/blend
    total_timesteps: Int = Field(ge=1)                    # per agent
    episode_length: Int = Field(252, ge=1)
    lookback: Int = Field(1, ge=1)
    reward: Literal["log_return", "differential_sharpe", "drawdown_penalty"] = "log_return"  # training reward
    reward_params: dict[str, Float] = Field(default_factory=dict)  # keyword arguments of that reward
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

    long_only: Bool = True
    max_weight: Float = Field(0.25, gt=0)                  # per-asset |weight| cap
    max_gross: Float = Field(1.0, gt=0)                    # sum of |weights| cap
    target_vol: Float | None = Field(0.20, gt=0)           # annualised, ex ante from trailing covariance
    vol_window: Int = Field(63, ge=2)
    max_vol_scale: Float = Field(1.0, gt=0)                # vol targeting never scales exposure up beyond this
    max_drawdown: Float | None = Field(0.25, gt=0, lt=1)   # breaker: cut to cash beyond this drawdown of equity
    breaker_cooldown: Int = Field(21, ge=1)                # bars in cash before re-entry (peak reset at re-entry)
    stop_loss: Float | None = Field(0.25, gt=0, lt=1)      # per position, from its entry price
    take_profit: Float | None = Field(1.0, gt=0)
    stop_cooldown: Int = Field(5, ge=1)                    # bars a stopped asset stays flat
    turbulence_window: Int = Field(252, ge=2)              # trailing bars for the mean/covariance and quantile
    turbulence_quantile: Float | None = Field(0.99, gt=0, lt=1)  # threshold: trailing quantile of turbulence
    turbulence_scale: Float = Field(0.0, ge=0, le=1)       # exposure multiplier while turbulent (0: all cash)
    min_periods: Int = Field(21, ge=2)                     # history needed before vol/turbulence rules act
    no_trade_band: Float = Field(0.0, ge=0)                # |change| of an asset's weight below this: not traded


class CostParams(_Section):
    cost_bps: Float = Field(10.0, ge=0)
    slippage_bps: Float = Field(5.0, ge=0)
    borrow_bps: Float = Field(0.0, ge=0)  # annual fee on the short notional held (backtest execution)

    @property
    def rate(self) -> float:
        """Total proportional cost per unit of turnover, as a fraction."""
        return (self.cost_bps + self.slippage_bps) / 1e4


class BacktestWindowParams(_Section):
    """Walk-forward windows of the backtest: agents are refitted per window and traded on its test slice."""

    scheme: Literal["rolling", "expanding"] = "rolling"  # rolling: train_years before each slice; expanding: all
    train_years: Int = Field(4, ge=1)                    # rolling history (expanding: from split.train_end)
    test_years: Int = Field(2, ge=1)                     # test slice length and step between windows
    warmup_bars: Int = Field(63, ge=0)                   # bars rolled out before a slice to warm the risk manager


class BacktestParams(_Section):
    periods_per_year: Int = 252
    risk_free_rate: Float = 0.0
    walk_forward: BacktestWindowParams = BacktestWindowParams()
    benchmark_window: Int = Field(252, ge=20)            # trailing bars the inverse-vol/MV/HRP benchmarks fit on
    holdout_years: Float = Field(1.0, ge=0)              # last years of the test span: reported apart, only the gate
    cash_rate: Float = 0.0                               # annual rate earned on cash, charged on negative cash
    no_forecast_ablation: Bool = True                    # also walk the agent forward without the forecast (first seed)


class RegisterParams(_Section):
    min_sharpe: Float = 0.0
    min_dsr: Float = Field(0.95, ge=0, le=1)  # Deflated Sharpe: P(true Sharpe > best of the ledger's N trials by luck)
    max_drawdown: Float = Field(0.5, gt=0, le=1)
    must_beat_benchmark: Bool = True
    min_holdout_sharpe: Float | None = 0.0  # the final check: the agent's Sharpe on the holdout (null: not checked)
    min_compare_bars: Int = Field(63, ge=2)  # fresh bars (after both fits) needed to compare with the champion


class MonitorParams(_Section):
    """Thresholds of the daily monitor; crossing any of them triggers training_pipeline."""

    recent_bars: Int = Field(63, ge=10)         # the live window: the most recent bars of data/raw/bars.parquet
    psi_bins: Int = Field(10, ge=2)
    max_psi: Float = Field(0.25, gt=0)         # per feature, recent window vs the training window
    max_ks: Float = Field(0.3, gt=0, le=1)     # Kolmogorov-Smirnov statistic, per feature
    max_drifted_features: Int = Field(3, ge=0)  # retrain when more features than this cross max_psi or max_ks
    min_sharpe: Float = 0.0                     # annualized Sharpe of the champion over the live window
    max_drawdown: Float = Field(0.15, gt=0, le=1)
    max_model_age_days: Int | None = Field(90, ge=1)  # retrain a champion registered longer ago (null: never)


class ParallelParams(_Section):
    """Independent fits (the walk-forward refits of the predictor, every agent fit) as Ray tasks (core.parallel)."""

    backend: Literal["ray", "serial"] = "ray"     # serial: one after another in the stage's process (same results)
    address: str | None = None                    # an existing Ray cluster (host:6379 or ray://host:10001); None: local
    cpus: Int | None = Field(None, ge=1)          # a local Ray's CPUs (None: every core)
    cpus_per_task: Int = Field(1, ge=1)           # each fit's CPUs and torch threads (results depend on it)


class TradingParams(_Section):
    """Paper trading (``tradepipe trade``): the trade store, order sizing, the fail-safes checked before orders go."""

    db_url: str | None = None                  # SQLAlchemy URL of the trade store; null: sqlite file beside mlflow.db
    warmup_bars: Int = Field(504, ge=1)        # bars of history before an account's first decision (features, risk)
    fractional: Bool = True                    # fractional shares; false: whole shares (orders rounded toward zero)
    min_order_notional: Float = Field(0.0, ge=0)  # orders smaller than this (account currency) are not sent
    no_trade_band: Float = Field(0.0, ge=0, lt=1)  # |target - current weight| below this: no order for the asset
    max_order_notional: Float | None = Field(None, gt=0)  # fail-safe: larger orders are rejected (null: off)
    max_position_weight: Float = Field(0.5, gt=0)  # fail-safe: |position| / equity after the fill
    price_band: Float = Field(0.5, gt=0)       # fail-safe: |close / last close - 1| beyond this refuses the bar
    max_stale_sessions: Int = Field(5, ge=0)   # fail-safe: newest bar older than this many weekdays refuses the step
    daily_loss_limit: Float | None = Field(0.1, gt=0, lt=1)  # kill switch when equity falls more in one bar
    reconcile_tolerance: Float = Field(1e-6, ge=0)  # broker vs store: largest |qty| or |cash| difference accepted
    ood_threshold: Float | None = Field(4.0, gt=0)  # OOD guard: observation score beyond this flags the decision
    ood_action: Literal["hold", "cash"] = "hold"   # a flagged decision keeps the book as it is, or goes to cash


class Params(_Section):
    seed: Int = 42
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
    trading: TradingParams = TradingParams()
    parallel: ParallelParams = ParallelParams()

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _check_dates(self) -> Params:
        chain = [("data.start", self.data.start), ("split.train_end", self.split.train_end),
                 ("split.val_end", self.split.val_end), ("data.end", self.data.end)]
        for (before, early), (after, late) in itertools.pairwise(chain):
            if dt.date.fromisoformat(late) <= dt.date.fromisoformat(early):
                raise ValueError(f"{after} ({late}) must be after {before} ({early}): dates must satisfy "
                                 "data.start < split.train_end < split.val_end < data.end")
        select = self.split.select_end
        if select is not None and not (dt.date.fromisoformat(self.data.start) < dt.date.fromisoformat(select)
                                       < dt.date.fromisoformat(self.split.train_end)):
            raise ValueError(f"split.select_end ({select}) must be after data.start ({self.data.start}) and before "
                             f"split.train_end ({self.split.train_end}): the predictor is selected on "
                             "(select_end, train_end], before the RL window (or set it to null)")
        start = self.train.walk_forward.start
        if start is not None and not (dt.date.fromisoformat(self.data.start) < dt.date.fromisoformat(start)
                                      <= dt.date.fromisoformat(self.split.val_end)):
            raise ValueError(f"train.walk_forward.start ({start}) must be after data.start ({self.data.start}) and "
                             f"no later than split.val_end ({self.split.val_end}): its forecasts must cover the RL "
                             "window, which begins after split.train_end (or set it to null)")
        return self


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The section class a field holds (``X``, ``X | None``), if it holds one."""
    for candidate in (annotation, *get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _keys_at(loc: tuple[int | str, ...]) -> list[str]:
    """The keys params.yaml may hold in the section at ``loc`` (empty where that is not a known section)."""
    model: type[BaseModel] | None = Params
    parts = list(loc)
    while parts and model is not None:
        name = parts.pop(0)
        field = next((f for n, f in model.model_fields.items() if name in (n, f.alias)), None)
        if field is None:
            return []
        annotation = field.annotation
        if getattr(annotation, "__origin__", None) is dict:  # a mapping of names to sections: skip the name
            if not parts:
                return []
            parts.pop(0)
            annotation = get_args(annotation)[1]
        model = _model_of(annotation)
    if model is None:
        return []
    return [f.alias or n for n, f in model.model_fields.items()]


_TYPE_HINTS = {
    "int_type": "write a whole number, unquoted (not true/false, not 2.0)",
    "float_type": "write a number, unquoted (not true/false)",
    "bool_type": "write true or false, unquoted",
    "string_type": "write text (quote it if YAML reads it as something else)",
}


def _explain(err: Any) -> str:
    """One pydantic error as ``key: what is wrong, and what to do``."""
    loc = tuple(err["loc"])
    key = ".".join(str(p) for p in loc)
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        close = difflib.get_close_matches(str(loc[-1]), _keys_at(loc[:-1]), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"{key}: unknown key: {hint}fix its spelling or remove it"
    if err["type"] == "missing":
        return f"{key}: missing: this key is required"
    value = err.get("input")
    if not isinstance(value, (dict, list)) and err["type"] not in ("value_error", "assertion_error"):
        msg = f"{msg}, got {value!r}"
    if err["type"] in _TYPE_HINTS:
        msg = f"{msg}: {_TYPE_HINTS[err['type']]}"
    return f"{key}: {msg}" if key else msg


def invalid_params(source: str | Path, exc: ValidationError) -> ConfigError:
    """A schema ValidationError as the ConfigError ``load_params`` raises: a line per bad key, saying what to do."""
    return ConfigError("\n".join([f"{source}: invalid params:", *(f"  {_explain(err)}" for err in exc.errors())]))


def read_params_yaml(text: str) -> Any:
    """params.yaml's data read as YAML 1.2, as DVC reads and rewrites it (``dvc exp run -S`` drops the quotes of
    ``"16:00"``, which YAML 1.1 would read as the number 960)."""
    from ruamel.yaml import YAML

    return YAML(typ="safe", pure=True).load(text)


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml; raise ConfigError naming the bad key."""
    from ruamel.yaml.error import YAMLError

    path = Path(path)
    try:
        raw = read_params_yaml(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: not found; run from the project root or pass --params") from exc
    except (yaml.YAMLError, YAMLError) as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return Params.model_validate(raw or {})
    except ValidationError as exc:
        raise invalid_params(path, exc) from exc


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
