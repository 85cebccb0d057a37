#!/usr/bin/env bash
# The test command of README.md: every test of the repository.
#
# Installs what the tests need (PostgreSQL, promtool, Python tools in a
# virtualenv under target/), starts a throwaway PostgreSQL (its data, and all other
# scratch files, on tmpfs when there is room: scripts/pg.sh), runs the Rust
# tests of every crate against it, then the offline deployment checks.
# Cleans up after itself, also on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

source scripts/pg.sh
source scripts/tools.sh
tools_install

# On failure the log shows the free space: a full disk fails tests at random.
trap 'status=$?; [ $status -eq 0 ] || disk_report "$root"; pg_stop; scratch_stop; exit $status' EXIT
scratch_start
disk_report "$root"
pg_start

# Integration tests create one database per test through this URL.
export TEST_DATABASE_URL="$DATABASE_URL"
export PATH="$root/target/py/bin:$PATH"

echo "== cargo build (workspace binaries: the drill tests run them)" >&2
cargo build --workspace --locked --bins
disk_report "$root"
echo "== container images (buildah, debug binaries, smoke-tested from the image roots)" >&2
scripts/images.sh --profile debug
echo "== cargo test (workspace)" >&2
cargo test --workspace --locked -- --test-threads=4

echo "== benchmark report helpers (python unittest)" >&2
python3 -m unittest discover -s bench -p 'test_*.py'

echo "== API fuzzing against /openapi.json (schemathesis)" >&2
scripts/fuzz-api.sh

if [ -x scripts/check-deploy.sh ]; then
  echo "== deployment checks (terraform, k8s, alerts)" >&2
  scripts/check-deploy.sh
fi
echo "test.sh: all tests passed" >&2
