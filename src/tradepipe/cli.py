"""The ``tradepipe`` command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from tradepipe.config import ConfigError, ValidateParams, invalid_params
from tradepipe.paths import BARS
from tradepipe.runtime.stages import STAGE_NAMES
from tradepipe.settings import RUN_ID_ENV, env_var, settings
from tradepipe.trading.commands import trade_app

app = typer.Typer(help="tradepipe: versioned, tracked ML and RL trading research pipelines.",
                  no_args_is_help=True, add_completion=False)
data_app = typer.Typer(help="Check market data files.", no_args_is_help=True)
report_app = typer.Typer(help="Score returns produced anywhere.", no_args_is_help=True)
params_app = typer.Typer(help="Check params.yaml without running anything.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(report_app, name="report")
app.add_typer(params_app, name="params")
app.add_typer(trade_app, name="trade")
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)



def _fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(code)


def _apply_profile(root: Path, name: str) -> None:
    from pydantic import ValidationError

    from tradepipe.runtime.profiles import apply_profile, load_profile

    try:
        apply_profile(root / "params.yaml", load_profile(root, name))
    except ConfigError as exc:
        _fail(str(exc), 2)
    except ValidationError as exc:  # the profile's overrides make params.yaml invalid (it is left as it was)
        _fail(f"{invalid_params(root / 'params.yaml', exc)}\n  (with profiles/{name}.yaml applied; not applied)", 2)
    console.print(f"params.yaml now holds the [bold]{name}[/] profile (`git checkout params.yaml` undoes it)")


def _check_params(path: Path) -> None:
    """Validate ``path`` as every stage will (``runtime.params.stage_params``); exit 2 naming the bad keys."""
    from tradepipe.runtime.params import stage_params

    try:
        stage_params(path)
    except ConfigError as exc:
        _fail(str(exc), 2)


def _run_dvc(cmd: list[str], root: Path, env: dict[str, str]) -> None:
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    code = subprocess.run(cmd, cwd=root, env=env).returncode
    if code:
        _fail("the pipeline stopped; the failing stage printed why above. Earlier outputs are unchanged.", code)


@app.command()
def run(
    profile: str = typer.Option(None, help="Run profiles/<name>.yaml's overrides as a DVC experiment (e.g. smoke)."),
    sets: list[str] = typer.Option(None, "--set", "-S", help="KEY=VALUE: run with this params override as a DVC "
                                                              "experiment (repeatable; after the profile's)."),
    name: str = typer.Option(None, help="The experiment's name (default: the profile's, or 'variant', and a tag)."),
    stage: str = typer.Option(None, help=f"Run up to this stage only: one of {', '.join(STAGE_NAMES)}."),
    force: bool = typer.Option(False, help="Rerun stages even when nothing they depend on changed."),
    root: Path = typer.Option(Path("."), help="Project root (holds dvc.yaml and params.yaml)."),
) -> None:
    """Run the pipeline: `dvc repro` on params.yaml (stages whose inputs did not change are skipped), or, with
    --profile or -S, `dvc exp run --temp` with those overrides, which leaves params.yaml and the workspace as
    they are and keeps the results as a DVC experiment (`dvc exp show`, `dvc exp apply NAME`)."""
    if stage and stage not in STAGE_NAMES:
        _fail(f"unknown stage {stage!r}; choose one of {', '.join(STAGE_NAMES)}", 2)
    dvc = str(Path(sys.executable).parent / "dvc")
    if not profile and not sets:
        # Before `dvc repro`: DVC deletes a stage's outputs before running it, so a stage refusing a typo would
        # leave them gone. Nothing has been touched when this refuses.
        _check_params(root / "params.yaml")
        env = {**os.environ, RUN_ID_ENV: settings().run_id or f"cli-{uuid.uuid4().hex[:12]}"}
        cmd = [dvc, "repro", *([stage] if stage else []), *(["--force"] if force else [])]
        console.print(f"pipeline run id [bold]{env[RUN_ID_ENV]}[/]: {' '.join(cmd[1:])}")
        _run_dvc(cmd, root, env)
        console.print("[green]pipeline finished[/]: `tradepipe status`, `make mlflow-ui`, reports/backtest/report.html")
        return
    from tradepipe.runtime.experiments import check_variant, exp_run_command, experiment_name, tracking_env, variant

    try:  # the same check as above, on params.yaml with the overrides (which is not written)
        overrides = variant(root, profile, sets or [])
        merged = check_variant(root / "params.yaml", overrides)
    except ConfigError as exc:
        _fail(str(exc), 2)
    exp = name or experiment_name(profile)
    env = {**os.environ, RUN_ID_ENV: settings().run_id or exp, **tracking_env(root, merged)}
    cmd = exp_run_command(dvc, exp, overrides, stage, force)
    console.print(f"experiment [bold]{escape(exp)}[/] (pipeline run id {escape(env[RUN_ID_ENV])}), "
                  f"{len(overrides)} override(s), params.yaml untouched: {escape(' '.join(cmd[1:]))}", highlight=False)
    _run_dvc(cmd, root, env)
    console.print(f"[green]experiment {escape(exp)} finished[/]: `dvc exp show`, `dvc plots diff {escape(exp)}`, "
                  f"`dvc exp apply {escape(exp)}` to bring its outputs and params into the workspace", highlight=False)


@app.command()
def status(as_json: bool = typer.Option(False, "--json", help="Print the same as JSON, for scripts."),
           root: Path = typer.Option(Path("."), help="Project root (holds dvc.yaml and params.yaml).")) -> None:
    """One glance at the last run: each stage's state and key figures, the backtest's headline, the registry's
    champion and challenger with the gate, the paper accounts, and where to look next."""
    from tradepipe.status import collect, print_status

    data = collect(root)
    if as_json:
        print(json.dumps(data, indent=2, default=str))
        return
    print_status(data, console)


@app.command("profile")
def profile_cmd(name: str = typer.Argument(..., help="A profile in profiles/<name>.yaml, e.g. smoke."),
                root: Path = typer.Option(Path("."), help="Project root (holds params.yaml).")) -> None:
    """Write a profile's overrides into params.yaml (comments kept), making it the project's own run;
    `tradepipe run --profile NAME` runs a profile as a DVC experiment instead, leaving params.yaml alone."""
    _apply_profile(root, name)


def _validate_section(path: Path) -> dict[str, object]:
    """The ``validate:`` section of a params file as written (the rest is not read); empty when the file is absent."""
    from ruamel.yaml.error import YAMLError

    from tradepipe.config import read_params_yaml

    if not path.exists():
        return {}
    try:
        raw = read_params_yaml(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, YAMLError) as exc:
        _fail(f"--params {path}: cannot be read as YAML: {exc}", 2)
    if raw is not None and not isinstance(raw, dict):
        _fail(f"--params {path}: expected a mapping of sections (e.g. validate:), found {type(raw).__name__}", 2)
    section = (raw or {}).get("validate") or {}
    if not isinstance(section, dict):
        _fail(f"--params {path}: validate: must be a mapping of limits, found {type(section).__name__}", 2)
    return section


def _validate_limits(path: Path, flags: dict[str, object]) -> tuple[ValidateParams, dict[str, str]]:
    """The limits: command-line flags over the params file's ``validate:`` section over the defaults; with where
    each one came from."""
    from pydantic import ValidationError

    section = _validate_section(path)
    given = {k: v for k, v in flags.items() if v is not None}
    try:
        limits = ValidateParams.model_validate({**section, **given})
    except ValidationError as exc:
        def origin(key: str) -> str:
            return f"--{_FLAG[key]}" if key in given else f"--params {path}: validate.{key}"
        keys = "; ".join(f"{origin(str(e['loc'][0])) if e['loc'] else f'--params {path}'}: {e['msg']}"
                         for e in exc.errors())
        _fail(f"invalid validate limits: {keys}", 2)
    source = {key: f"--{_FLAG[key]}" if key in given else str(path) if key in section else "default"
              for key in ValidateParams.model_fields}
    return limits, source


# validate: key -> its `tradepipe data validate` flag
_FLAG = {"min_rows_per_symbol": "min-rows", "max_abs_return": "max-abs-return", "max_gap_sessions": "max-gap-sessions",
         "max_stale_run": "max-stale-run", "return_flag_column": "return-flag-column"}


@params_app.command("check")
def params_check(params: Path = typer.Option(Path("params.yaml"), help="The params file to check.")) -> None:
    """Validate a params file as the stages will (unknown keys, types, dates, bounds); exit 2 if it is invalid."""
    _check_params(params)
    console.print(f"{params}: ok", highlight=False)


@data_app.command("validate")
def data_validate(
    path: Path = typer.Argument(..., help="A CSV or Parquet file of bars (rows in any order)."),
    params: Path = typer.Option(Path("params.yaml"), help="A params file whose validate: section sets the limits "
                                                          "(defaults where it or a key is absent)."),
    min_rows: int = typer.Option(None, help="Fewest bars a symbol may have (validate.min_rows_per_symbol)."),
    max_abs_return: float = typer.Option(None, help="Largest one-bar |return| (validate.max_abs_return)."),
    max_gap_sessions: int = typer.Option(None, help="Most sessions a symbol may miss in a row "
                                                    "(validate.max_gap_sessions)."),
    max_stale_run: int = typer.Option(None, help="Most bars in a row with the same close (validate.max_stale_run)."),
    return_flag_column: str = typer.Option(None, help="Boolean column whose true rows are known large moves "
                                                      "(validate.return_flag_column)."),
) -> None:
    """Validate a bars file with the pipeline's Great Expectations suite; exit 1 if it fails.

    The bars are sorted as ingest sorts them (timestamp, then symbol) first: row order is reported only where a
    symbol's timestamps go back in time. Limits: these flags, else --params's validate: section, else defaults.
    """
    from tradepipe.data.reader import BarsFileError, read_bars_file
    from tradepipe.validation.standalone import validate_file_bars

    limits, source = _validate_limits(params, {
        "min_rows_per_symbol": min_rows, "max_abs_return": max_abs_return, "max_gap_sessions": max_gap_sessions,
        "max_stale_run": max_stale_run, "return_flag_column": return_flag_column})
    used = ", ".join(f"{key}={getattr(limits, key)} ({source[key]})" for key in ValidateParams.model_fields)
    try:
        bars = read_bars_file(path, limits.return_flag_column)
    except BarsFileError as exc:
        _fail(str(exc))
    report = validate_file_bars(bars, limits, name=str(path))
    if not report.success:
        err.print(report.summary(), markup=False, highlight=False)
        err.print(f"limits used: {used}\n(set them with --min-rows, --max-abs-return, --max-gap-sessions, "
                  "--max-stale-run, --return-flag-column or --params FILE)", markup=False, highlight=False)
        raise typer.Exit(1)
    console.print(f"[green]ok[/] {escape(str(path))}: {report.n_rows} rows passed {report.evaluated} expectations")
    console.print(f"limits used: {used}", markup=False, highlight=False)


@report_app.command("metrics")
def report_metrics(returns_csv: Path = typer.Argument(..., help="CSV: a date column and a daily returns column."),
                   periods_per_year: int = typer.Option(252, min=1), risk_free_rate: float = 0.0,
                   n_trials: int = typer.Option(1, min=1, help="Strategies tried (for the Deflated Sharpe).")
                   ) -> None:
    """Print performance metrics (Sharpe, drawdown, PSR, DSR, ...) of a daily returns series as JSON."""
    from tradepipe.core.metrics import performance_metrics, returns_from_csv

    try:
        returns = returns_from_csv(returns_csv)
        metrics = performance_metrics(returns, periods_per_year=periods_per_year, risk_free_rate=risk_free_rate,
                                      n_trials=n_trials)
    except ValueError as exc:
        _fail(f"{returns_csv}: {exc}" if str(returns_csv) not in str(exc) else str(exc))
    print(json.dumps(metrics, indent=2, sort_keys=True))


_TRACKING_HELP = ("MLflow tracking/registry URI (default: $MLFLOW_TRACKING_URI, else params.yaml's tracking.uri in "
                  "--root, else sqlite:///mlflow.db; a relative SQLite path is in --root).")


def _tracking_uri(root: Path, explicit: str | None) -> str:
    from tradepipe.runtime.tracking import resolve_tracking_uri

    try:
        return resolve_tracking_uri(root, explicit)
    except ConfigError as exc:
        _fail(str(exc), 2)


@app.command()
def serve(host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
          port: int = typer.Option(8000, help="TCP port."),
          model_uri: str = typer.Option("models:/tradepipe-agent@champion", help="Registered model to serve."),
          tracking_uri: str = typer.Option(None, help=_TRACKING_HELP),
          root: Path = typer.Option(Path("."), help="Project root (its params.yaml and SQLite store)."),
          poll_seconds: float = typer.Option(30.0, help="Re-read the alias this often (0: only POST /v1/reload)."),
          torch_threads: int = typer.Option(1, help="Torch threads per request (1 suits small models)."),
          max_body_bytes: int = typer.Option(4 * 1024 * 1024, min=1, help="Largest request body (413 above)."),
          paper: bool = typer.Option(True, help="Mount the paper accounts' endpoints (when the project has bars)."),
          access_log: bool = typer.Option(True, help="Log a line per request (/metrics counts them either way)."),
          step_workers: int = typer.Option(1, min=1, help="Processes stepping the paper accounts (accounts dealt "
                                           "to them in turn; 1: in the serving process).")
          ) -> None:
    """Serve target weights over HTTP (POST /v1/signals, /v1/reload, GET /health, /metrics); token from
    TRADEPIPE_API_TOKEN. With TRADEPIPE_WEBHOOK_SECRET set it also relays MLflow's champion-alias webhooks to
    Airflow's deploy_champion (POST /v1/webhooks/mlflow; TRADEPIPE_AIRFLOW_URL/_USER/_PASSWORD)."""
    import torch
    import uvicorn

    from tradepipe.orchestration.relay import deliveries_path_for, relay_router_from_env
    from tradepipe.serving import create_app

    env = settings()
    if env.api_token is None:
        _fail(f"set {env_var('api_token')} to the bearer token clients must send", 2)
    relay = None
    if env.webhook_secret is not None and env.airflow_password is None:
        _fail(f"{env_var('webhook_secret')} is set: also set {env_var('airflow_password')} (and "
              f"{env_var('airflow_url')}, {env_var('airflow_user')}) so the relay can trigger deploy_champion", 2)
    uri = _tracking_uri(root, tracking_uri)
    if env.webhook_secret is not None:  # replayed deliveries refused: remembered beside a SQLite store
        relay = relay_router_from_env(deliveries_path_for(uri), max_body_bytes=max_body_bytes)
    torch.set_num_threads(torch_threads)
    desk = None
    if paper and (root / BARS).is_file():  # POST /v1/accounts/{account}/bars: the same step as `tradepipe trade step`
        from tradepipe.config import load_params
        from tradepipe.trading.desk import open_desk

        desk = (root, open_desk(root, load_params(root / "params.yaml"), tracking_uri=uri))
    app_ = create_app(model_uri, tracking_uri=uri, token=env.api_token.get_secret_value(), poll_seconds=poll_seconds,
                      relay=relay, max_body_bytes=max_body_bytes, paper=desk, step_workers=step_workers)
    uvicorn.run(app_, host=host, port=port, log_level="info", access_log=access_log)


