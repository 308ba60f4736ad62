"""tradepipe: an orchestrated MLOps pipeline for ML and RL trading research."""

from tradepipe.registration import register_envs

__version__ = "0.1.0"

register_envs()
