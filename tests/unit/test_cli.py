"""The `tradepipe` command line, run as a user would (real process, real exit codes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from click.testing import Result

from tests import ROOT
from tradepipe.data.sources import load_source

CLI = Path(sys.executable).parent / "tradepipe"


def _cli(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CLI), *args], cwd=cwd, capture_output=True, text=True, env=env)


def test_help_lists_the_commands() -> None:
    out = _cli("--help")
    assert out.returncode == 0
    for command in ("run", "profile", "data", "report"):
        assert command in out.stdout


def test_data_validate_accepts_real_bars_and_refuses_a_spike(tmp_path: Path) -> None:
    bars = load_source("skfolio_sp500", ["KO", "PG"], "2015-01-01", "2016-12-31")
    good = tmp_path / "good.csv"
    bars.to_csv(good, index=False)
    ok = _cli("data", "validate", str(good))
    assert ok.returncode == 0, ok.stderr
    assert f"{len(bars)} rows passed" in ok.stdout

    spiked = bars.copy()
    row = spiked.index[(spiked["symbol"] == "PG")][100]
    spiked.loc[row, "close"] *= 3.0
    bad = tmp_path / "bad.csv"
    spiked.to_csv(bad, index=False)
    refused = _cli("data", "validate", str(bad))
    assert refused.returncode == 1
    assert "abs_return" in refused.stderr and "PG" in refused.stderr
    assert str(spiked.loc[row, "timestamp"].date()) in refused.stderr


def test_data_validate_unreadable_file_is_a_clear_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    out = _cli("data", "validate", str(empty))
    assert out.returncode == 1 and "empty.csv" in out.stderr and "Traceback" not in out.stderr


def test_report_metrics_prints_json(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    returns = pd.DataFrame({"date": pd.bdate_range("2020-01-01", periods=300).strftime("%Y-%m-%d"),
                            "ret": rng.normal(0.0005, 0.01, 300)})
    path = tmp_path / "returns.csv"
    returns.to_csv(path, index=False)
    out = _cli("report", "metrics", str(path))
    assert out.returncode == 0, out.stderr
    metrics = json.loads(out.stdout)
    r = returns["ret"].to_numpy()
    assert np.isclose(metrics["sharpe"], r.mean() / r.std(ddof=1) * np.sqrt(252))
    assert 0 < metrics["max_drawdown"] < 1


def test_run_refuses_unknown_stage_and_profile(tmp_path: Path) -> None:
    assert _cli("run", "--stage", "nope").returncode == 2
    out = _cli("profile", "nope", "--root", str(ROOT))
    assert out.returncode == 2 and "known profiles" in out.stderr


def test_webhook_registers_the_champion_relay_in_mlflow(tmp_path: Path) -> None:
    import os
    import sqlite3

    from cryptography.fernet import Fernet

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    url = "http://127.0.0.1:8000/v1/webhooks/mlflow"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_WEBHOOK", "TRADEPIPE_WEBHOOK"))}
    missing = _cli("webhook", url, "--tracking-uri", uri, env=env)
    assert missing.returncode == 2 and "TRADEPIPE_WEBHOOK_SECRET" in missing.stderr

    env["TRADEPIPE_WEBHOOK_SECRET"] = "s3cret"
    no_key = _cli("webhook", url, "--tracking-uri", uri, env=env)
    assert no_key.returncode == 2 and "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY" in no_key.stderr

    key = Fernet.generate_key().decode()  # the MLflow server decrypts the secret with the same key
    env["MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY"] = key
    refused = _cli("webhook", url, "--tracking-uri", uri, env=env)
    assert refused.returncode == 1 and "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS" in refused.stderr

    env.update(MLFLOW_WEBHOOK_ALLOWED_SCHEMES="http,https", MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS="true")
    created = _cli("webhook", url, "--tracking-uri", uri, env=env)
    assert created.returncode == 0, created.stderr
    # What the MLflow server will read: the row, its secret decrypted with the shared key. (MLflow fixes its
    # key when its models module is imported, so this process cannot use MlflowClient to read it back.)
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        ((webhook_id, hook_url, secret),) = db.execute("SELECT webhook_id, url, secret FROM webhooks").fetchall()
    assert hook_url == url and webhook_id in created.stdout
    assert Fernet(key.encode()).decrypt(secret.encode()).decode() == "s3cret"


def test_data_validate_params_file_errors_are_clear_and_validate_only_file_is_enough(tmp_path: Path) -> None:
    bars = load_source("skfolio_sp500", ["KO"], "2015-01-01", "2015-12-31")
    good = tmp_path / "ko.csv"
    bars.to_csv(good, index=False)
    only = tmp_path / "limits.yaml"
    only.write_text("validate:\n  min_rows_per_symbol: 300\n")
    refused = _cli("data", "validate", str(good), "--params", str(only))
    assert refused.returncode == 1 and "rows_per_symbol" in refused.stderr  # 252 rows < 300: the file's limit
    only.write_text("validate:\n  min_rows_per_symbol: 200\n")
    ok = _cli("data", "validate", str(good), "--params", str(only))
    assert ok.returncode == 0, ok.stderr
    for text, fragment in (("validate:\n  max_abs_return: -1\n", "validate.max_abs_return"),
                           ("validate: [oops\n", "cannot be read as YAML"),
                           ("just text\n", "expected a mapping")):
        only.write_text(text)
        out = _cli("data", "validate", str(good), "--params", str(only))
        assert out.returncode == 2 and fragment in out.stderr and str(only) in out.stderr, out.stderr
        assert "Traceback" not in out.stderr


def test_report_metrics_too_few_returns_and_zero_trials_fail_clearly(tmp_path: Path) -> None:
    one = tmp_path / "one.csv"
    one.write_text("date,ret\n2020-01-02,0.01\n")
    out = _cli("report", "metrics", str(one))
    assert out.returncode == 1 and "at least 2 returns" in out.stderr and "Traceback" not in out.stderr
    two = tmp_path / "two.csv"
    two.write_text("date,ret\n2020-01-02,0.01\n2020-01-03,-0.01\n")
    zero = _cli("report", "metrics", str(two), "--n-trials", "0")
    assert zero.returncode == 2 and "--n-trials" in zero.stderr and "Traceback" not in zero.stderr


def test_data_validate_refuses_every_corrupt_corpus_file_clearly(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from tests.fixtures.corpus import CLEAN, CORPUS, FILE_ERRORS, PARAMS, SUITE_FAILURES
    from tradepipe.cli import app
    from tradepipe.validation.standalone import BACKWARDS

    CLI_FAILURES = {"unsorted.csv": [(BACKWARDS, "timestamp", "AAA", {"row": 7})]}

    limits = tmp_path / "limits.yaml"
    limits.write_text(yaml.safe_dump({"validate": PARAMS.model_dump()}))
    runner = CliRunner()

    def validate(path: Path) -> Result:
        return runner.invoke(app, ["data", "validate", str(path), "--params", str(limits)])

    refused = 0
    for path in sorted(CORPUS.iterdir()):
        if path == CLEAN:
            continue
        out = validate(path)
        assert out.exit_code == 1, (path.name, out.output)
        assert isinstance(out.exception, SystemExit) and "Traceback" not in out.output, (path.name, out.output)
        if path.name in FILE_ERRORS:
            for fragment in FILE_ERRORS[path.name]:
                assert fragment in out.output, (path.name, fragment, out.output)
        else:
            assert out.output.startswith(f"{path}: FAILED"), out.output
            for expectation, column, _, example in CLI_FAILURES.get(path.name, SUITE_FAILURES[path.name]):
                assert f"{expectation} on {column}" in out.output and f"row={example['row']} " in out.output
        refused += 1
    assert refused == len(FILE_ERRORS) + len(SUITE_FAILURES) == 23
    # sorted first, as ingest sorts: the file's one order problem is AAA going back in time at its row 7
    assert "out_of_order" not in validate(CORPUS / "unsorted.csv").output
    ok = validate(CLEAN)
    assert ok.exit_code == 0 and "ok" in ok.output and "12 rows passed 35 expectations" in ok.output


def test_webhook_finds_the_registry_of_root_from_any_working_directory(tmp_path: Path) -> None:
    import os

    from cryptography.fernet import Fernet

    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    elsewhere.mkdir()
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["tracking"]["uri"] = "sqlite:///registry.db"  # relative: in --root, not in the working directory
    (project / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update(TRADEPIPE_WEBHOOK_SECRET="s3cret", MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY=Fernet.generate_key().decode(),
               MLFLOW_WEBHOOK_ALLOWED_SCHEMES="http,https", MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS="true")
    created = _cli("webhook", "http://127.0.0.1:8000/v1/webhooks/mlflow", "--root", "../project", cwd=elsewhere,
                   env=env)
    assert created.returncode == 0, created.stderr
    assert (project / "registry.db").is_file()
    assert list(elsewhere.iterdir()) == []


def _project_with_outputs(tmp_path: Path, edit: tuple[str, str] | None = None) -> tuple[Path, list[Path]]:
    """A project root: params.yaml (optionally with one text edit), profiles/ and outputs of an earlier run."""
    import shutil

    root = tmp_path / "project"
    root.mkdir()
    text = (ROOT / "params.yaml").read_text()
    if edit is not None:
        assert edit[0] in text
        text = text.replace(*edit)
    (root / "params.yaml").write_text(text)
    shutil.copytree(ROOT / "profiles", root / "profiles")
    outputs = [root / "models" / "tune" / "best_config.json", root / "metrics" / "tune.json"]
    for path in outputs:
        path.parent.mkdir(parents=True)
        path.write_text('{"earlier": "run"}\n')
    return root, outputs


TYPO = ("  max_epochs: 25", "  max_epoch: 25")  # the probe's typo under train:


def test_run_refuses_a_params_typo_before_dvc_can_delete_any_output(tmp_path: Path, monkeypatch) -> None:
    from typer.testing import CliRunner

    import tradepipe.cli as cli

    root, outputs = _project_with_outputs(tmp_path, TYPO)
    started: list[list[str]] = []

    def fake_dvc(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        started.append(cmd)  # `dvc repro` removes the stage's outputs before running it
        for path in outputs:
            path.unlink(missing_ok=True)
        return subprocess.CompletedProcess(cmd, 1)

    monkeypatch.setattr(cli.subprocess, "run", fake_dvc)
    out = CliRunner().invoke(cli.app, ["run", "--root", str(root)])
    assert out.exit_code == 2, out.output
    assert "train.max_epoch: unknown key: did you mean 'max_epochs'?" in out.output
    assert started == [] and all(path.read_text() == '{"earlier": "run"}\n' for path in outputs)

    # a typo brought in by a profile is refused the same way (the profile is not applied)
    (root / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    (root / "profiles" / "typo.yaml").write_text("train.max_epochs: true\n")
    out = CliRunner().invoke(cli.app, ["run", "--root", str(root), "--profile", "typo"])
    assert out.exit_code == 2 and "train.max_epochs" in out.output and started == []
    assert (root / "params.yaml").read_text() == (ROOT / "params.yaml").read_text()

    # valid params: dvc starts
    monkeypatch.setattr(cli.subprocess, "run", lambda cmd, **kw: started.append(cmd) or
                        subprocess.CompletedProcess(cmd, 0))
    out = CliRunner().invoke(cli.app, ["run", "--root", str(root), "--stage", "ingest"])
    assert out.exit_code == 0, out.output
    assert [cmd[1:] for cmd in started] == [["repro", "ingest"]]


def test_run_with_a_params_typo_exits_2_and_leaves_the_project_as_it_was(tmp_path: Path) -> None:
    root, outputs = _project_with_outputs(tmp_path, ('  start: "2011-01-01"', '  start: "2014-13-45"'))
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    out = _cli("run", "--root", str(root))
    assert out.returncode == 2, out.stdout + out.stderr
    assert "train.walk_forward.start: '2014-13-45' is not a calendar date" in out.stderr
    assert "Traceback" not in out.stderr and "pipeline run id" not in out.stdout  # dvc repro was never started
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before  # no .dvc/, no lock, nothing removed
    assert all(path.read_text() == '{"earlier": "run"}\n' for path in outputs)


def test_params_check_prints_ok_or_the_errors(tmp_path: Path) -> None:
    ok = _cli("params", "check")
    assert ok.returncode == 0 and ok.stdout.strip() == "params.yaml: ok", ok.stdout + ok.stderr
    root, _ = _project_with_outputs(tmp_path, TYPO)
    bad = _cli("params", "check", "--params", str(root / "params.yaml"))
    assert bad.returncode == 2 and "train.max_epoch: unknown key" in bad.stderr and "ok" not in bad.stdout
    text = (ROOT / "params.yaml").read_text().replace("low: 0.0003, high: 0.01", "low: -0.001, high: 0.01")
    (root / "params.yaml").write_text(text.replace("source: skfolio_sp500 ", "source: skfolio_sp50 "))
    bad = _cli("params", "check", "--params", str(root / "params.yaml"))
    assert bad.returncode == 2 and "tune.search_space.lr: a 'loguniform' dimension needs 0 < 'low'" in bad.stderr
    (root / "params.yaml").write_text((ROOT / "params.yaml").read_text().replace("source: skfolio_sp500 ",
                                                                                  "source: skfolio_sp50 "))
    bad = _cli("params", "check", "--params", str(root / "params.yaml"))  # only the library knows its sources
    assert bad.returncode == 2 and "data.source: 'skfolio_sp50' is not a data source" in bad.stderr
    missing = _cli("params", "check", "--params", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and "not found" in missing.stderr and "Traceback" not in missing.stderr