@app.command()
def webhook(url: str = typer.Argument(..., help="The relay, e.g. http://serving:8000/v1/webhooks/mlflow."),
            tracking_uri: str = typer.Option(None, help=_TRACKING_HELP),
            root: Path = typer.Option(Path("."), help="Project root (its params.yaml and SQLite store).")) -> None:
    """Create the MLflow registry webhook that sends champion-alias moves to the serving app's relay, signed
    with TRADEPIPE_WEBHOOK_SECRET."""
    from mlflow import MlflowClient
    from tradepipe.orchestration.relay import register_champion_webhook

    secret = settings().webhook_secret
    if secret is None:
        _fail(f"set {env_var('webhook_secret')} to the secret the serving app's relay checks", 2)
    if not os.environ.get("MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY"):  # else MLflow encrypts with a one-off key
        _fail("set MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY (a Fernet key: python -c 'from cryptography.fernet import "
              "Fernet; print(Fernet.generate_key().decode())') here and in the MLflow server's environment, so the "
              "server can read the webhook's secret back", 2)
    client = MlflowClient(_tracking_uri(root, tracking_uri))
    try:
        webhook_id = register_champion_webhook(client, url, secret.get_secret_value())
    except Exception as exc:  # MLflow refuses http/private URLs unless allowed: say how
        _fail(f"MLflow refused the webhook: {exc}. For a relay on loopback or a private network set "
              "MLFLOW_WEBHOOK_ALLOWED_SCHEMES=http,https and MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS=true", 1)
    console.print(f"webhook [bold]{webhook_id}[/] posts tradepipe-agent@champion moves to {url}")


if __name__ == "__main__":
    app()
