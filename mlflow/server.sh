#!/usr/bin/env bash
# The team's MLflow tracking server: metadata in PostgreSQL, artifacts in S3 (MinIO or AWS), proxied by the
# server so clients need only MLFLOW_TRACKING_URI (no S3 credentials for logging through it).
#
#   MLFLOW_BACKEND_STORE_URI       postgresql+psycopg2://USER:PASSWORD@HOST:5432/mlflow  (required)
#   MLFLOW_ARTIFACTS_DESTINATION   s3://BUCKET/PREFIX                                     (required)
#   MLFLOW_S3_ENDPOINT_URL         http://minio:9000 for MinIO; unset for AWS S3
#   AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_DEFAULT_REGION   the S3 credentials
#   MLFLOW_HOST (0.0.0.0)  MLFLOW_PORT (5000)  MLFLOW_WORKERS (2)
#   MLFLOW_ALLOWED_HOSTS   Host headers accepted (default: localhost and the compose/k8s service name)
set -euo pipefail
: "${MLFLOW_BACKEND_STORE_URI:?set MLFLOW_BACKEND_STORE_URI to postgresql+psycopg2://USER:PASSWORD@HOST:PORT/DB}"
: "${MLFLOW_ARTIFACTS_DESTINATION:?set MLFLOW_ARTIFACTS_DESTINATION to s3://BUCKET/PREFIX}"
port="${MLFLOW_PORT:-5000}"
exec mlflow server \
  --backend-store-uri "$MLFLOW_BACKEND_STORE_URI" \
  --serve-artifacts \
  --artifacts-destination "$MLFLOW_ARTIFACTS_DESTINATION" \
  --host "${MLFLOW_HOST:-0.0.0.0}" \
  --port "$port" \
  --workers "${MLFLOW_WORKERS:-2}" \
  --allowed-hosts "${MLFLOW_ALLOWED_HOSTS:-localhost,localhost:$port,127.0.0.1,127.0.0.1:$port,mlflow,mlflow:$port}"
