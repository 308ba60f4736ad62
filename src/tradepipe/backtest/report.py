"""The backtest report: interactive plotly figures in one self-contained HTML file, and a DVC plots CSV.

Every series can be hidden or shown (click its legend entry; double-click to show it alone), read by hovering
(one tooltip per date for all series) and zoomed (drag; double-click to reset); the metrics table sorts by any
column (click its header). plotly.js is inlined once, so the file opens offline; the figures themselves
(``report_figures``) are what the backtest stage also logs to MLflow. Outputs are written atomically.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from tradepipe.core.io import write_text
from tradepipe.core.metrics import drawdown_series, rolling_sharpe

ROLLING_WINDOW = 126
SURVIVORSHIP_NOTE = (
    "Survivorship bias: the asset universe was picked today, from names that survived to the present. "
    "Companies that were delisted, went bankrupt or dropped out of the index are missing, so these "
    "backtest results are optimistic."
)
SECTIONS = {
    "equity": "Equity curves",
    "drawdowns": "Drawdowns",
    "rolling_sharpe": f"Rolling Sharpe ({ROLLING_WINDOW} days)",
    "monthly": "Monthly returns",
    "weights": "Weights over time",
    "costs": "Cumulative costs",
    "metrics": "Metrics",
    "holdout": "Holdout",
    "belief": "How much to believe this",
    "notes": "Notes",
}
METRIC_LABELS = {
    "total_return": "Total return",
    "cagr": "CAGR",
    "annual_volatility": "Annual volatility",
    "sharpe": "Sharpe",
    "sortino": "Sortino",
    "calmar": "Calmar",
    "max_drawdown": "Max drawdown",
    "max_drawdown_duration": "Max drawdown duration (bars)",
    "hit_rate": "Hit rate",
    "psr": "Probabilistic Sharpe (SR > 0)",
    "dsr": "Deflated Sharpe",
    "beta": "Beta",
    "alpha": "Alpha (annual)",
    "turnover": "Turnover (per year)",
    "cost_drag": "Cost drag (per year)",
    "exposure": "Exposure (gross)",
}
PERCENT_METRICS = frozenset({"total_return", "cagr", "annual_volatility", "max_drawdown", "hit_rate",
                             "alpha", "cost_drag"})
PLOTLY_CONFIG = {"displaylogo": False, "responsive": True, "scrollZoom": False,
                 "modeBarButtonsToRemove": ["select2d", "lasso2d"]}
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem auto;
max-width:1200px;color:#222;padding:0 1rem}
h1{margin-bottom:.2rem}.sub,.hint{color:#666;margin-top:0}.hint{font-size:.9rem}
h2{border-bottom:1px solid #ddd;padding-bottom:.3rem;margin-top:2.2rem}
.table-wrap{overflow-x:auto}
table{border-collapse:collapse;font-variant-numeric:tabular-nums;font-size:.9rem}
th,td{padding:.35rem .6rem;border-bottom:1px solid #eee;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left;position:sticky;left:0;background:#fff}
thead th{border-bottom:2px solid #999;cursor:pointer;user-select:none;vertical-align:bottom}
thead th[aria-sort=ascending]::after{content:" \\25B2"}thead th[aria-sort=descending]::after{content:" \\25BC"}
.notes li{margin:.4rem 0}
"""
# Sorts the metrics table by the clicked column (numbers by their raw value, missing last; names as text).
_SORT_JS = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("thead th").forEach(function (th, col) {
    th.addEventListener("click", function () {
      var down = th.getAttribute("aria-sort") !== "descending";
      table.querySelectorAll("thead th").forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", down ? "descending" : "ascending");
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col].getAttribute("data-v"), y = b.cells[col].getAttribute("data-v");
        if (col === 0) { return (down ? -1 : 1) * x.localeCompare(y); }
        if (x === "") { return y === "" ? 0 : 1; }
        if (y === "") { return -1; }
        return (down ? -1 : 1) * (parseFloat(x) - parseFloat(y));
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


def format_metric(name: str, value: float) -> str:
    """Human-readable metric value as shown in the report table."""
    if name in PERCENT_METRICS:
        return f"{value:.2%}"
    if name == "max_drawdown_duration":
        return f"{value:.0f}"
    if name in {"turnover", "exposure"}:
        return f"{value:.2f}"
    return f"{value:.3f}"


def _layout(fig: go.Figure, height: int, y_title: str, y_format: str | None = None) -> go.Figure:
    fig.update_layout(template="plotly_white", height=height, hovermode="x unified",
                      margin={"l": 60, "r": 20, "t": 40, "b": 40},
                      legend={"orientation": "v", "x": 1.01, "xanchor": "left", "y": 1.0, "itemclick": "toggle",
                              "itemdoubleclick": "toggleothers"})
    fig.update_yaxes(title_text=y_title, tickformat=y_format)
    return fig


def _x(index: pd.Index) -> list[str]:
    """Dates as short ISO text (plotly reads it as dates): day only for daily bars, else time and offset."""
    stamps = pd.DatetimeIndex(index)
    daily = bool((stamps == stamps.normalize()).all())
    return list(stamps.strftime("%Y-%m-%d" if daily else "%Y-%m-%dT%H:%M:%S%z"))


def _lines(returns: dict[str, pd.Series], transform: str) -> go.Figure:
    fig = go.Figure()
    for i, (name, r) in enumerate(returns.items()):
        y = ((1.0 + r).cumprod() if transform == "equity" else drawdown_series(r) if transform == "drawdown"
             else rolling_sharpe(r, ROLLING_WINDOW))
        fill = "tozeroy" if transform == "drawdown" and i == 0 else None
        fig.add_trace(go.Scatter(x=_x(y.index), y=y.to_numpy(dtype=np.float64), name=name, mode="lines", fill=fill,
                                 line={"width": 2.2 if i == 0 else 1.2},
                                 hovertemplate="%{y:.4g}" if transform != "drawdown" else "%{y:.2%}"))
    return fig


def _equity_figure(returns: dict[str, pd.Series]) -> go.Figure:
    fig = _layout(_lines(returns, "equity"), 480, "growth of 1 (log scale)")
    fig.update_yaxes(type="log")
    fig.update_xaxes(rangeslider={"visible": True, "thickness": 0.06}, rangeselector={"buttons": [
        {"count": 1, "label": "1y", "step": "year", "stepmode": "backward"},
        {"count": 3, "label": "3y", "step": "year", "stepmode": "backward"},
        {"step": "all", "label": "all"}]})
    return fig


def _drawdown_figure(returns: dict[str, pd.Series]) -> go.Figure:
    return _layout(_lines(returns, "drawdown"), 360, "below running peak", ".0%")


def _rolling_sharpe_figure(returns: dict[str, pd.Series]) -> go.Figure:
    fig = _layout(_lines(returns, "sharpe"), 360, "annualized Sharpe")
    fig.add_hline(y=0.0, line={"color": "#444", "width": 1})
    if max(len(r) for r in returns.values()) < ROLLING_WINDOW:
        fig.add_annotation(text=f"fewer than {ROLLING_WINDOW} bars", xref="paper", yref="paper", x=0.5, y=0.5,
                           showarrow=False)
    return fig


def monthly_returns_table(returns: pd.Series) -> pd.DataFrame:
    """Compounded calendar-month returns as a year x month (1..12) table, NaN where no data."""
    monthly = (1.0 + returns).resample("ME").prod() - 1.0
    observed = returns.resample("ME").count() > 0
    monthly = monthly[observed]
    table = pd.DataFrame({"year": monthly.index.year, "month": monthly.index.month, "r": monthly.to_numpy()})
    return table.pivot(index="year", columns="month", values="r").reindex(columns=range(1, 13))


def _percent_text(values: np.ndarray) -> list[list[str]]:
    return [[f"{v:.1%}" if np.isfinite(v) else "" for v in row] for row in values]


def _monthly_figure(returns: pd.Series) -> go.Figure:
    table = monthly_returns_table(returns)
    by_year = (1.0 + returns).groupby(returns.index.year).prod() - 1.0
    yearly = by_year.reindex(table.index).to_numpy(dtype=np.float64)[:, None]
    values = table.to_numpy(dtype=np.float64)
    years = [str(y) for y in table.index]
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, column_widths=[0.89, 0.11], horizontal_spacing=0.01)
    for col, (data, x) in enumerate(((values, MONTHS), (yearly, ["Year"])), start=1):
        finite = data[np.isfinite(data)]
        limit = float(np.max(np.abs(finite))) if finite.size and np.max(np.abs(finite)) > 0 else 0.01
        cells = [[v if math.isfinite(v) else None for v in row] for row in data.tolist()]
        fig.add_trace(go.Heatmap(z=cells, x=x, y=years,
                                 text=_percent_text(data), texttemplate="%{text}", colorscale="RdYlGn", zmid=0.0,
                                 zmin=-limit, zmax=limit, showscale=False, xgap=1, ygap=1,
                                 hovertemplate="%{y} %{x}: %{text}<extra></extra>"), row=1, col=col)
    fig.update_layout(template="plotly_white", height=max(220, 60 + 26 * len(years)),
                      margin={"l": 60, "r": 20, "t": 30, "b": 20})
    fig.update_xaxes(side="top")
    fig.update_yaxes(autorange="reversed", type="category")
    return fig


def _weights_figure(weights: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    filled = weights.fillna(0.0)
    for column in filled.columns:
        w = filled[column].to_numpy(dtype=np.float64)
        for group, part in (("long", np.clip(w, 0.0, None)), ("short", np.clip(w, None, 0.0))):
            if group == "short" and not (part < 0).any():
                continue
            fig.add_trace(go.Scatter(x=_x(filled.index), y=part, name=str(column), legendgroup=str(column),
                                     showlegend=group == "long", stackgroup=group, mode="lines",
                                     line={"width": 0.5}, hovertemplate="%{y:.1%}"))
    return _layout(fig, 460, "weight (shorts below 0)", ".0%")


def _costs_figure(costs: pd.Series) -> go.Figure:
    cumulative = costs.fillna(0.0).cumsum()
    fig = go.Figure(go.Scatter(x=_x(cumulative.index), y=cumulative.to_numpy(dtype=np.float64), name="costs",
                               mode="lines", line={"color": "#d62728", "width": 1.6}, hovertemplate="%{y:.3%}"))
    return _layout(fig, 320, "sum of costs (% of equity)", ".2%")


def report_figures(returns: dict[str, pd.Series], weights: pd.DataFrame | None = None,
                   costs: pd.Series | None = None) -> dict[str, go.Figure]:
    """The report's figures by section key (the first ``returns`` key is the strategy; the monthly heatmap is
    its own): equity, drawdowns, rolling_sharpe, monthly, and weights and costs when given."""
    _check_returns(returns)
    figures = {"equity": _equity_figure(returns), "drawdowns": _drawdown_figure(returns),
               "rolling_sharpe": _rolling_sharpe_figure(returns),
               "monthly": _monthly_figure(next(iter(returns.values())))}
    if weights is not None:
        figures["weights"] = _weights_figure(weights)
    if costs is not None:
        figures["costs"] = _costs_figure(costs)
    return figures


def _metrics_table(metrics: dict[str, dict[str, float]]) -> str:
    """One row per strategy, one column per metric; each cell keeps its raw value (data-v) to sort by."""
    keys = [k for k in METRIC_LABELS if any(k in m for m in metrics.values())]
    keys += list(dict.fromkeys(k for m in metrics.values() for k in m if k not in METRIC_LABELS))
    head = "".join(f'<th title="{html.escape(k)}">{html.escape(METRIC_LABELS.get(k, k))}</th>' for k in keys)
    rows = []
    for name, m in metrics.items():
        cells = []
        for key in keys:
            value = m.get(key)
            if value is None or not math.isfinite(value):
                cells.append(f'<td data-v="" title="{html.escape(key)}">&mdash;</td>')
            else:
                cells.append(f'<td data-v="{float(value)!r}" title="{html.escape(key)}">'
                             f"{html.escape(format_metric(key, value))}</td>")
        rows.append(f'<tr><td data-v="{html.escape(name)}">{html.escape(name)}</td>{"".join(cells)}</tr>')
    return ('<p class="hint">Click a column header to sort by it (again to reverse).</p><div class="table-wrap">'
            f'<table class="sortable"><thead><tr><th>strategy</th>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def _section(key: str, body: str) -> str:
    return f'<section id="{key}"><h2>{html.escape(SECTIONS[key])}</h2>\n{body}\n</section>'


def _plot(key: str, fig: go.Figure) -> str:
    return str(fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"fig-{key}", config=PLOTLY_CONFIG))


def _check_returns(returns: dict[str, pd.Series]) -> None:
    if not returns:
        raise ValueError("write_report needs at least one return series (the strategy first)")
    for name, r in returns.items():
        if len(r) == 0:
            raise ValueError(f"return series {name!r} is empty")
        if not isinstance(r.index, pd.DatetimeIndex):
            raise ValueError(f"return series {name!r} needs a DatetimeIndex, got {type(r.index).__name__}")


def write_report(path: Path, *, returns: dict[str, pd.Series], metrics: dict[str, dict[str, float]],
                 weights: pd.DataFrame | None = None, costs: pd.Series | None = None,
                 title: str = "tradepipe backtest", notes: Sequence[str] = (),
                 figures: dict[str, go.Figure] | None = None, belief: Sequence[str] = (),
                 holdout: dict[str, dict[str, float]] | None = None, holdout_text: str = "") -> Path:
    """Write the HTML report to ``path`` atomically and return it; the first ``returns`` key is the strategy.

    ``belief``: the lines of the "How much to believe this" section (trials, deflation, seeds), after the metrics.
    ``holdout``: the metrics of the holdout bars (a table of their own after the main one, ``holdout_text`` above
    it); the main ``metrics`` leave those bars out.

    ``figures``: ``report_figures`` of the same inputs when the caller already built them (to log them too).
    A survivorship-bias note is always included after the caller's ``notes``.
    """
    figures = report_figures(returns, weights, costs) if figures is None else figures
    path = Path(path)
    strategy = next(iter(returns))
    start = min(r.index[0] for r in returns.values())
    end = max(r.index[-1] for r in returns.values())
    hint = ('<p class="hint">Click a legend entry to hide or show a series, double-click it to show it alone; '
            "drag to zoom, double-click the chart to reset; hover for every series' value on a date.</p>")
    sections = [_section(key, (f"<p>{html.escape(strategy)}, compounded per calendar month.</p>"
                               if key == "monthly" else hint if key == "equity" else "") + _plot(key, fig))
                for key, fig in figures.items()]
    sections.append(_section("metrics", _metrics_table(metrics)))
    if holdout:
        sections.append(_section("holdout", f"<p>{html.escape(holdout_text)}</p>" + _metrics_table(holdout)))
    if belief:
        sections.append(_section("belief", '<ul class="notes">' + "".join(
            f"<li>{html.escape(line)}</li>" for line in belief) + "</ul>"))
    all_notes: Iterable[str] = dict.fromkeys([*notes, SURVIVORSHIP_NOTE])
    items = "".join(f"<li>{html.escape(note)}</li>" for note in all_notes)
    sections.append(_section("notes", f'<ul class="notes">{items}</ul>'))
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style>\n"
        f'<script type="text/javascript">{get_plotlyjs()}</script></head><body>\n'
        f"<h1>{html.escape(title)}</h1>\n"
        f'<p class="sub">{html.escape(", ".join(returns))} &middot; {start:%Y-%m-%d} to {end:%Y-%m-%d}</p>\n'
        + "\n".join(sections) + f"\n<script>{_SORT_JS}</script>\n</body></html>\n"
    )
    write_text(page, path)
    return path


def equity_plot_csv(returns: dict[str, pd.Series], path: Path) -> None:
    """Write a tidy CSV (``date`` + one equity column per name, growth of 1) for ``dvc plots``."""
    _check_returns(returns)
    equity = pd.concat({name: (1.0 + r).cumprod() for name, r in returns.items()}, axis=1).sort_index()
    index = pd.DatetimeIndex(equity.index)
    dates = index.strftime("%Y-%m-%d") if (index == index.normalize()).all() else index.strftime(
        "%Y-%m-%dT%H:%M:%S%z")
    equity.index = pd.Index(dates, name="date")
    write_text(equity.to_csv(float_format="%.10g", lineterminator="\n"), path)
