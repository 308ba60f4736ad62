"""registry.card: the version's description in Markdown, with the gate, the headline, holdout, data and lineage."""

from __future__ import annotations

from tradepipe.registry.card import model_card
from tradepipe.registry.gates import Decision
from tradepipe.status import _CHECK

RESULTS = {"agent.sharpe": 1.25, "agent.dsr": 0.5, "agent.max_drawdown": 0.2, "equal_weight_daily.sharpe": 1.0,
           "hrp_monthly.sharpe": 0.7, "agent_no_forecast.sharpe": 1.3, "holdout.bars": 252.0,
           "holdout.agent.sharpe": -0.25, "holdout.equal_weight_daily.sharpe": 0.125, "ledger.n_trials": 16.0,
           "ledger.sharpe_variance": 0.23, "ledger.sr0": 0.86}


def test_the_card_gives_the_gate_the_headline_the_holdout_data_and_lineage() -> None:
    decision = Decision(True).with_check(True, "Sharpe 1.250 >= minimum 0.300").with_check(False, "DSR 0.5 < 0.95")
    card = model_card(decision, RESULTS, {"git_commit": "0123abc", "dvc.data/raw": "x"}, {"test span": "2015..2022"})
    lines = card.splitlines()
    assert lines[0] == "**kept as challenger**"
    assert [m.group(0) for m in _CHECK.finditer(card)] == ["pass: Sharpe 1.250 >= minimum 0.300",
                                                           "FAIL: DSR 0.5 < 0.95"]  # what `tradepipe status` reads
    main = lines[lines.index("### Out of sample (the test span less the holdout)") + 3:]
    assert main[0].startswith("| agent | 1.25 | 0.5 | - | - | 20.0% |")
    assert main[1].startswith("| agent_no_forecast | 1.3 |") and main[2].startswith("| equal_weight_daily | 1 |")
    assert "hrp_monthly" not in card  # not a headline strategy
    assert "DSR deflated for 16 trials of the span's ledger (their Sharpe variance 0.23, expected maximum SR0 0.86)." \
        in card
    holdout = lines[lines.index("### Holdout (the last 252 bars, judged last)") + 3:]
    assert holdout[0].startswith("| agent | -0.25 |") and holdout[1].startswith("| equal_weight_daily | 0.125 |")
    assert "- test span: 2015..2022" in lines and "- git commit: `0123abc`" in lines
    assert "dvc.data/raw" not in card  # the output hashes stay in the tags
