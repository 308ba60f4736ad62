"""Atomic writes (issue 16): the leftover of a killed write is removed by the next write; parquet read errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tradepipe.core.io import UnreadableFileError, atomic_path, read_parquet, remove_stale_temporaries, write_text

_KILLED_WRITE = """
import sys, time
from tradepipe.core.io import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    tmp.write_text("half a file")
    print("writing", flush=True)
    time.sleep(60)
"""


def _killed_write(target: Path) -> list[Path]:
    """Start a real write of ``target``, SIGKILL it mid-write; return the temporary files it left."""
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITE, str(target)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    return sorted(target.parent.glob(f".{target.name}.*.tmp"))


def test_a_killed_writes_leftover_is_removed_by_the_next_write(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    leftover = _killed_write(target)
    assert len(leftover) == 1 and leftover[0].read_text() == "half a file" and not target.exists()
    write_text("{}", target)
    assert target.read_text() == "{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_a_write_in_progress_and_other_targets_are_left_alone(tmp_path: Path) -> None:
    target = tmp_path / "a.json"
    other = _killed_write(tmp_path / "a.json.bak")  # shares the prefix ".a.json."
    with atomic_path(target) as tmp:  # this process's own write is in progress
        assert remove_stale_temporaries(target) == []
        assert tmp.exists()
    assert all(p.exists() for p in other)
    assert remove_stale_temporaries(tmp_path / "a.json.bak") == other


@pytest.mark.parametrize("damage", ["truncated", "garbage", "missing"])
def test_unreadable_parquet_names_the_file(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "bars.parquet"
    pd.DataFrame({"close": [1.0, 2.0]}).to_parquet(path)
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"PAR1" + os.urandom(200) + b"PAR1")
    else:
        path.unlink()
    with pytest.raises(UnreadableFileError) as err:
        read_parquet(path)
    assert str(path) in str(err.value) and ("dvc" in str(err.value))
    assert len(str(err.value)) < 700


def test_readable_parquet_reads(tmp_path: Path) -> None:
    frame = pd.DataFrame({"close": [1.0, 2.0], "symbol": ["A", "B"]})
    frame.to_parquet(tmp_path / "x.parquet")
    pd.testing.assert_frame_equal(read_parquet(tmp_path / "x.parquet"), frame)

