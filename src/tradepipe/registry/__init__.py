"""The MLflow model registry: promotion gates, aliases, lineage and provenance.

Nothing is imported here (importing the package stays light); its public modules:

- ``card``: The model card: a registered version's description in Markdown, its gate, out-of-sample figures, data
  and lineage
- ``compare``: Champion against challenger on identical bars: the bars after both were fitted
- ``gates``: The promotion gate: when a new version may become the champion, with the reason spelled out
- ``provenance``: Model provenance: the signed digest of a version's files, checked before anything of it is loaded
- ``versions``: Register model versions with lineage tags and a signed digest of their files, set aliases, read the
  champion
"""

__all__ = ["card", "compare", "gates", "provenance", "versions"]
