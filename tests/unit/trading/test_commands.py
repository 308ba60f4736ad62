"""trading.commands: how `tradepipe trade status` writes a stored cell."""

from __future__ import annotations

import pandas as pd

from tradepipe.trading.commands import _text


def test_a_missing_rule_or_reason_is_blank_not_nan() -> None:
    events = pd.DataFrame({"rule": [float("nan"), "stale_data"]})  # an open event has no rule: NaN once read
    cells = [_text(v) for v in pd.Series([None, float("nan"), "stale_data"], dtype=object)]
    assert cells == ["", "", "stale_data"]
    assert [_text(e.rule) for e in events.itertuples()] == ["", "stale_data"]
