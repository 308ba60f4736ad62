"""Where the stages read and write, relative to the project root: the same paths as ``dvc.yaml``."""

from __future__ import annotations

from pathlib import Path

# ingest
BARS = Path("data/raw/bars.parquet")
BENCHMARK = Path("data/raw/benchmark.parquet")  # the index the backtest compares against
MANIFEST = Path("data/raw/manifest.json")
ARCHIVE = Path("data/raw/archive")
# validate
VALIDATION_REPORT = Path("reports/validation")
# features
FEATURES = Path("data/features/features.parquet")
LABELS = Path("data/features/labels.parquet")
# tune, train
BEST_CONFIG = Path("models/tune/best_config.json")
PREDICTOR = Path("models/predictor")
PREDICTOR_RUN = Path("models/predictor/mlflow.json")
LIVE_PREDICTOR = Path("models/predictor/live")  # the last walk-forward refit: behind the latest forecasts
PREDICTIONS = Path("data/predictions/predictions.parquet")  # walk-forward, out-of-sample
TRAIN_REPORT = Path("reports/train")
CALIBRATION = TRAIN_REPORT / "calibration.png"
# rl_train
AGENT = Path("models/agent")
AGENT_TUNING = Path("models/agent/tuning.json")  # the agents' hyperparameters and how many trials chose them
# backtest
BACKTEST_METRICS = Path("metrics/backtest.json")
BACKTEST_REPORT_DIR = Path("reports/backtest")
BACKTEST_REPORT = BACKTEST_REPORT_DIR / "report.html"
BACKTEST_RETURNS = Path("data/backtest/returns.parquet")
DECISIONS = Path("data/backtest/decisions.parquet")  # agent targets decided at each close
LIVE_AGENT = Path("models/agent_live")  # the live window's fit: what register registers
EQUITY_PLOT = Path("plots/equity.csv")
# register
DECISION = Path("reports/register.json")
# paper trading (not DVC outputs: the trade store and the simulated broker's own ledger live beside mlflow.db)
TRADES_DB = Path("trades.db")
PAPER_BROKER_DB = Path("paper_broker.db")
LIVE_BARS = Path("live_bars.parquet")  # bars posted to the serving app's account endpoints, after data/raw/bars
