#!/usr/bin/env bash
# The main job: build the workspace in release mode, bring the local
# three-region deployment up, run a drill (kill-and-return unless named), write
# the report to reports/<drill>/ and tear everything down.
#
#   scripts/drill.sh [drill-name-or-file] [extra chaos options]
#
# Exits non-zero when the drill's steady-state hypothesis fails.
set -euo pipefail
cd "$(dirname "$0")/.."
drill=${1:-kill-and-return}
shift || true
name=$(basename "$drill" .yaml)
cargo build --release --workspace --locked
exec target/release/chaos drill "$drill" --report-dir "reports/$name" "$@"
