"""Register the tradepipe environments with gymnasium (lazy entry points: nothing heavy is imported)."""

from __future__ import annotations

import gymnasium


def register_envs() -> None:
    """Make ``gymnasium.make("tradepipe/Portfolio-v0")`` available."""
    if "tradepipe/Portfolio-v0" not in gymnasium.registry:
        gymnasium.register(id="tradepipe/Portfolio-v0", entry_point="tradepipe.envs.portfolio:make_default")
