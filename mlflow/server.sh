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
#
# Authentication: MLflow's basic-auth app (mlflow/basic_auth.ini); every request but /health needs a user, and the
# stages, serving and `tradepipe webhook` log in with MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD.
#   MLFLOW_AUTH_ADMIN_USERNAME / MLFLOW_AUTH_ADMIN_PASSWORD   the admin user, created on the first start (required)
#   MLFLOW_FLASK_SERVER_SECRET_KEY   the UI's CSRF secret, the same on every replica (required)
#   MLFLOW_AUTH_DATABASE_URI         users and permissions (default: MLFLOW_BACKEND_STORE_URI)
set -euo pipefail
: "${MLFLOW_BACKEND_STORE_URI:?set MLFLOW_BACKEND_STORE_URI to postgresql+psycopg2://USER:PASSWORD@HOST:PORT/DB}"
: "${MLFLOW_ARTIFACTS_DESTINATION:?set MLFLOW_ARTIFACTS_DESTINATION to s3://BUCKET/PREFIX}"
: "${MLFLOW_AUTH_ADMIN_USERNAME:?set MLFLOW_AUTH_ADMIN_USERNAME to the MLflow admin user (the stages log in as it)}"
: "${MLFLOW_AUTH_ADMIN_PASSWORD:?set MLFLOW_AUTH_ADMIN_PASSWORD to the MLflow admin password}"
: "${MLFLOW_FLASK_SERVER_SECRET_KEY:?set MLFLOW_FLASK_SERVER_SECRET_KEY (openssl rand -hex 32)}"
port="${MLFLOW_PORT:-5000}"
# the auth config with its database URI, in a private copy (the URI may hold a password) the workers read on start
auth_dir="$(mktemp -d)"
export MLFLOW_AUTH_CONFIG_PATH="$auth_dir/basic_auth.ini"
python - "$(dirname "$0")/basic_auth.ini" "$MLFLOW_AUTH_CONFIG_PATH" <<'PY'
import configparser, os, sys
config = configparser.ConfigParser(interpolation=None)
config.read(sys.argv[1])
uri = os.environ.get("MLFLOW_AUTH_DATABASE_URI") or os.environ["MLFLOW_BACKEND_STORE_URI"]
config["mlflow"]["database_uri"] = uri.replace("%", "%%")  # MLflow reads it with interpolation
with open(os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
    config.write(out)
PY
exec mlflow server \
  --app-name basic-auth \
  --backend-store-uri "$MLFLOW_BACKEND_STORE_URI" \
  --serve-artifacts \
  --artifacts-destination "$MLFLOW_ARTIFACTS_DESTINATION" \
  --host "${MLFLOW_HOST:-0.0.0.0}" \
  --port "$port" \
  --workers "${MLFLOW_WORKERS:-2}" \
  --allowed-hosts "${MLFLOW_ALLOWED_HOSTS:-localhost,localhost:$port,127.0.0.1,127.0.0.1:$port,mlflow,mlflow:$port}"
