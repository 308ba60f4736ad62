"""The deploy smoke test's command (`python -m tradepipe.orchestration.deploy VERSION`) names an unreadable bars
file instead of printing pyarrow's traceback (issue 16; unsigned versions: tests/integration/test_provenance.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tradepipe.paths import BARS


def _smoke(project: Path, version: str = "1") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tradepipe.orchestration.deploy", version], cwd=project,
                          capture_output=True, text=True, timeout=300)


def test_a_corrupt_bars_file_is_named(tmp_path: Path) -> None:
    (tmp_path / BARS).parent.mkdir(parents=True)
    (tmp_path / BARS).write_bytes(b"PAR1" + b"\x00" * 64)  # a truncated download
    out = _smoke(tmp_path)
    assert out.returncode == 1
    assert f"{tmp_path / BARS}: not a readable parquet file" in out.stderr
    assert "Traceback" not in out.stderr and "dvc checkout" in out.stderr
