"""The HTML report: sections, interactive figures (plotly.js inlined once), the sortable metrics table, atomic
writes; the DVC plots CSV."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.io as pio
import pytest
from plotly.offline import get_plotlyjs

from tradepipe.backtest.report import (
    SECTIONS,
    SURVIVORSHIP_NOTE,
    equity_plot_csv,
    format_metric,
    monthly_returns_table,
    report_figures,
    write_report,
)
from tradepipe.core import io as io_module
from tradepipe.core.metrics import performance_metrics

Rendered = tuple[Path, str, dict[str, dict[str, float]]]


def make_inputs(n: int = 300) -> tuple[dict[str, pd.Series], pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(7)
    index = pd.bdate_range("2020-01-01", periods=n, tz="UTC")
    bench = pd.Series(rng.normal(0.0004, 0.01, n), index)
    strat = 0.0002 + 0.7 * bench + pd.Series(rng.normal(0.0, 0.005, n), index)
    weights = pd.DataFrame(rng.uniform(0.0, 0.4, (n, 3)), index, ["AAA", "BBB", "CCC"])
    weights["CCC"] -= 0.1  # some shorts
    costs = pd.Series(rng.uniform(0.0, 0.0002, n), index)
    return {"strategy": strat, "S&P 500": bench}, weights, costs


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    returns, weights, costs = make_inputs()
    metrics = {
        "strategy": performance_metrics(returns["strategy"], benchmark=returns["S&P 500"], costs=costs,
                                        weights=weights, n_trials=10),
        "S&P 500": performance_metrics(returns["S&P 500"]),
    }
    out_dir = tmp_path_factory.mktemp("report")
    path = write_report(out_dir / "sub" / "report.html", returns=returns, metrics=metrics, weights=weights,
                        costs=costs, title="Test <run>", notes=["Costs: 10 bps & slippage"],
                        belief=["N = 10 trials <measured>"],
                        holdout={"strategy": {"sharpe": -0.75}}, holdout_text="From 2021-01-04 on <apart>")
    return path, path.read_text(encoding="utf-8"), metrics


def plots(text: str) -> list[str]:
    """The ids of the plotly figures the page draws."""
    return re.findall(r'<div id="(fig-[a-z_]+)" class="plotly-graph-div"', text)


def test_every_section_heading_exists(rendered: Rendered) -> None:
    _, text, _ = rendered
    for title in SECTIONS.values():
        assert f"<h2>{html.escape(title)}</h2>" in text
    assert "<title>Test &lt;run&gt;</title>" in text and "<h1>Test &lt;run&gt;</h1>" in text
    assert "2020-01-01 to 2021-02-23" in text
    belief = text.index("<h2>How much to believe this</h2>")
    assert text.index("<h2>Metrics</h2>") < belief < text.index("<h2>Notes</h2>")
    assert "<li>N = 10 trials &lt;measured&gt;</li>" in text[belief:]
    holdout = text.index("<h2>Holdout</h2>")
    assert text.index("<h2>Metrics</h2>") < holdout < belief
    assert "<p>From 2021-01-04 on &lt;apart&gt;</p>" in text[holdout:belief]
    assert 'data-v="-0.75"' in text[holdout:belief]


def test_metrics_table_has_a_row_per_strategy_with_sortable_raw_values(rendered: Rendered) -> None:
    _, text, metrics = rendered
    header = re.search(r"<thead><tr><th>strategy</th>(.*?)</tr></thead>", text)
    assert header is not None and '<th title="sharpe">Sharpe</th>' in header.group(1)
    keys = re.findall(r'<th title="([a-z_]+)">', header.group(1))
    assert set(keys) == set(metrics["strategy"]) | set(metrics["S&P 500"])
    for name, m in metrics.items():
        row = re.search(rf'<tr><td data-v="{re.escape(html.escape(name))}">[^<]*</td>(.*?)</tr>', text)
        assert row is not None, name
        cells = re.findall(r'<td data-v="([^"]*)" title="([a-z_]+)">([^<]*)</td>', row.group(1))
        assert [c[1] for c in cells] == keys
        for raw, key, shown in cells:
            if key in m:
                assert float(raw) == m[key] and shown == html.escape(format_metric(key, m[key]))
            else:
                assert (raw, shown) == ("", "&mdash;")
    assert '<table class="sortable">' in text and 'querySelectorAll("table.sortable")' in text


def test_format_metric() -> None:
    assert format_metric("total_return", 0.123456) == "12.35%"
    assert format_metric("max_drawdown", 0.25) == "25.00%"
    assert format_metric("sharpe", 1.5) == "1.500"
    assert format_metric("max_drawdown_duration", 42.0) == "42"
    assert format_metric("turnover", 12.345) == "12.35"
    assert format_metric("something_else", 0.5) == "0.500"


def test_every_figure_is_interactive_and_plotly_js_is_inlined_once(rendered: Rendered) -> None:
    _, text, _ = rendered
    assert plots(text) == ["fig-equity", "fig-drawdowns", "fig-rolling_sharpe", "fig-monthly", "fig-weights",
                           "fig-costs"]
    assert text.count(get_plotlyjs()) == 1
    page = text.replace(get_plotlyjs(), "")  # nothing else is fetched: no CDN, no external script
    assert "cdn.plot.ly" not in page and "<script src=" not in page and "https://" not in page
    assert text.count("Plotly.newPlot(") == 6 and "<img" not in text
    # each series of the equity figure is a trace of its own (legend toggles it), hover unified by date
    (equity_call,) = re.findall(r'Plotly.newPlot\(\s*"fig-equity",\s*(\[.*?\]),\s*\{', text, flags=re.S)[:1]
    assert [t["name"] for t in json.loads(equity_call)] == ["strategy", "S&P 500"]


def test_figures_hold_the_series_they_show() -> None:
    returns, weights, costs = make_inputs()
    figures = report_figures(returns, weights, costs)
    assert list(figures) == ["equity", "drawdowns", "rolling_sharpe", "monthly", "weights", "costs"]
    equity = figures["equity"]
    assert equity.layout.yaxis.type == "log" and equity.layout.hovermode == "x unified"
    strat = next(t for t in equity.data if t.name == "strategy")
    assert np.allclose(np.asarray(strat.y), (1.0 + returns["strategy"]).cumprod().to_numpy())
    # a long and a short stack for CCC (it goes short), toggled together by one legend entry
    ccc = [t for t in figures["weights"].data if t.name == "CCC"]
    assert sorted(t.stackgroup for t in ccc) == ["long", "short"] and [t.showlegend for t in ccc].count(True) == 1
    assert np.asarray(figures["costs"].data[0].y)[-1] == pytest.approx(costs.sum())
    # the JSON logged to MLflow reads back as the same figure
    assert pio.from_json(figures["monthly"].to_json()).data[0].z == figures["monthly"].data[0].z


def test_notes_escaped_and_survivorship_note_always_present(rendered: Rendered) -> None:
    _, text, _ = rendered
    assert "<li>Costs: 10 bps &amp; slippage</li>" in text
    assert f"<li>{html.escape(SURVIVORSHIP_NOTE)}</li>" in text
    assert text.index("Costs: 10 bps") < text.index("Survivorship bias")


def test_written_atomically_without_leftovers(rendered: Rendered) -> None:
    path, text, _ = rendered
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]
    assert text.rstrip().endswith("</html>")
    assert path.stat().st_mode & 0o777 == 0o644


def test_failed_write_keeps_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "report.html"
    path.write_text("previous")
    returns, _, _ = make_inputs(40)

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(io_module.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_report(path, returns=returns, metrics={})
    assert path.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_optional_sections_left_out_and_note_not_duplicated(tmp_path: Path) -> None:
    returns, _, _ = make_inputs(60)  # shorter than the rolling window
    text = write_report(tmp_path / "r.html", returns={"only": returns["strategy"]},
                        metrics={"only": {"sharpe": 1.25}}, notes=[SURVIVORSHIP_NOTE]).read_text()
    assert f"<h2>{SECTIONS['weights']}</h2>" not in text and f"<h2>{SECTIONS['costs']}</h2>" not in text
    for key in ("equity", "drawdowns", "rolling_sharpe", "monthly", "metrics", "notes"):
        assert f"<h2>{html.escape(SECTIONS[key])}</h2>" in text
    assert text.count("Survivorship bias") == 1
    assert plots(text) == ["fig-equity", "fig-drawdowns", "fig-rolling_sharpe", "fig-monthly"]
    assert '<td data-v="1.25" title="sharpe">1.250</td>' in text


def test_write_report_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one"):
        write_report(tmp_path / "r.html", returns={}, metrics={})
    with pytest.raises(ValueError, match="'x' is empty"):
        write_report(tmp_path / "r.html", returns={"x": pd.Series([], dtype=float)}, metrics={})
    assert not list(tmp_path.iterdir())


def test_monthly_returns_table_compounds_calendar_months() -> None:
    index = pd.DatetimeIndex(["2020-01-30", "2020-01-31", "2020-02-03", "2021-03-01"], tz="UTC")
    table = monthly_returns_table(pd.Series([0.01, 0.01, 0.02, -0.05], index))
    assert list(table.index) == [2020, 2021] and list(table.columns) == list(range(1, 13))
    assert table.loc[2020, 1] == pytest.approx(1.01**2 - 1)
    assert table.loc[2020, 2] == pytest.approx(0.02)
    assert table.loc[2021, 3] == pytest.approx(-0.05)
    assert np.isnan(table.loc[2020, 3]) and np.isnan(table.loc[2021, 1])


def test_equity_plot_csv(tmp_path: Path) -> None:
    a = pd.Series([0.1, -0.5, 0.2], pd.date_range("2020-01-01", periods=3, tz="UTC"))
    b = pd.Series([0.05], pd.DatetimeIndex(["2020-01-02"], tz="UTC"))
    path = tmp_path / "plots" / "equity.csv"
    equity_plot_csv({"strategy": a, "bench": b}, path)
    assert path.read_text().splitlines() == [
        "date,strategy,bench",
        "2020-01-01,1.1,",
        "2020-01-02,0.55,1.05",
        "2020-01-03,0.66,",
    ]
    assert [p.name for p in path.parent.iterdir()] == ["equity.csv"]
