"""The MLflow model registry: promotion gates, aliases and lineage.

Nothing is imported here (importing the package stays light); its public modules:

- ``gates``: The promotion gate: when a new version may become the champion, with the reason spelled out
- ``versions``: Register model versions with lineage tags, set aliases, and read the current champion
"""

__all__ = ["gates", "versions"]
