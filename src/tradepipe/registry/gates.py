"""The promotion gate: when a new version may become the champion, with the reason spelled out."""

from __future__ import annotations

from dataclasses import dataclass, field

from tradepipe.config import RegisterParams
from tradepipe.registry.compare import Comparison


@dataclass(frozen=True)
class Decision:
    """Whether to promote, and every check with its outcome (for the version's description)."""

    promote: bool
    checks: list[str] = field(default_factory=list)

    def with_check(self, ok: bool, text: str) -> Decision:
        """This decision with one more check (it promotes only if the check passes too)."""
        return Decision(self.promote and ok, [*self.checks, f"{'pass' if ok else 'FAIL'}: {text}"])

    @property
    def verdict(self) -> str:
        return "promoted to champion" if self.promote else "kept as challenger"

    @property
    def reason(self) -> str:
        return f"{self.verdict}: " + "; ".join(self.checks)


def _at_least(name: str, value: float, minimum: float) -> tuple[bool, str]:
    ok = value >= minimum
    return ok, f"{name} {value:.3f} {'>=' if ok else '<'} minimum {minimum:.3f}"


def decide(sharpe: float, dsr: float, max_drawdown: float, benchmark_sharpe: float, limits: RegisterParams,
           champion: Comparison | None = None, holdout_sharpe: float | None = None) -> Decision:
    """Apply the out-of-sample gate: minimum Sharpe and Deflated Sharpe, maximum drawdown, beat 1/N (all on the
    test span less the holdout), beat the champion on the bars after both were fitted (``champion``, see
    ``registry.compare``; too few of them: not compared), and last the holdout's Sharpe (``holdout_sharpe``;
    None: no holdout) against ``limits.min_holdout_sharpe``. The loads-and-predicts check is added by the caller
    (:meth:`Decision.with_check`)."""
    shallow = max_drawdown <= limits.max_drawdown
    checks = [_at_least("Sharpe", sharpe, limits.min_sharpe), _at_least("Deflated Sharpe", dsr, limits.min_dsr),
              (shallow, f"max drawdown {max_drawdown:.1%} {'<=' if shallow else '>'} limit {limits.max_drawdown:.1%}")]
    if limits.must_beat_benchmark:
        checks.append((sharpe > benchmark_sharpe, f"Sharpe {sharpe:.3f} vs equal-weight {benchmark_sharpe:.3f}"))
    if champion is not None:
        ok, text, _compared = champion.check(limits.min_compare_bars)
        checks.append((ok, text))
    if limits.min_holdout_sharpe is not None:
        if holdout_sharpe is None:
            checks.append((False, "no holdout to check (backtest.holdout_years = 0) while register.min_holdout_sharpe "
                                  f"is {limits.min_holdout_sharpe:.3f}"))
        else:
            ok, text = _at_least("holdout Sharpe", holdout_sharpe, limits.min_holdout_sharpe)
            checks.append((ok, text))
    decision = Decision(True)
    for ok, text in checks:
        decision = decision.with_check(ok, text)
    return decision
