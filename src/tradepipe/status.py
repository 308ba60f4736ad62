"""What ``tradepipe status`` shows: one glance at the project's last run, as data (``collect``) and as rich tables
(``render``).

Each stage's state (up to date, or what changed, from ``dvc status --json``) and a few of its last run's figures
(``metrics/<stage>.json``); the backtest's headline table (the agent against the main benchmarks); the
registry's champion and challenger with the gate's checks; the paper accounts (from ``tradepipe.trading.summary``
where that module exists); and where to look next.
"""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from tradepipe.config import ConfigError, load_params
from tradepipe.paths import BACKTEST_REPORT, DECISION, VALIDATION_REPORT
from tradepipe.registry.card import HEADLINE_METRICS, fmt, headline
from tradepipe.registry.versions import AGENT_MODEL, CHALLENGER, CHAMPION, PREDICTOR_MODEL
from tradepipe.runtime.stages import STAGE_NAMES
from tradepipe.runtime.tracking import resolve_tracking_uri

# stage -> (metrics key or fnmatch pattern, label): a curated few per stage (the backtest has its own table)
STAGE_METRICS: dict[str, list[tuple[str, str]]] = {
    "ingest": [("rows", "rows"), ("symbols", "symbols"), ("bars_per_symbol_min", "fewest bars of a symbol"),
               ("appended_rows", "rows appended"), ("changed_values", "history values changed")],
    "validate": [("rows", "rows"), ("expectations", "expectations"), ("failed", "failed")],
    "features": [("features", "features"), ("indicators", "indicators"), ("ohlcv", "OHLCV indicators"),
                 ("sentiment", "sentiment"), ("complete_rows", "complete rows")],
    "tune": [("n_trials", "trials"), ("best_val_loss", "best validation loss")],
    "train": [("walk_forward_ic", "walk-forward IC"), ("walk_forward_rank_ic", "walk-forward rank IC"),
              ("walk_forward_directional_accuracy", "walk-forward hit rate"), ("test_ic", "test IC"),
              ("best_epoch", "best epoch")],
    "rl_train": [("ensemble.val_sharpe", "ensemble validation Sharpe"),
                 ("equal_weight.val_sharpe", "1/N validation Sharpe"), ("*.val_sharpe", "{} validation Sharpe"),
                 ("timesteps", "timesteps per agent")],
    "backtest": [("walk_forward.windows", "walk-forward windows"), ("agent.sharpe", "agent Sharpe"),
                 ("agent.dsr", "agent Deflated Sharpe")],
    "register": [("promoted", "promoted"), ("agent_version", "agent version"),
                 ("predictor_version", "predictor version")],
}
MLFLOW_UI = "http://127.0.0.1:5000"
_CHECK = re.compile(r"\b(pass|FAIL|fail): [^;\n]+")
_SHOWN_CHANGES = 4


def _metrics(root: Path, stage: str) -> dict[str, float]:
    path = root / "metrics" / f"{stage}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: float(v) for k, v in data.items() if isinstance(v, int | float)} if isinstance(data, dict) else {}


def key_metrics(stage: str, metrics: dict[str, float]) -> list[dict[str, Any]]:
    """The curated figures of ``stage`` (STAGE_METRICS) in order, each {key, label, value}; absent ones left out."""
    explicit = {key for key, _ in STAGE_METRICS.get(stage, []) if "*" not in key}
    out: list[dict[str, Any]] = []
    for pattern, label in STAGE_METRICS.get(stage, []):
        names = [pattern] if "*" not in pattern else sorted(k for k in metrics if fnmatch.fnmatchcase(k, pattern))
        for key in names:
            if key in metrics and (key == pattern or key not in explicit):
                out.append({"key": key, "label": label.format(key.split(".", 1)[0]), "value": metrics[key]})
    return out


