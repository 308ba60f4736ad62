"""The promotion gate: when a new version may become the champion, with the reason spelled out."""

from __future__ import annotations

from dataclasses import dataclass, field

from tradepipe.config import RegisterParams


@dataclass(frozen=True)
class Decision:
    """Whether to promote, and every check with its outcome (for the version's description)."""

    promote: bool
    checks: list[str] = field(default_factory=list)

    @property
    def reason(self) -> str:
        verdict = "promoted to champion" if self.promote else "kept as challenger"
        return f"{verdict}: " + "; ".join(self.checks)


def decide(sharpe: float, max_drawdown: float, benchmark_sharpe: float, limits: RegisterParams,
           champion_sharpe: float | None = None) -> Decision:
    """Apply the out-of-sample gate: minimum Sharpe, maximum drawdown, beat 1/N, beat the champion."""
    checks: list[tuple[bool, str]] = [
        (sharpe >= limits.min_sharpe, f"Sharpe {sharpe:.3f} {'>=' if sharpe >= limits.min_sharpe else '<'} "
                                      f"minimum {limits.min_sharpe:.3f}"),
        (max_drawdown <= limits.max_drawdown, f"max drawdown {max_drawdown:.1%} "
                                              f"{'<=' if max_drawdown <= limits.max_drawdown else '>'} "
                                              f"limit {limits.max_drawdown:.1%}"),
    ]
    if limits.must_beat_benchmark:
        checks.append((sharpe > benchmark_sharpe, f"Sharpe {sharpe:.3f} vs equal-weight {benchmark_sharpe:.3f}"))
    if champion_sharpe is not None:
        checks.append((sharpe > champion_sharpe, f"Sharpe {sharpe:.3f} vs current champion {champion_sharpe:.3f}"))
    return Decision(all(ok for ok, _ in checks), [f"{'pass' if ok else 'FAIL'}: {text}" for ok, text in checks])
