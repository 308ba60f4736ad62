"""The stage registry: each stage's params sections, dependencies and outputs, in pipeline order.

``dvc.yaml`` says the same to DVC; ``tests/contracts`` checks that the two agree (order, params, deps, outs)
and that each stage's deps cover every module its script imports. The CLI, the ``training_pipeline`` DAG
and the tests take the stage names from here; ``run_stage`` logs exactly the declared params and refuses a
stage that reads a section it did not declare (DVC would not rerun it when that section changes).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tradepipe import paths

__all__ = ["SHARED_CODE", "STAGES", "STAGE_NAMES", "Stage", "stage"]

# Code every stage runs: the package root (it registers the gym ids), the schema, paths and settings, the
# bottom layer, what loads params for a stage (runtime.params resolves them with data and envs) and tracking.
SHARED_CODE = ("src/tradepipe/__init__.py", "src/tradepipe/registration.py", "src/tradepipe/config.py",
               "src/tradepipe/paths.py", "src/tradepipe/settings.py", "src/tradepipe/core",
               "src/tradepipe/runtime/__init__.py", "src/tradepipe/runtime/params.py",
               "src/tradepipe/runtime/stage.py", "src/tradepipe/runtime/stages.py",
               "src/tradepipe/runtime/stage_metrics.py", "src/tradepipe/runtime/tracking.py", "src/tradepipe/data",
               "src/tradepipe/envs")


@dataclass(frozen=True)
class Stage:
    """One DVC stage = one ``python -m pipelines.<name>`` = one MLflow run."""

    name: str
    params: tuple[str, ...]     # params.yaml sections it reads: DVC tracks them, MLflow logs them
    packages: tuple[str, ...]   # tradepipe packages it runs beyond SHARED_CODE
    inputs: tuple[Path, ...]    # earlier stages' outputs it reads
    outs: tuple[Path, ...]      # what it writes (besides metrics/<name>.json)

    @property
    def script(self) -> str:
        """The stage's module file, ``pipelines/<name>.py``."""
        return f"pipelines/{self.name}.py"

    @property
    def deps(self) -> tuple[str, ...]:
        """Every path DVC hashes before running it: its script, the code it runs and its inputs."""
        return (self.script, *SHARED_CODE, *(f"src/tradepipe/{p}" for p in self.packages),
                *(str(p) for p in self.inputs))

    @property
    def metrics(self) -> Path:
        """Its figures, for ``dvc metrics show``."""
        return Path("metrics") / f"{self.name}.json"


STAGES: tuple[Stage, ...] = (
    Stage("ingest", ("data",), (), (),
          (paths.BARS, paths.BENCHMARK, paths.MANIFEST, paths.ARCHIVE)),
    Stage("validate", ("validate",), ("validation",), (paths.BARS,), (paths.VALIDATION_REPORT,)),
    Stage("features", ("data", "features"), ("features",), (paths.BARS, paths.VALIDATION_REPORT),
          (paths.FEATURES, paths.LABELS)),
    Stage("tune", ("seed", "split", "features", "tune", "train", "costs"), ("features", "models", "tuning"),
          (paths.FEATURES, paths.LABELS), (paths.BEST_CONFIG,)),
    Stage("train", ("seed", "split", "features", "train", "parallel"), ("features", "models"),
          (paths.BARS, paths.FEATURES, paths.LABELS, paths.BEST_CONFIG),
          (paths.PREDICTOR, paths.PREDICTIONS, paths.TRAIN_REPORT)),
    Stage("rl_train", ("seed", "split", "features", "rl_train", "risk", "costs", "parallel"),
          ("features", "models", "risk", "agents", "tuning"),
          (paths.BARS, paths.FEATURES, paths.PREDICTIONS, paths.PREDICTOR), (paths.AGENT,)),
    Stage("backtest", ("seed", "data", "split", "features", "rl_train", "risk", "costs", "backtest",
                       "parallel"),
          ("features", "models", "risk", "agents", "backtest", "tuning"),
          (paths.BARS, paths.BENCHMARK, paths.FEATURES, paths.PREDICTIONS, paths.PREDICTOR, paths.BEST_CONFIG,
           paths.AGENT),
          (paths.BACKTEST_REPORT_DIR, paths.BACKTEST_RETURNS, paths.DECISIONS, paths.LIVE_AGENT, paths.EQUITY_PLOT)),
    Stage("register", ("split", "register", "backtest", "costs"),
          ("features", "models", "risk", "agents", "registry", "backtest", "tuning"),
          (paths.BARS, paths.BACKTEST_RETURNS, paths.BACKTEST_METRICS, paths.LIVE_AGENT, paths.PREDICTOR),
          (paths.DECISION,)),
)
STAGE_NAMES: tuple[str, ...] = tuple(s.name for s in STAGES)


def stage(name: str) -> Stage:
    """The stage called ``name``; ValueError listing the known ones otherwise."""
    for s in STAGES:
        if s.name == name:
            return s
    raise ValueError(f"unknown stage {name!r}; choose one of {', '.join(STAGE_NAMES)}")
