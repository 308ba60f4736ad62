"""Self-contained HTML backtest report (matplotlib figures embedded as base64 PNG) and a DVC plots CSV.

Figures are drawn on Agg canvases directly (no pyplot global state), so rendering works headless and
does not change the caller's matplotlib backend. Outputs are written atomically (temp file + rename).
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, PercentFormatter

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

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem auto;
max-width:1100px;color:#222;padding:0 1rem}
h1{margin-bottom:.2rem}.sub{color:#666;margin-top:0}
h2{border-bottom:1px solid #ddd;padding-bottom:.3rem;margin-top:2.2rem}
img{max-width:100%;height:auto}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
th,td{padding:.35rem .8rem;border-bottom:1px solid #eee;text-align:right}
th:first-child,td:first-child{text-align:left}
thead th{border-bottom:2px solid #999}
.notes li{margin:.4rem 0}
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


def _new_figure(height: float = 3.6) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(10, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.grid(True, alpha=0.3)
    return fig, ax


def _png_base64(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _legend(ax: Axes, returns: dict[str, pd.Series], loc: Literal["upper left", "lower left"]) -> None:
    """One-row legend and a common date range for the per-series figures."""
    ax.legend(loc=loc, ncol=min(len(returns), 4), fontsize=9, framealpha=0.85)
    ax.set_xlim(min(r.index[0] for r in returns.values()), max(r.index[-1] for r in returns.values()))


def _equity_figure(returns: dict[str, pd.Series]) -> Figure:
    fig, ax = _new_figure()
    for i, (name, r) in enumerate(returns.items()):
        equity = (1.0 + r).cumprod()
        ax.plot(equity.index, equity.to_numpy(), label=name, lw=1.6 if i == 0 else 1.1, zorder=3 - min(i, 2))
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_ylabel("growth of 1 (log scale)")
    _legend(ax, returns, "upper left")
    return fig


def _drawdown_figure(returns: dict[str, pd.Series]) -> Figure:
    fig, ax = _new_figure(3.0)
    for i, (name, r) in enumerate(returns.items()):
        dd = drawdown_series(r)
        if i == 0:
            ax.fill_between(dd.index, dd.to_numpy(), 0.0, alpha=0.35, label=name, color="C0")
        else:
            ax.plot(dd.index, dd.to_numpy(), lw=1.0, label=name, color=f"C{i}")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_ylabel("below running peak")
    _legend(ax, returns, "lower left")
    return fig


def _rolling_sharpe_figure(returns: dict[str, pd.Series]) -> Figure:
    fig, ax = _new_figure(3.0)
    for i, (name, r) in enumerate(returns.items()):
        rs = rolling_sharpe(r, ROLLING_WINDOW)
        ax.plot(rs.index, rs.to_numpy(), lw=1.4 if i == 0 else 1.0, label=name)
    ax.axhline(0.0, color="#444", lw=0.8)
    if max(len(r) for r in returns.values()) < ROLLING_WINDOW:
        ax.text(0.5, 0.5, f"fewer than {ROLLING_WINDOW} bars", transform=ax.transAxes, ha="center")
    ax.set_ylabel("annualized Sharpe")
    _legend(ax, returns, "upper left")
    return fig


def monthly_returns_table(returns: pd.Series) -> pd.DataFrame:
    """Compounded calendar-month returns as a year x month (1..12) table, NaN where no data."""
    monthly = (1.0 + returns).resample("ME").prod() - 1.0
    observed = returns.resample("ME").count() > 0
    monthly = monthly[observed]
    table = pd.DataFrame({"year": monthly.index.year, "month": monthly.index.month, "r": monthly.to_numpy()})
    return table.pivot(index="year", columns="month", values="r").reindex(columns=range(1, 13))


def _annotate(ax: Axes, values: np.ndarray, norm: TwoSlopeNorm, fontsize: float) -> None:
    for (row, col), v in np.ndenumerate(values):
        if np.isfinite(v):
            dark = abs(float(norm(v)) - 0.5) > 0.35
            ax.text(col, row, f"{v:.1%}", ha="center", va="center", fontsize=fontsize,
                    color="white" if dark else "black")


def _monthly_figure(returns: pd.Series) -> Figure:
    table = monthly_returns_table(returns)
    by_year = (1.0 + returns).groupby(returns.index.year).prod() - 1.0
    yearly = by_year.reindex(table.index).to_numpy(dtype=np.float64)
    n_years = len(table)
    fig = Figure(figsize=(10, max(2.0, 1.0 + 0.32 * n_years)), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax, ax_year = fig.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [12, 1.4]})
    fontsize = 8 if n_years <= 20 else 7
    values = table.to_numpy(dtype=np.float64)
    for axis, data, labels in ((ax, values, ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep",
                                                "Oct", "Nov", "Dec"]),
                               (ax_year, yearly[:, None], ["Year"])):
        finite = data[np.isfinite(data)]
        limit = float(np.max(np.abs(finite))) if finite.size and np.max(np.abs(finite)) > 0 else 0.01
        norm = TwoSlopeNorm(vcenter=0.0, vmin=-limit, vmax=limit)
        axis.imshow(np.ma.masked_invalid(data), cmap="RdYlGn", norm=norm, aspect="auto",
                    interpolation="nearest")
        _annotate(axis, data, norm, fontsize)
        axis.set_xticks(range(len(labels)), labels)
        axis.xaxis.tick_top()
        axis.tick_params(length=0)
        for spine in axis.spines.values():
            spine.set_visible(False)
    ax.set_yticks(range(n_years), [str(y) for y in table.index])
    return fig


def _weights_figure(weights: pd.DataFrame) -> Figure:
    fig, ax = _new_figure(4.2)
    colors = [f"C{i % 10}" if weights.shape[1] <= 10 else _tab20(i) for i in range(weights.shape[1])]
    values = weights.fillna(0.0).to_numpy(dtype=np.float64).T
    labels = [str(c) for c in weights.columns]
    ax.stackplot(weights.index, np.clip(values, 0.0, None), labels=labels, colors=colors, lw=0)
    if (values < 0).any():
        ax.stackplot(weights.index, np.clip(values, None, 0.0), colors=colors, lw=0)
        ax.axhline(0.0, color="#444", lw=0.8)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_ylabel("weight (shorts below 0)")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, ncol=1 + weights.shape[1] // 16,
              frameon=False)
    return fig


def _tab20(i: int) -> tuple[float, float, float, float]:
    rgba = colormaps["tab20"](i % 20)
    return (float(rgba[0]), float(rgba[1]), float(rgba[2]), float(rgba[3]))


def _costs_figure(costs: pd.Series) -> Figure:
    fig, ax = _new_figure(3.0)
    cumulative = costs.fillna(0.0).cumsum()
    ax.plot(cumulative.index, cumulative.to_numpy(), color="C3", lw=1.4)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_ylabel("sum of costs (% of equity)")
    return fig


def _metrics_table(metrics: dict[str, dict[str, float]]) -> str:
    names = list(metrics)
    keys = [k for k in METRIC_LABELS if any(k in m for m in metrics.values())]
    keys += list(dict.fromkeys(k for m in metrics.values() for k in m if k not in METRIC_LABELS))
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    rows = []
    for key in keys:
        cells = "".join(
            f"<td>{html.escape(format_metric(key, metrics[n][key])) if key in metrics[n] else '&mdash;'}</td>"
            for n in names)
        label = html.escape(METRIC_LABELS.get(key, key))
        rows.append(f'<tr><td title="{html.escape(key)}">{label}</td>{cells}</tr>')
    return f"<table><thead><tr><th>metric</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _section(key: str, body: str) -> str:
    return f'<section id="{key}"><h2>{html.escape(SECTIONS[key])}</h2>\n{body}\n</section>'


def _image(fig: Figure, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{_png_base64(fig)}">'


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
                 title: str = "tradepipe backtest", notes: Sequence[str] = ()) -> Path:
    """Write the HTML report to ``path`` atomically and return it; the first ``returns`` key is the strategy.

    A survivorship-bias note is always included after the caller's ``notes``.
    """
    _check_returns(returns)
    path = Path(path)
    strategy, strategy_returns = next(iter(returns.items()))
    start = min(r.index[0] for r in returns.values())
    end = max(r.index[-1] for r in returns.values())
    sections = [
        _section("equity", _image(_equity_figure(returns), "equity curves")),
        _section("drawdowns", _image(_drawdown_figure(returns), "drawdowns")),
        _section("rolling_sharpe", _image(_rolling_sharpe_figure(returns), "rolling Sharpe")),
        _section("monthly", f"<p>{html.escape(strategy)}, compounded per calendar month.</p>"
                 + _image(_monthly_figure(strategy_returns), "monthly returns heatmap")),
    ]
    if weights is not None:
        sections.append(_section("weights", _image(_weights_figure(weights), "weights over time")))
    if costs is not None:
        sections.append(_section("costs", _image(_costs_figure(costs), "cumulative costs")))
    sections.append(_section("metrics", _metrics_table(metrics)))
    all_notes: Iterable[str] = dict.fromkeys([*notes, SURVIVORSHIP_NOTE])
    items = "".join(f"<li>{html.escape(note)}</li>" for note in all_notes)
    sections.append(_section("notes", f'<ul class="notes">{items}</ul>'))
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n"
        f"<h1>{html.escape(title)}</h1>\n"
        f'<p class="sub">{html.escape(", ".join(returns))} &middot; {start:%Y-%m-%d} to {end:%Y-%m-%d}</p>\n'
        + "\n".join(sections) + "\n</body></html>\n"
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
