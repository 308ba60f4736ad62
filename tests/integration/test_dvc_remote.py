"""The project's DVC remote (`storage`, s3://tradepipe/dvc in .dvc/config) for real: push, then pull into a clone.

The S3 endpoint is the shared local S3 server, set with `dvc remote modify --local storage endpointurl`, as a
developer points the committed remote at another MinIO than the compose stack's http://localhost:9000.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import boto3

from tests import ROOT


def _sh(cwd: Path, *args: str) -> str:
    out = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True)
    assert out.returncode == 0, f"{' '.join(args)} failed:\n{out.stdout}\n{out.stderr}"
    return out.stdout


def _dvc(cwd: Path, *args: str) -> str:
    return _sh(cwd, sys.executable, "-m", "dvc", *args)


def test_committed_remote_config() -> None:
    listed = set(_dvc(ROOT, "config", "--list", "--project").split())
    assert {"core.remote=storage", "remote.storage.url=s3://tradepipe/dvc",
            "remote.storage.endpointurl=http://localhost:9000"} <= listed


def test_push_then_pull_into_a_clean_clone(tmp_path: Path, s3_endpoint: str) -> None:
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket="tradepipe")
    src, clone = tmp_path / "src", tmp_path / "clone"
    src.mkdir()
    _sh(src, "git", "init", "-q")
    _sh(src, "git", "config", "user.email", "ci@tradepipe.test")
    _sh(src, "git", "config", "user.name", "ci")
    _dvc(src, "init", "-q")
    shutil.copy(ROOT / ".dvc/config", src / ".dvc/config")  # the project's remote, as committed
    _dvc(src, "remote", "modify", "--local", "storage", "endpointurl", s3_endpoint)

    payload = b"timestamp,symbol,close\n" + b"".join(
        f"2020-01-{d:02d}T00:00:00Z,AAPL,{300 + d * 0.5:.2f}\n".encode() for d in range(1, 29)) + bytes(range(256))
    (src / "data").mkdir()
    (src / "data/bars.csv").write_bytes(payload)
    _dvc(src, "add", "-q", "data/bars.csv")
    _sh(src, "git", "add", ".")
    _sh(src, "git", "commit", "-q", "-m", "tracked data")
    _dvc(src, "push")

    md5 = hashlib.md5(payload).hexdigest()
    key = f"dvc/files/md5/{md5[:2]}/{md5[2:]}"
    stored = boto3.client("s3", endpoint_url=s3_endpoint).get_object(Bucket="tradepipe", Key=key)["Body"].read()
    assert stored == payload

    _sh(tmp_path, "git", "clone", "-q", str(src), str(clone))
    assert not (clone / "data/bars.csv").exists()  # git carries only the .dvc pointer
    _dvc(clone, "remote", "modify", "--local", "storage", "endpointurl", s3_endpoint)
    _dvc(clone, "pull")
    assert (clone / "data/bars.csv").read_bytes() == payload
    assert "data/bars.csv" not in _dvc(clone, "status", "--cloud")  # in sync with the remote
