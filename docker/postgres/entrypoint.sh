#!/usr/bin/env bash
# docker/postgres/Dockerfile's entrypoint: initialise the cluster on first start (superuser $POSTGRES_USER with
# $POSTGRES_PASSWORD, password auth over TCP), run /docker-entrypoint-initdb.d/*.sh against a server on a private
# socket (so the health check, on the default socket, passes only once the real server is up), then run postgres.
set -euo pipefail
: "${POSTGRES_USER:=postgres}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  : "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD (docker/.env)}"
  initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  sock="$(mktemp -d)"
  pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -k $sock" -w start >/dev/null
  for script in /docker-entrypoint-initdb.d/*.sh; do
    [ -e "$script" ] && PGHOST="$sock" bash "$script"
  done
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  rmdir "$sock"
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' "$@"
