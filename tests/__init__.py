"""tradepipe's tests: unit/ (one folder per package, no servers), integration/ (real servers: MLflow, S3, uvicorn),
e2e/ (the pipeline, DAGs and stack), manifests/ (compose, Kubernetes), contracts/ (layout and stage registry)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the project root
DATA = ROOT / "tests" / "data"              # shipped fixtures: corrupt bar files, headlines
