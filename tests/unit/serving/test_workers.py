"""The front's end of a step worker's pipe: new bars travel with the worker's next message, in the order recorded."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tradepipe.serving.workers import FLUSH_BARS, _Worker
from tradepipe.trading.posted import PostedBars


def _bars(k: int) -> PostedBars:
    return PostedBars.of([datetime(2020, 1, 1, tzinfo=UTC) + timedelta(days=k)] * 2, ["AAA", "BBB"],
                         [100.0 + k, 50.0 + k], {})


def test_bars_go_with_the_next_step_and_a_worker_not_stepping_gets_them_in_one_message_when_enough_are_held(
        ) -> None:
    """(``flush`` is what the account endpoint runs after each answer.) The bars also pickle compactly, each
    distinct timestamp once, and load equal."""
    worker = _Worker(Path("."), "sqlite://")
    worker.pipe, back = multiprocessing.Pipe()
    worker.add_bars(_bars(0))
    worker.add_bars(_bars(1))
    assert not back.poll()                                  # no message of their own
    worker.send("step", "the request")
    kind, bars, payload = back.recv()
    assert (kind, payload) == ("step", "the request")
    assert [b.values["close"].tolist() for b in bars] == [[100.0, 50.0], [101.0, 51.0]]  # in the order recorded
    assert [b.timestamps for b in bars] == [_bars(0).timestamps, _bars(1).timestamps]
    assert all(str(t.tz) == "UTC" for b in bars for t in b.timestamps)
    for k in range(FLUSH_BARS - 1):
        worker.add_bars(_bars(k))
        worker.flush()
    assert not back.poll()                                  # fewer than FLUSH_BARS postings held: kept
    worker.add_bars(_bars(FLUSH_BARS - 1))
    assert not back.poll()                                  # held until flushed (after an answer has gone out)
    worker.flush()                                          # the FLUSH_BARS-th posting held: sent
    kind, bars, payload = back.recv()
    assert kind == "bars" and payload is None
    assert [b.values["close"][0] for b in bars] == [100.0 + k for k in range(FLUSH_BARS)]  # each once, in order
    worker.send("step", "next")
    assert back.recv() == ("step", [], "next")              # nothing held twice
