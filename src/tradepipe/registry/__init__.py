"""The MLflow model registry: promotion gates, aliases and lineage."""
