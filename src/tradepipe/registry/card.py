"""The model card: a registered version's description in Markdown, its gate, out-of-sample figures, data and lineage.

The backtest's headline (the agent, its ablations and the main benchmarks by a few metrics) is defined here once:
the card shows it, and so does ``tradepipe status``.
"""

from __future__ import annotations

import fnmatch
from typing import Any

from tradepipe.registry.gates import Decision

# the backtest's headline: these strategies (fnmatch) by these metrics
# (the ablations answer: does the agent add anything beyond the risk overlay on 1/N, does the predictor help it)
HEADLINE_STRATEGIES = ("agent", "agent_fixed", "agent_no_forecast", "equal_weight_risk_managed", "equal_weight_daily",
                       "equal_weight_monthly", "forecast_top_quartile", "buy_and_hold_*")
HEADLINE_METRICS = {"sharpe": "Sharpe", "dsr": "DSR", "cagr": "CAGR", "annual_volatility": "volatility",
                    "max_drawdown": "max drawdown", "turnover": "turnover/yr"}
PERCENT = frozenset({"cagr", "annual_volatility", "max_drawdown", "return", "drawdown"})
HOLDOUT = "holdout."
# the lineage tags the card names (the rest, dvc.lock hashes and oos_* figures, stay in the version's tags)
CARD_LINEAGE = {"git_commit": "git commit", "pipeline_run_id": "pipeline run", "params_sha256": "params.yaml sha256",
                "tradepipe.content_sha256": "policy bundle sha256"}


def headline(metrics: dict[str, float]) -> list[dict[str, Any]]:
    """The backtest's headline rows: one per HEADLINE_STRATEGIES strategy found, HEADLINE_METRICS columns."""
    strategies = list(dict.fromkeys(k.split(".", 1)[0] for k in metrics if "." in k))
    rows = []
    for pattern in HEADLINE_STRATEGIES:
        for name in (s for s in strategies if fnmatch.fnmatchcase(s, pattern)):
            rows.append({"strategy": name, **{m: metrics.get(f"{name}.{m}") for m in HEADLINE_METRICS}})
    return rows


def fmt(key: str, value: Any) -> str:
    """A figure as the tables show it: percent for returns and risks, integers whole, others to 3-4 digits."""
    if value is None:
        return "-"
    if isinstance(value, bool) or key == "promoted":
        return "yes" if value else "no"
    if isinstance(value, float) and key.split(".")[-1] in PERCENT:
        return f"{value:.1%}"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    if isinstance(value, float) and abs(value) >= 1000:
        return f"{value:,.2f}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| strategy | " + " | ".join(HEADLINE_METRICS.values()) + " |",
             "|---|" + "---:|" * len(HEADLINE_METRICS)]
    lines += [f"| {r['strategy']} | " + " | ".join(fmt(m, r[m]) for m in HEADLINE_METRICS) + " |" for r in rows]
    return lines


def model_card(decision: Decision, results: dict[str, float], tags: dict[str, str], data: dict[str, str]) -> str:
    """The card of a version judged by ``decision``: the gate's checks, the headline of the backtest ``results``
    (test span less the holdout, then the holdout), the data (``data``: label -> value, e.g. the test span and the
    fit window) and the lineage among ``tags``."""
    lines = [f"**{decision.verdict}**", "", "### Gate", *(f"- {check}" for check in decision.checks), "",
             "### Out of sample (the test span less the holdout)", *_table(headline(results))]
    if "ledger.n_trials" in results:
        lines += ["", f"DSR deflated for {fmt('n', results['ledger.n_trials'])} trials of the span's ledger "
                      f"(their Sharpe variance {fmt('v', results.get('ledger.sharpe_variance'))}, expected maximum "
                      f"SR0 {fmt('sr0', results.get('ledger.sr0'))})."]
    holdout = {k.removeprefix(HOLDOUT): v for k, v in results.items() if k.startswith(HOLDOUT)}
    if rows := headline(holdout):
        bars = holdout.get("bars")
        lines += ["", f"### Holdout (the last {fmt('bars', bars)} bars, judged last)" if bars else "### Holdout",
                  *_table(rows)]
    lines += ["", "### Data", *(f"- {label}: {value}" for label, value in data.items()),
              "", "### Lineage", *(f"- {label}: `{tags[key]}`" for key, label in CARD_LINEAGE.items() if key in tags)]
    return "\n".join(lines)
