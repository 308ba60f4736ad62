"""Lineage helpers: the git commit in a checkout and in a container image (no .git)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tradepipe.runtime.tracking import git_commit


def test_git_commit_in_a_checkout_is_head(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    git = ["git", "-c", "user.email=ci@tradepipe", "-c", "user.name=ci"]
    subprocess.run([*git, "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "params.yaml").write_text("seed: 1\n")
    subprocess.run([*git, "add", "-A"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "init"], cwd=tmp_path, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True, check=True)
    monkeypatch.setenv("TRADEPIPE_GIT_COMMIT", "from-the-image")  # a checkout wins over the image's build arg
    assert git_commit(tmp_path) == head.stdout.strip() != ""


def test_git_commit_outside_a_checkout_comes_from_the_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))  # never find a repository above tmp_path
    monkeypatch.delenv("TRADEPIPE_GIT_COMMIT", raising=False)
    assert git_commit(tmp_path) == "unknown"
    monkeypatch.setenv("TRADEPIPE_GIT_COMMIT", "0123abc")
    assert git_commit(tmp_path) == "0123abc"
