"""OOD scores of the default run's live policy over the whole history, against references fitted on two windows.

How the guard's default threshold (params.yaml trading.ood_threshold: 4) was chosen: a reference fitted on a
window scores about 1 on that window's own bars; the score of each later bar says how unfamiliar it is. Needs the
default run's outputs (``make run``): data/raw/bars.parquet, features, predictions and models/agent_live.

    python benchmarks/ood_scores.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tradepipe.agents.policy import TradingPolicy
from tradepipe.core.io import read_parquet
from tradepipe.paths import BARS, FEATURES, LIVE_AGENT, PREDICTIONS
from tradepipe.risk import OodReference

WINDOWS = (("2011-01-01", "2014-01-01"), ("2019-01-01", "2022-01-01"))  # the first RL window's years; the latest
YEARS = (1990, 2000, 2008, 2011, 2015, 2020, 2022)


def main(root: Path = Path(".")) -> None:
    policy = TradingPolicy.load(root / LIVE_AGENT)
    symbols = policy.spec.symbols
    bars = read_parquet(root / BARS)
    features = read_parquet(root / FEATURES)
    market = policy.market_from_tables(bars[bars["symbol"].isin(symbols)],
                                       features[features["symbol"].isin(symbols)], read_parquet(root / PREDICTIONS))
    print(f"live policy: {len(symbols)} symbols, {market.features.shape[2]} features, "
          f"{market.features.shape[1] * market.features.shape[2] + len(symbols)} market columns")
    for start, stop in WINDOWS:
        window = market.window(pd.Timestamp(start, tz="UTC"), pd.Timestamp(stop, tz="UTC"))
        ref = OodReference.fit(window)
        scores = pd.Series(ref.scores(market), index=market.timestamps)
        own = np.quantile(ref.scores(window), [0.5, 0.99, 1.0])
        print(f"\nreference {start} to {stop}: on its own bars median {own[0]:.2f}, q99 {own[1]:.2f}, max {own[2]:.2f}")
        for year in YEARS:
            y = scores[scores.index.year == year]
            print(f"  {year}: median {y.median():.2f}, q99 {y.quantile(0.99):.2f}, max {y.max():.2f}")
        top = ", ".join(f"{t.date()} {v:.2f}" for t, v in scores.nlargest(5).items())
        print(f"  highest: {top}; bars above 4: {int((scores > 4).sum())} of {len(scores)}")


if __name__ == "__main__":
    main()
