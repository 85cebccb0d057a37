#!/usr/bin/env bash
# The main job until the drill engine exists: a throwaway PostgreSQL and one
# service instance against it, in the foreground until Ctrl-C.
#
#   scripts/run-local.sh [region]
#
# Builds the service in release mode, starts PostgreSQL as the `postgres`
# user on a free port in a temporary directory, migrates, serves the API on
# 127.0.0.1:8080 (metrics on 127.0.0.1:9090), and removes everything on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
region=${1:-us-east-1}

cargo build --release -p service
source scripts/pg.sh
trap pg_stop EXIT
pg_start

export SERVICE_REGION=$region
export SERVICE_DATABASE_URL=$DATABASE_URL
export SERVICE_LISTEN_ADDRESS=${SERVICE_LISTEN_ADDRESS:-127.0.0.1:8080}
export SERVICE_ADMIN_ADDRESS=${SERVICE_ADMIN_ADDRESS:-127.0.0.1:9090}
export SERVICE_DRAIN_PERIOD_MS=${SERVICE_DRAIN_PERIOD_MS:-1000}
target/release/service migrate

cat >&2 <<MSG
run-local.sh: the service of region $region is starting.
  API         http://$SERVICE_LISTEN_ADDRESS/v1/...   (OpenAPI: /openapi.json)
  health      http://$SERVICE_LISTEN_ADDRESS/healthz/region (admission)  /healthz/instance  /readyz  /livez
  metrics     http://$SERVICE_ADMIN_ADDRESS/metrics
  database    $DATABASE_URL
Try:
  curl -s -XPOST http://$SERVICE_LISTEN_ADDRESS/v1/accounts -H 'Content-Type: application/json' \\
       -H "Idempotency-Key: \$(cat /proc/sys/kernel/random/uuid)" -d '{"owner":"alice","opening_balance":1000}'
Stop with Ctrl-C: the service drains, PostgreSQL stops and its directory is removed.
MSG
# Not exec: the EXIT trap must run after the service stops.
target/release/service &
service_pid=$!
trap 'kill -TERM $service_pid 2>/dev/null || true' INT TERM
wait $service_pid || true
wait $service_pid 2>/dev/null || true
