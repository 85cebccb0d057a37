#!/usr/bin/env bash
# Property-based API test: schemathesis generates requests from the
# service's own /openapi.json (valid, invalid and malformed) and checks that
# no input produces a 5xx, every status code and body conforms to the
# document, and invalid requests are rejected.
#
#   scripts/fuzz-api.sh            # needs DATABASE_URL (scripts/test.sh sets it)
#
# scripts/fuzz_hooks.py points most generated transfers at real accounts.
# `positive_data_acceptance` is left out on purpose: the API's idempotency
# rules reject a schema-valid request whose Idempotency-Key was already used
# with another body (422), which a stateless generator cannot know.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
: "${DATABASE_URL:?DATABASE_URL must point at a PostgreSQL server (scripts/test.sh sets it)}"

# Its own virtualenv: schemathesis pins versions that checkov conflicts with.
venv=$root/target/fuzz
if [ ! -x "$venv/bin/schemathesis" ] || ! cmp -s scripts/requirements-fuzz.txt "$venv/.requirements"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r scripts/requirements-fuzz.txt
  cp scripts/requirements-fuzz.txt "$venv/.requirements"
fi

cargo build --locked -p service --bin service
database="fuzz_$(date +%s)_$$"
psql "$DATABASE_URL" -qc "CREATE DATABASE $database"
url="${DATABASE_URL%/*}/$database"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
admin=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
work=$(mktemp -d)
# No rate limit: the generator sends far more than a principal's share.
export SERVICE_REGION=us-east-1 SERVICE_DATABASE_URL=$url SERVICE_LOG_FILTER=warn SERVICE_DRAIN_PERIOD_MS=0 \
  SERVICE_LISTEN_ADDRESS=127.0.0.1:$port SERVICE_ADMIN_ADDRESS=127.0.0.1:$admin SERVICE_RATE_LIMIT_PER_SECOND=0
target/debug/service migrate >/dev/null
# The first run is authenticated (an admin, so that every operation can
# succeed); the second sends no credential, then a wrong one.
key=$(target/debug/service api-key create --principal fuzz --scopes admin 2>/dev/null)
target/debug/service >"$work/service.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
  sleep 0.1
done

# Accounts for scripts/fuzz_hooks.py to point generated transfers at: one
# rich, one poor (insufficient funds), one empty.
accounts=()
for balance in 1000000000 100 0; do
  answer=$(curl -sf -X POST "http://127.0.0.1:$port/v1/accounts" -H 'Content-Type: application/json' -H "Authorization: Bearer $key" \
    -H "Idempotency-Key: fuzz-seed-$balance" --data "{\"owner\":\"fuzz-$balance\",\"opening_balance\":$balance}") \
    || { echo "fuzz-api.sh: could not create a seed account" >&2; exit 1; }
  accounts+=("$(python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])' <<<"$answer")")
done
export FUZZ_ACCOUNT_IDS
FUZZ_ACCOUNT_IDS=$(IFS=,; echo "${accounts[*]}")
export SCHEMATHESIS_HOOKS=$root/scripts/fuzz_hooks.py

# Run from a scratch directory so hypothesis' example database stays out of the tree.
(cd "$work" && "$venv/bin/schemathesis" run "http://127.0.0.1:$port/openapi.json" \
  -H "Authorization: Bearer $key" \
  --checks all --exclude-checks positive_data_acceptance \
  --max-examples "${FUZZ_MAX_EXAMPLES:-150}" --workers 1 --seed "${FUZZ_SEED:-20261125}")
# Every /v1 operation must refuse a request without credentials, and one
# with a wrong key, with 401 (the hook's check `refuses_credentials`).
for credential in "" "Authorization: Bearer lk_000000000000_$(printf '0%.0s' $(seq 64))"; do
  (cd "$work" && FUZZ_EXPECT_401=1 "$venv/bin/schemathesis" run "http://127.0.0.1:$port/openapi.json" \
    ${credential:+-H "$credential"} --include-path-regex '^/v1/' \
    --checks refuses_credentials,not_a_server_error \
    --max-examples "${FUZZ_UNAUTHENTICATED_EXAMPLES:-20}" --workers 1 --seed "${FUZZ_SEED:-20261125}")
done
echo "fuzz-api.sh: no failures"
