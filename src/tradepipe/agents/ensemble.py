"""Ensembles of agents: pick the best by validation Sharpe, or blend their books by validation Sharpe."""

from __future__ import annotations

from typing import Literal


def combine(sharpes: dict[str, float], mode: Literal["select", "blend"]) -> tuple[dict[str, float], str]:
    """Blend weights per agent (summing to 1) and the reason, from each agent's validation Sharpe.

    ``select``: all weight on the best agent (the first listed among ties). ``blend``: weights proportional
    to positive validation Sharpe; equal weights when none is positive.
    """
    if not sharpes:
        raise ValueError("no agents to combine")
    scores = ", ".join(f"{name} {value:.3f}" for name, value in sharpes.items())
    if mode == "select":
        best = max(sharpes, key=lambda name: sharpes[name])
        return {best: 1.0}, f"select: {best} has the best validation Sharpe ({scores})"
    positive = {name: value for name, value in sharpes.items() if value > 0.0}
    if not positive:
        return ({name: 1.0 / len(sharpes) for name in sharpes},
                f"blend: equal weights, no agent has a positive validation Sharpe ({scores})")
    total = sum(positive.values())
    return ({name: value / total for name, value in positive.items()},
            f"blend: weights proportional to positive validation Sharpe ({scores})")
