"""What runs a stage: the stage registry, params as stages read them, the stage contract, MLflow tracking, profiles.

Nothing is imported here (importing the package stays light); its public modules:

- ``experiments``: Profiles and ad-hoc parameter variants as DVC experiments (``dvc exp run --temp`` with ``-S``)
- ``params``: Params as a stage uses them: params.yaml's schema (``tradepipe.config``) plus what only the library
  decides
- ``profiles``: Profiles: named sets of dotted-key overrides (profiles/<name>.yaml) applied to params.yaml
- ``stage``: The stage contract: params in, one MLflow run, metrics to metrics/<stage>.json, clear failures
- ``stage_metrics``: Stage runs as Prometheus metrics in a node-exporter textfile (``TRADEPIPE_METRICS_TEXTFILE_DIR``)
- ``stages``: The stage registry: each stage's params sections, dependencies and outputs, in pipeline order
- ``tracking``: MLflow tracking: one run per stage, tagged with the pipeline run id, git commit and input hashes
"""

__all__ = ["experiments", "params", "profiles", "stage", "stage_metrics", "stages", "tracking"]