def changes(entries: list[Any]) -> list[str]:
    """``dvc status --json`` entries of one stage as short phrases, one per kind of change: "deps modified:
    config.py, core (+3)", "params modified: tune.num_samples", "outs deleted: data/raw/bars.parquet"."""
    groups: dict[str, list[str]] = {}
    for entry in entries:
        if isinstance(entry, str):  # "always changed", "changed checksum"
            groups.setdefault(entry, [])
            continue
        for kind, items in entry.items():
            what = kind.removeprefix("changed ")
            for path, state in (items or {}).items():
                if isinstance(state, dict):  # a params file: key -> state
                    for key, s in state.items():
                        groups.setdefault(f"params {s}", []).append(key)
                else:
                    groups.setdefault(f"{what} {state}", []).append(path.removeprefix("src/tradepipe/"))
    return [f"{kind}: {', '.join(names[:_SHOWN_CHANGES])}" + (f" (+{len(names) - _SHOWN_CHANGES})"
                                                               if len(names) > _SHOWN_CHANGES else "")
            if names else kind for kind, names in groups.items()]


def stage_states(root: Path) -> tuple[dict[str, list[str]], str | None]:
    """Each stage's changes per ``dvc status`` (empty: up to date), or an error message when DVC could not say."""
    dvc = Path(sys.executable).parent / "dvc"
    try:
        out = subprocess.run([str(dvc) if dvc.exists() else "dvc", "status", "--json"], cwd=root, capture_output=True,
                             text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {}, f"dvc status failed: {exc}"
    if out.returncode:
        return {}, f"dvc status failed: {out.stderr.strip()[-300:]}"
    data = json.loads(out.stdout or "{}")
    return {stage: changes(entries) for stage, entries in data.items()}, None


def _version(client: Any, model: str, alias: str) -> dict[str, Any] | None:
    from mlflow.exceptions import MlflowException

    try:
        v = client.get_model_version_by_alias(model, alias)
    except MlflowException:
        return None
    tags = dict(v.tags or {})
    return {"version": int(v.version), "created": int(v.creation_timestamp or 0) // 1000,
            "checks": [m.group(0) for m in _CHECK.finditer(v.description or "")],
            **{key: float(tags[f"oos_{key}"]) for key in ("sharpe", "dsr", "max_drawdown") if f"oos_{key}" in tags}}


def registry(uri: str) -> dict[str, Any]:
    """Champion and challenger of each registered model (None where the alias is not set), or an error."""
    from mlflow import MlflowClient

    try:
        client = MlflowClient(uri)
        return {model: {alias: _version(client, model, alias) for alias in (CHAMPION, CHALLENGER)}
                for model in (AGENT_MODEL, PREDICTOR_MODEL)}
    except Exception as exc:  # an unreachable or uninitialised store: say so, show the rest
        return {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}


def paper_accounts(root: Path) -> list[dict[str, Any]] | None:
    """The paper accounts' rows from ``tradepipe.trading.summary.account_rows`` (the trading package's hook), or
    None where that module does not exist in this build."""
    try:
        from tradepipe.trading.summary import account_rows
    except ImportError as exc:
        if exc.name not in ("tradepipe.trading", "tradepipe.trading.summary"):
            raise  # a broken trading package is an error to show, not an absent feature
        return None
    return account_rows(root)


def collect(root: Path) -> dict[str, Any]:
    """Everything ``tradepipe status`` shows, JSON-serializable."""
    root = root.resolve()
    states, dvc_error = stage_states(root)
    stages = []
    for stage in STAGE_NAMES:
        metrics = _metrics(root, stage)
        changed = states.get(stage, [])
        state = "unknown" if dvc_error else "changed" if changed else "up to date" if metrics else "not run"
        stages.append({"stage": stage, "state": state, "changes": changed, "metrics": key_metrics(stage, metrics)})
    try:
        uri = resolve_tracking_uri(root)
        experiment = load_params(root / "params.yaml").tracking.experiment if (root / "params.yaml").exists() else None
    except ConfigError as exc:
        uri, experiment = "", None
        dvc_error = dvc_error or str(exc)
    decision = _json(root / DECISION)
    return {
        "project": str(root), "dvc_error": dvc_error, "stages": stages,
        "backtest": headline(_metrics(root, "backtest")),
        "registry": registry(uri) if uri else {"error": "no tracking URI"},
        "gate": {"promoted": decision.get("promoted"), "checks": decision.get("checks", [])} if decision else None,
        "paper_accounts": paper_accounts(root),
        "where": {"report": str(root / BACKTEST_REPORT) if (root / BACKTEST_REPORT).exists() else None,
                  "validation": str(root / VALIDATION_REPORT) if (root / VALIDATION_REPORT).exists() else None,
                  "tracking_uri": uri, "experiment": experiment, "mlflow_ui": MLFLOW_UI,
                  "experiments": "dvc exp show (profiles and -S variants), dvc plots diff NAME"},
    }


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def render(status: dict[str, Any]) -> Group:
    """The rich renderables of ``collect``'s result, top to bottom."""
    parts: list[Any] = [_stages_table(status)]
    if status["backtest"]:
        parts.append(_headline_table(status["backtest"]))
    parts.append(_registry_table(status))
    accounts = status["paper_accounts"]
    if accounts is not None:
        parts.append(_accounts_table(accounts))
    where = status["where"]
    lines = [f"report      {where['report'] or '(none yet: run the pipeline)'}",
             f"validation  {where['validation'] or '(none yet)'}",
             f"MLflow      {where['tracking_uri']} (experiment {where['experiment']}); UI: `make mlflow-ui` -> "
             f"{where['mlflow_ui']}",
             f"variants    {where['experiments']}"]
    parts.append(Text("Where to look\n", style="bold") + Text("\n".join(lines)))
    return Group(*parts)


def _stages_table(status: dict[str, Any]) -> Table:
    title = "Stages" + (f" (DVC could not say: {status['dvc_error']})" if status["dvc_error"] else "")
    table = Table(title=title, title_justify="left", show_lines=False)
    for column in ("stage", "state", "last run"):
        table.add_column(column)
    for row in status["stages"]:
        state = Text("up to date", "green") if row["state"] == "up to date" else Text(row["state"], "yellow")
        if row["changes"]:
            state += Text(": " + "; ".join(row["changes"]), "dim")
        figures = ", ".join(f"{m['label']} {fmt(m['key'], m['value'])}" for m in row["metrics"])
        table.add_row(row["stage"], state, figures or "-")
    return table


def _headline_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="Backtest (out of sample)", title_justify="left")
    table.add_column("strategy")
    for label in HEADLINE_METRICS.values():
        table.add_column(label, justify="right")
    for row in rows:
        table.add_row(Text(row["strategy"], "bold" if row["strategy"] == "agent" else ""),
                      *(fmt(key, row[key]) for key in HEADLINE_METRICS))
    return table


