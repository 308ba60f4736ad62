"""What runs a stage: params as stages read them, the stage contract, MLflow tracking, profiles."""

__all__ = ["params", "profiles", "stage", "tracking"]
