"""Progress of long work (tuning trials, RL fits, walk-forward windows, backtest strategies).

On a terminal: rich progress bars on stderr, one row per piece of work in progress (an RL fit inside a
walk-forward window is a second row under the window's). Anywhere else (Airflow task logs, DVC's or CI's
captured output, a file): plain lines, each complete, e.g. ``tune trials: 3/6 (50%) 41 s, best val_loss
0.00123``: one when the work starts, one per step when there are few steps (at most ``EVERY_STEP_UP_TO``),
else one at most every ``every_s`` seconds, and one when it ends.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

EVERY_STEP_UP_TO = 50  # totals up to this print a line per step in plain mode

_live: Progress | None = None  # the one rich display of this process, shared by nested trackers
_rows = 0


class Tracker:
    """One piece of work: ``advance`` or ``update`` it as steps complete, with an optional note (best so far)."""

    def __init__(self, label: str, total: int, stream: TextIO, every_s: float, bar: Progress | None) -> None:
        self.label, self.total, self.stream, self.every_s = label, max(0, int(total)), stream, every_s
        self.done, self.note, self._shown = 0, "", -1
        self._bar = bar
        self._task: TaskID | None = bar.add_task(label, total=self.total or None, note="") if bar else None
        self._start = self._last = time.monotonic()
        if bar is None:
            self._line()

    def advance(self, steps: int = 1, note: str | None = None) -> None:
        """``steps`` more done."""
        self.update(self.done + steps, note)

    def update(self, done: int, note: str | None = None) -> None:
        """``done`` steps done so far (capped at the total); ``note`` replaces the previous one."""
        self.done = min(int(done), self.total) if self.total else int(done)
        if note is not None:
            self.note = note
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=self.done, note=self.note)
            return
        now = time.monotonic()
        if self.total <= EVERY_STEP_UP_TO or now - self._last >= self.every_s or self.done == self.total:
            self._line()

    def _line(self) -> None:
        self._last, self._shown = time.monotonic(), self.done
        share = f" ({100 * self.done // self.total}%)" if self.total else ""
        note = f", {self.note}" if self.note else ""
        print(f"{self.label}: {self.done}/{self.total or '?'}{share} {self._last - self._start:.0f} s{note}",
              file=self.stream, flush=True)

    def _finish(self) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.remove_task(self._task)
            self._bar.console.print(f"{self.label}: {self.done}/{self.total} in {time.monotonic() - self._start:.0f} s"
                                    + (f", {self.note}" if self.note else ""), markup=False, highlight=False)
        elif self._shown != self.done:
            self._line()  # the last state, unless the last step printed it


@contextmanager
def progress(label: str, total: int, *, stream: TextIO | None = None, every_s: float = 10.0) -> Iterator[Tracker]:
    """Track ``total`` steps of work named ``label``: a rich bar when ``stream`` (default stderr) is a terminal,
    plain lines otherwise."""
    global _live, _rows
    out = stream if stream is not None else sys.stderr
    interactive = out.isatty()
    if interactive and _live is None:
        _live = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                         TimeRemainingColumn(), TextColumn("{task.fields[note]}"), console=Console(file=out))
        _live.start()
    tracker = Tracker(label, total, out, every_s, _live if interactive else None)
    _rows += interactive
    try:
        yield tracker
    finally:
        tracker._finish()
        _rows -= interactive
        if interactive and _rows == 0 and _live is not None:
            _live.stop()
            _live = None
