"""core.progress: plain lines where output is a log, a rich bar on a terminal."""

from __future__ import annotations

import io
import os
import pty
import threading

from tradepipe.core.progress import EVERY_STEP_UP_TO, progress


def test_plain_lines_for_a_log_one_per_step_when_few() -> None:
    log = io.StringIO()
    with progress("tune trials", 3, stream=log) as p:
        p.advance()
        p.advance(note="best val_loss 0.5")
        p.advance(note="best val_loss 0.25")
    lines = log.getvalue().splitlines()
    assert [line.split(" s")[0].rsplit(" ", 1)[0] for line in lines] == [
        "tune trials: 0/3 (0%)", "tune trials: 1/3 (33%)", "tune trials: 2/3 (66%)", "tune trials: 3/3 (100%)"]
    assert lines[-1].endswith(", best val_loss 0.25") and "\x1b" not in log.getvalue()


def test_many_steps_are_throttled_but_the_end_is_always_printed() -> None:
    log = io.StringIO()
    total = 100 * EVERY_STEP_UP_TO
    with progress("sac timesteps", total, stream=log, every_s=3600.0) as p:
        for _ in range(total - 7):
            p.advance()
    lines = log.getvalue().splitlines()
    assert len(lines) == 2  # the start, then where it stopped
    assert lines[0].startswith(f"sac timesteps: 0/{total} (0%)")
    assert lines[1].startswith(f"sac timesteps: {total - 7}/{total} (99%)")


def _read_all(fd: int, into: list[bytes]) -> None:
    """Everything written to a pty's other side, until it is closed (EIO on Linux)."""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            return
        if not chunk:
            return
        into.append(chunk)


def test_a_terminal_gets_a_bar_and_nested_work_shares_it() -> None:
    main, child = pty.openpty()
    chunks: list[bytes] = []
    reader = threading.Thread(target=_read_all, args=(main, chunks))  # one read may return part of it
    reader.start()
    with open(child, "w", closefd=True) as tty:
        assert tty.isatty()
        with progress("windows", 2, stream=tty) as outer:
            with progress("window 1 sac", 10, stream=tty) as inner:
                inner.update(10)
            outer.advance(note="window 1 done")
    reader.join(timeout=30)
    os.close(main)
    written = b"".join(chunks).decode(errors="replace")
    assert "\x1b" in written  # a live display, not plain lines
    assert "window 1 sac: 10/10 in" in written and "windows: 1/2 in" in written
