#!/usr/bin/env bash
# The auth benchmark of issue 17: what authenticating a request and taking
# a token from its principal's bucket cost, per call, in release mode.
#
#   scripts/bench-auth.sh            # every case
#   scripts/bench-auth.sh jwt        # the cases whose names contain "jwt"
#
# Runs service/benches/auth.rs (`cargo bench`, harness = false): API keys
# (valid, right prefix and wrong secret, unknown prefix; 10 and 10,000 keys
# loaded), JWTs (ES256 and EdDSA valid, ES256 signed by another key), and the
# rate limit (admitted for one principal and for 10,000 in turn, refused).
# Prints the median and p99 nanoseconds per call of ~1 ms batches. Needs no
# database and no network. A benchmark, not a test: it prints, it does not
# judge. See docs/benchmarks.md for the figures and what they mean.
#
# Settings (environment):
#   BENCH_AUTH_SECONDS  measured seconds per case, after a quarter of that
#                       as warm-up (1)
#   CARGO_BUILD_JOBS    build parallelism (2: the machine is shared)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
exec cargo bench -p service --bench auth -- "$@"
