"""The bottom layer, importing nothing else of tradepipe: array types, the bar schema, atomic I/O, the one execution
accounting, market arrays, the scaler and the performance metrics.

Nothing is imported here (importing the package stays light); its public modules:

- ``execution``: The one execution accounting: targets decided at the close of bar t are filled at the close of bar
  t+1
- ``io``: Atomic writes: a temporary file beside the target, then a rename, so no reader sees half a file
- ``market``: Market arrays for the environments and the backtest: returns, scaled features and forecasts on one
  calendar
- ``metrics``: Performance metrics over a series of per-bar simple returns
- ``parallel``: Independent fits as Ray tasks: each with its own CPU budget and seed, results in input order
- ``progress``: Progress of long work: rich bars on a terminal, plain log lines elsewhere
- ``scaler``: Per-feature standardization fitted on the training window only, clipped to ±CLIP deviations
- ``schema``: The canonical bar schema: long format, one row per (timestamp, symbol)
- ``types``: Array type aliases shared by every package
"""

__all__ = ["execution", "io", "market", "metrics", "parallel", "progress", "scaler", "schema", "types"]
