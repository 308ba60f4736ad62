"""Atomic writes: a temporary file beside the target, then a rename, so no reader sees half a file.

The temporary file is ``.<name>.<pid>.<random>.tmp``; a write killed before its rename leaves one behind, and the
next write of the same target removes every such leftover whose process is gone.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from glob import escape as glob_escape
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

MAX_REASON = 300  # characters of the underlying error quoted in UnreadableFileError


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o644)  # mkstemp creates 0600; outputs are read like ordinary files
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


_TMP_MIDDLE = re.compile(r"(?:(?P<pid>\d+)\.)?[a-z0-9_]{8}")  # mkstemp's 8 random characters, after our pid


def remove_stale_temporaries(target: str | Path) -> list[Path]:
    """Remove the temporary files of killed writes of ``target`` (their writer's process is gone); return them.

    Files of a live process (a write in progress) are kept; so are other targets' files that share the prefix.
    """
    target = Path(target)
    prefix = f".{target.name}."
    removed = []
    for path in target.parent.glob(f".{glob_escape(target.name)}.*.tmp"):
        match = _TMP_MIDDLE.fullmatch(path.name[len(prefix):-len(".tmp")])
        if match is None or (match["pid"] is not None and _alive(int(match["pid"]))):
            continue
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def write_parquet(df: pd.DataFrame, target: str | Path) -> None:
    """Write a DataFrame to parquet atomically."""
    with atomic_path(target) as tmp:
        df.to_parquet(tmp, index=False)


def write_text(text: str, target: str | Path) -> None:
    """Write UTF-8 text atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="")


def write_json(obj: Any, target: str | Path) -> None:
    """Write JSON atomically (sorted keys, so DVC hashes are stable)."""
    write_text(json.dumps(obj, indent=2, sort_keys=True, default=float) + "\n", target)


class UnreadableFileError(ValueError):
    """A file cannot be read as what it should be; the message names the file and says what to do."""


def read_parquet(path: str | Path) -> pd.DataFrame:
    """Read a parquet file; UnreadableFileError naming the file (not pyarrow's traceback) when it is missing,
    truncated or corrupt."""
    path = Path(path)
    try:
        return pd.read_parquet(path)
    except FileNotFoundError as exc:
        raise UnreadableFileError(f"{path}: no such file; run the stage that writes it (dvc repro)") from exc
    except (OSError, ValueError, pa.ArrowException) as exc:
        reason = str(exc).strip().splitlines()[0][:MAX_REASON] if str(exc).strip() else type(exc).__name__
        raise UnreadableFileError(
            f"{path}: not a readable parquet file ({reason}); it may be truncated or corrupt: restore it with "
            f"`dvc checkout {path}` or rerun the stage that writes it (`dvc repro --force STAGE`)") from exc


def read_json(path: str | Path) -> Any:
    """Read a JSON file."""
    return json.loads(Path(path).read_text(encoding="utf-8"))
