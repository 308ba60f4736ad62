"""Register the tradepipe environments with gymnasium (lazy entry points: nothing heavy is imported)."""

from __future__ import annotations

import gymnasium

ENTRY_POINTS = {
    "tradepipe/Portfolio-v0": "tradepipe.envs.portfolio:make_default",
    "tradepipe/SingleAsset-v0": "tradepipe.envs.single_asset:make_default",
}


def register_envs() -> None:
    """Make ``gymnasium.make`` know every id of ``ENTRY_POINTS`` (built with no arguments on bundled data)."""
    for env_id, entry_point in ENTRY_POINTS.items():
        if env_id not in gymnasium.registry:
            gymnasium.register(id=env_id, entry_point=entry_point)
