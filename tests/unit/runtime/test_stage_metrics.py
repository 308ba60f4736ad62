"""Stage-run metrics: the node-exporter textfile that run_stage adds each run to."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tradepipe.runtime.stage import run_stage
from tradepipe.runtime.stage_metrics import STAGE_TEXTFILE, record_stage_run, stage_run_metrics


def samples(directory: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = (directory / STAGE_TEXTFILE).read_text()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples if not s.name.endswith("_created")}


def runs(stage: str, status: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return "tradepipe_stage_runs_total", (("stage", stage), ("status", status))


def test_runs_accumulate_and_the_last_duration_is_kept(tmp_path: Path) -> None:
    record_stage_run(tmp_path, "train", "succeeded", 12.5)
    record_stage_run(tmp_path, "train", "succeeded", 10.0)
    record_stage_run(tmp_path, "train", "failed", 1.0)
    record_stage_run(tmp_path, "ingest", "succeeded", 0.5)
    assert samples(tmp_path) == {runs("train", "succeeded"): 2.0, runs("train", "failed"): 1.0,
                                 runs("ingest", "succeeded"): 1.0,
                                 ("tradepipe_stage_duration_seconds", (("stage", "train"),)): 1.0,
                                 ("tradepipe_stage_duration_seconds", (("stage", "ingest"),)): 0.5}
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == [STAGE_TEXTFILE]  # no temp left
    with pytest.raises(ValueError, match="'skipped' is not one of succeeded, failed"):
        record_stage_run(tmp_path, "train", "skipped", 1.0)


def _record_many(directory: Path) -> None:
    for _ in range(25):
        record_stage_run(directory, "features", "succeeded", 0.1)


def test_concurrent_processes_lose_no_count(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_record_many, args=(tmp_path,)) for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert [w.exitcode for w in workers] == [0, 0, 0]
    assert samples(tmp_path)[runs("features", "succeeded")] == 75.0


def test_the_context_manager_judges_the_outcome(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEPIPE_METRICS_TEXTFILE_DIR", str(tmp_path))
    with stage_run_metrics("tune"):
        pass
    with pytest.raises(SystemExit), stage_run_metrics("tune"):
        raise SystemExit(0)
    with pytest.raises(SystemExit), stage_run_metrics("tune"):
        raise SystemExit(1)
    with pytest.raises(RuntimeError), stage_run_metrics("tune"):
        raise RuntimeError("boom")
    got = samples(tmp_path)
    assert (got[runs("tune", "succeeded")], got[runs("tune", "failed")]) == (2.0, 2.0)


def test_unset_directory_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRADEPIPE_METRICS_TEXTFILE_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    with stage_run_metrics("tune"):
        pass
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_directory_never_fails_the_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "file").write_text("not a directory")
    monkeypatch.setenv("TRADEPIPE_METRICS_TEXTFILE_DIR", str(tmp_path / "file"))
    with stage_run_metrics("tune"):
        pass
    assert "stage tune: run not counted in" in caplog.text and "TRADEPIPE_METRICS_TEXTFILE_DIR" in caplog.text


def test_run_stage_counts_a_refused_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    metrics = tmp_path / "textfiles"
    monkeypatch.setenv("TRADEPIPE_METRICS_TEXTFILE_DIR", str(metrics))
    (tmp_path / "params.yaml").write_text("seed: [not, an, int]\n")
    with pytest.raises(SystemExit) as exit_info:
        run_stage("ingest", lambda params, root: {}, tmp_path)
    assert exit_info.value.code == 2
    got = samples(metrics)
    assert got[runs("ingest", "failed")] == 1.0 and runs("ingest", "succeeded") not in got
    assert 0.0 <= got[("tradepipe_stage_duration_seconds", (("stage", "ingest"),))] < 60.0
