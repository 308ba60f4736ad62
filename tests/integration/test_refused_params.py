"""A params typo loses nothing (issue 16), in a copy of the project on the smoke profile (about 30 s).

`tradepipe run` refuses the typo before `dvc repro` starts; a bare `dvc repro` deletes the stage's outputs
before the stage refuses its params, and `dvc checkout` restores all of them, metrics included (cached).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from tests.fixtures.project import BIN, project_copy, run

OUTPUTS = ["metrics/ingest.json", "data/raw/manifest.json", "data/raw/bars.parquet", "data/raw/benchmark.parquet"]
GOOD, TYPO = "\n  source: skfolio_sp500 ", "\n  sourc: skfolio_sp500 "  # under data:, a param of ingest


def _sums(project: Path) -> dict[str, str | None]:
    return {name: hashlib.sha256((project / name).read_bytes()).hexdigest() if (project / name).exists() else None
            for name in OUTPUTS}


def test_a_params_typo_leaves_every_output_of_the_stage_restorable(tmp_path: Path) -> None:
    project = project_copy(tmp_path)
    assert run([str(BIN / "tradepipe"), "profile", "smoke"], project).returncode == 0
    done = run([str(BIN / "dvc"), "repro", "ingest"], project)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    before = _sums(project)
    assert None not in before.values()
    params = project / "params.yaml"
    good = params.read_text()
    assert GOOD in good
    params.write_text(good.replace(GOOD, TYPO))

    refused = run([str(BIN / "tradepipe"), "run", "--stage", "ingest"], project)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "data.sourc: unknown key: did you mean 'source'?" in refused.stderr
    assert _sums(project) == before  # dvc repro never started

    bare = run([str(BIN / "dvc"), "repro", "ingest"], project)  # DVC removes the outputs, then the stage refuses
    assert bare.returncode != 0 and "data.sourc" in bare.stdout + bare.stderr
    assert _sums(project)["metrics/ingest.json"] is None

    params.write_text(good)
    restored = run([str(BIN / "dvc"), "checkout", "ingest"], project)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert _sums(project) == before
    assert "/ingest.json" in (project / "metrics" / ".gitignore").read_text().split()  # cached: git-ignored
