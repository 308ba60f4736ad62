"""The walk-forward backtest: windows and stitched targets, benchmarks, strategies, the report.

Nothing is imported here (importing the package stays light); its public modules:

- ``agent_walk_forward``: The agent ensemble walked forward: refitted on each window's past (as rl_train fits it),
  traded on its slice
- ``benchmarks``: Benchmark allocations refitted on a trailing window: inverse volatility, minimum variance, HRP
- ``evaluation``: The out-of-sample comparison: benchmark runs, risk-managed ablations, buy-and-hold of the index,
  metrics (the Deflated Sharpe for the strategies the trials selected), the seeds' spread and notes
- ``report``: Self-contained HTML backtest report (matplotlib figures embedded as base64 PNG) and a DVC plots CSV
- ``strategies``: Target-weight schedules of the reference strategies, all executed by the same engine and costs
- ``walk_forward``: Walk-forward: refit on each window's training span only, trade its test slice, stitch the slices
"""

__all__ = ["agent_walk_forward", "benchmarks", "evaluation", "report", "strategies", "walk_forward"]
