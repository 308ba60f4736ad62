"""The ingest stage on an S3 source over real HTTP: first ingest, then an incremental re-ingest."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pandas as pd
import pytest

import mlflow
from pipelines.ingest import ingest
from tradepipe.config import Params, S3Params
from tradepipe.data.archive import archive_name
from tradepipe.data.incremental import content_hash
from tradepipe.paths import ARCHIVE, BARS, MANIFEST
from tradepipe.runtime.stage import StageError
from tradepipe.runtime.tracking import stage_run

CUT = pd.Timestamp("2013-01-01", tz="UTC")


def _params(params: Params, endpoint: str, bucket: str) -> Params:
    data = params.data.model_copy(update={
        "source": "s3", "benchmark": None, "symbols": [], "start": "2010-01-01", "end": "2013-12-31",
        "s3": S3Params(bucket=bucket, prefix="bars/", endpoint_url=endpoint, region="us-east-1")})
    return params.model_copy(update={"data": data})


def _put(s3: object, bucket: str, key: str, frame: pd.DataFrame, tmp: Path) -> None:
    local = tmp / key.replace("/", "_")
    frame.to_parquet(local, index=False) if key.endswith(".parquet") else frame.to_csv(local, index=False)
    s3.upload_file(str(local), bucket, key)  # type: ignore[attr-defined]


def _ingest(cfg: Params, root: Path) -> tuple[dict[str, float], str]:
    """The ingest stage body inside its own MLflow run (as run_stage opens it); metrics and run id."""
    with stage_run("ingest", {}, root, f"sqlite:///{root / 'mlflow.db'}", "ingest-test") as run:
        return ingest(cfg, root), run.info.run_id


def test_s3_ingest_appends_and_reports_changed_history(tmp_path: Path, s3_endpoint: str, params: Params,
                                                       bars: pd.DataFrame) -> None:
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket="market")
    cfg = _params(params, s3_endpoint, "market")
    old = bars[bars["timestamp"] < CUT]
    _put(s3, "market", "bars/2010-2012.parquet", old, tmp_path)
    _put(s3, "market", "other/ignored.csv", bars.iloc[:5], tmp_path)

    first, run_id = _ingest(cfg, tmp_path)
    assert first["appended_rows"] == len(old) and first["changed_values"] == 0
    logged = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="ingest/manifest.json",
                                                 dst_path=str(tmp_path / "logged"))
    assert json.loads(Path(logged).read_text()) == json.loads((tmp_path / MANIFEST).read_text())
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / BARS), old.reset_index(drop=True))
    archive = tmp_path / ARCHIVE / f"{archive_name(cfg.data)}.parquet"
    archived_before = archive.stat().st_mtime_ns

    # the provider publishes 2013 and revises one KO close it had already published
    new = bars[bars["timestamp"] >= CUT]
    hit = (old["symbol"] == "KO") & (old["timestamp"] == pd.Timestamp("2012-06-01", tz="UTC"))
    _put(s3, "market", "bars/2010-2012.parquet", old.assign(close=old["close"].mask(hit, 1.0)), tmp_path)
    _put(s3, "market", "bars/2013.csv", new.assign(timestamp=new["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")),
         tmp_path)
    second, _ = _ingest(cfg, tmp_path)
    assert second["appended_rows"] == len(new) and second["changed_values"] == 1
    got = pd.read_parquet(tmp_path / BARS)
    pd.testing.assert_frame_equal(got, bars.reset_index(drop=True))  # history kept as first ingested
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    change = manifest["changed_history"]["first"][0]
    assert (change["symbol"], change["column"], change["incoming"]) == ("KO", "close", 1.0)
    assert change["stored"] == pytest.approx(old.loc[hit, "close"].item())
    assert manifest["content_sha256"] == content_hash(got) and manifest["rows"] == len(bars)
    assert manifest["symbols"]["AAPL"] == {"start": "2010-01-04T00:00:00+00:00", "end": "2013-12-31T00:00:00+00:00",
                                           "rows": int((bars["symbol"] == "AAPL").sum())}

    # nothing new: the archive is not rewritten
    archived = archive.stat().st_mtime_ns
    assert archived > archived_before
    third, _ = _ingest(cfg, tmp_path)
    assert third["appended_rows"] == 0 and archive.stat().st_mtime_ns == archived


def test_s3_errors_are_clear_and_leave_outputs_alone(tmp_path: Path, s3_endpoint: str, params: Params) -> None:
    cfg = _params(params, s3_endpoint, "no-such-bucket")
    with pytest.raises(StageError, match="s3://no-such-bucket/bars/.*NoSuchBucket"):
        _ingest(cfg, tmp_path)
    assert not (tmp_path / BARS).exists()
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket="empty")
    with pytest.raises(StageError, match=r"s3://empty/bars/: no \.csv or \.parquet object"):
        _ingest(_params(params, s3_endpoint, "empty"), tmp_path)


def test_s3_bad_object_is_named_by_its_url(tmp_path: Path, s3_endpoint: str, params: Params,
                                           bars: pd.DataFrame) -> None:
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket="bad")
    _put(s3, "bad", "bars/good.parquet", bars.iloc[:40], tmp_path)
    text = bars.iloc[40:44].assign(close=["1.0", "2.0", "oops", "3.0"])
    _put(s3, "bad", "bars/2013/bad.csv", text, tmp_path)
    with pytest.raises(StageError) as info:
        _ingest(_params(params, s3_endpoint, "bad"), tmp_path)
    assert "s3://bad/bars/2013/bad.csv: column 'close', line 4 (row 3): 'oops' is not a number" in str(info.value)
    assert "tradepipe-s3-" not in str(info.value)