def _registry_table(status: dict[str, Any]) -> Table:
    table = Table(title="Registry", title_justify="left")
    for column in ("model", "alias", "version", "OOS Sharpe", "DSR", "max drawdown", "gate"):
        table.add_column(column, justify="right" if column in ("version", "OOS Sharpe", "DSR", "max drawdown")
                         else "left")
    reg = status["registry"]
    if "error" in reg:
        table.add_row("-", "-", "-", "-", "-", "-", reg["error"])
        return table
    for model, aliases in reg.items():
        for alias, v in aliases.items():
            if v is None:
                table.add_row(model, alias, "-", "-", "-", "-", "(not set)")
                continue
            checks = v["checks"]
            failed = [c for c in checks if not c.startswith("pass")]
            gate = (Text("; ".join(failed), "red") if failed else Text(f"all {len(checks)} checks passed", "green")
                    if checks else Text("-"))
            table.add_row(model, alias, f"v{v['version']}", fmt("sharpe", v.get("sharpe")), fmt("dsr", v.get("dsr")),
                          fmt("max_drawdown", v.get("max_drawdown")), gate)
    gate = status["gate"]
    if gate:
        verdict = "promoted" if gate["promoted"] else "not promoted"
        table.caption = f"last register: {verdict}: " + "; ".join(gate["checks"])
        table.caption_justify = "left"
    return table


def _accounts_table(accounts: list[dict[str, Any]]) -> Table:
    table = Table(title="Paper accounts", title_justify="left")
    columns = list(accounts[0]) if accounts else ["account"]
    for column in columns:
        table.add_column(column, justify="right" if column in ("equity", "cash", "return", "drawdown") else "left")
    for row in accounts:
        table.add_row(*(fmt(c, row.get(c)) for c in columns))
    if not accounts:
        table.add_row("(no paper account yet: `tradepipe trade --help`)")
    return table


def print_status(status: dict[str, Any], console: Console) -> None:
    """Print ``collect``'s result as rich tables."""
    console.print(render(status))
