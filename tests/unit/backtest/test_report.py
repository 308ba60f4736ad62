"""The HTML report: sections, metric values, embedded PNGs, atomic writes; the DVC plots CSV."""

from __future__ import annotations

import base64
import html
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib import image as mpimg

from tradepipe.backtest.report import (
    SECTIONS,
    SURVIVORSHIP_NOTE,
    equity_plot_csv,
    format_metric,
    monthly_returns_table,
    write_report,
)
from tradepipe.core import io as io_module
from tradepipe.core.metrics import performance_metrics

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
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
                        costs=costs, title="Test <run>", notes=["Costs: 10 bps & slippage"])
    return path, path.read_text(encoding="utf-8"), metrics


def images(text: str) -> list[bytes]:
    return [base64.b64decode(b, validate=True)
            for b in re.findall(r'<img alt="[^"]*" src="data:image/png;base64,([A-Za-z0-9+/=]+)">', text)]


def test_every_section_heading_exists(rendered: Rendered) -> None:
    _, text, _ = rendered
    for title in SECTIONS.values():
        assert f"<h2>{html.escape(title)}</h2>" in text
    assert "<title>Test &lt;run&gt;</title>" in text and "<h1>Test &lt;run&gt;</h1>" in text
    assert "2020-01-01 to 2021-02-23" in text


def test_metric_values_appear_in_their_rows(rendered: Rendered) -> None:
    _, text, metrics = rendered
    assert "<th>strategy</th><th>S&amp;P 500</th>" in text
    for key, value in metrics["strategy"].items():
        row = re.search(rf'<tr><td title="{key}">[^<]*</td><td>([^<]*)</td><td>([^<]*)</td></tr>', text)
        assert row is not None, key
        assert row.group(1) == html.escape(format_metric(key, value))
        other = metrics["S&P 500"].get(key)
        assert row.group(2) == ("&mdash;" if other is None else html.escape(format_metric(key, other)))
    sharpe = re.search(r'<td title="sharpe">Sharpe</td><td>([^<]*)</td>', text)
    assert sharpe is not None and sharpe.group(1) == f"{metrics['strategy']['sharpe']:.3f}"


def test_format_metric() -> None:
    assert format_metric("total_return", 0.123456) == "12.35%"
    assert format_metric("max_drawdown", 0.25) == "25.00%"
    assert format_metric("sharpe", 1.5) == "1.500"
    assert format_metric("max_drawdown_duration", 42.0) == "42"
    assert format_metric("turnover", 12.345) == "12.35"
    assert format_metric("something_else", 0.5) == "0.500"


def test_images_are_valid_png(rendered: Rendered) -> None:
    _, text, _ = rendered
    pngs = images(text)
    assert len(pngs) == 6  # equity, drawdowns, rolling Sharpe, monthly, weights, costs
    for data in pngs:
        assert data.startswith(PNG_SIGNATURE)
        pixels = mpimg.imread(io.BytesIO(data), format="png")
        assert pixels.shape[1] == 1000 and pixels.shape[0] >= 200
        assert pixels[..., :3].std() > 0.05  # something was drawn


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
    assert len(images(text)) == 4
    assert '<td title="sharpe">Sharpe</td><td>1.250</td>' in text


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
