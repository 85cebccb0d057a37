#!/usr/bin/env bash
# The benchmark of issue 2: the service against pgbench on one PostgreSQL.
#
#   scripts/bench.sh
#
# Builds the service in release mode, starts a throwaway PostgreSQL
# (scripts/pg.sh), seeds accounts, starts the service against it, then
# measures, with the same number of database connections and the same client
# concurrency on both sides:
#   read account: wrk  GET /v1/accounts/{id}  vs  pgbench running its SELECT
#   transfer:     wrk  POST /v1/transfers     vs  pgbench running its transaction
# and prints requests/s, p99 and the ratios service/pgbench (targets: 0.8 for
# reads, 0.7 for transfers), with every request authenticated (an API key),
# and what authentication costs per request. Results also go to
# target/bench/results.json.
# A benchmark, not a test: it exits 0 whether or not the targets are met.
# See bench/README.md for the method.
#
# Settings (environment):
#   BENCH_CONNECTIONS  pool size = wrk connections = pgbench clients (16)
#   BENCH_THREADS      wrk threads = pgbench threads (2)
#   BENCH_DURATION     seconds per measured run (12)
#   BENCH_WARMUP       seconds of warm-up before each measured run (3)
#   BENCH_ACCOUNTS     seeded accounts (10000)
#   BENCH_HISTORY      transfers (with their idempotency keys) seeded before
#                      the first run, so that no run starts on empty tables (100000)
#   BENCH_ROUNDS       rounds; each round runs both sides of both workloads,
#                      pgbench first in odd rounds, the service first in even
#                      ones; the report takes each side's median (3)
#   BENCH_WORKLOADS    which workloads to run: "read_account transfer" (both)
#   BENCH_SEED         random seed of both load generators (42)
#   BENCH_SKIP_BUILD   1: use the existing target/release/service
#   BENCH_KEEP         1: keep the work directory (logs) in /tmp
#   BENCH_AUTOGROUP    the kernel's sched_autogroup_enabled during the run (0):
#                      0 schedules PostgreSQL, the service and the load
#                      generators task by task; "keep" leaves the machine's
#                      setting (bench/README.md, "Scheduling")
#   BENCH_PERF         1: record the service with `perf record -g` during each
#                      measured service run (target/bench/perf.<workload>.<round>.data;
#                      its sampling costs the service a little CPU, so the
#                      ratios of such a run are not the ones to quote);
#                      stat: count the service's system calls, context switches
#                      and CPU time instead (target/bench/perf.<workload>.<round>.stat),
#                      to divide by the run's requests
#   SERVICE_*          service settings (e.g. SERVICE_THREAD_PER_CORE=false), passed
#                      on to the service and printed with the results
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

connections=${BENCH_CONNECTIONS:-16}
threads=${BENCH_THREADS:-2}
duration=${BENCH_DURATION:-12}
warmup=${BENCH_WARMUP:-3}
accounts=${BENCH_ACCOUNTS:-10000}
history=${BENCH_HISTORY:-100000}
rounds=${BENCH_ROUNDS:-3}
seed=${BENCH_SEED:-42}
workloads=${BENCH_WORKLOADS:-read_account transfer}
for workload in $workloads; do
  case $workload in
    read_account | transfer) ;;
    *) echo "bench.sh: BENCH_WORKLOADS: unknown workload '$workload' (known: read_account transfer)" >&2; exit 2 ;;
  esac
done
case ${BENCH_AUTOGROUP:-0} in
  0 | 1 | keep) ;;
  *) echo "bench.sh: BENCH_AUTOGROUP: '$BENCH_AUTOGROUP' is not 0, 1 or keep" >&2; exit 2 ;;
esac
out_dir=$root/target/bench
service_bin=$root/target/release/service
region=us-east-1
# The service re-runs a transaction at most this many times (default
# transaction_max_retries); pgbench gets the same number of tries.
max_retries=8

log() { echo "bench.sh: $*" >&2; }

# Service settings the caller gave through the environment (for instance
# SERVICE_WORKER_THREADS=1); the report prints them. Those the script sets
# itself when it starts the service (below) override the caller's and are
# left out.
own_settings='REGION|DATABASE_URL|LISTEN_ADDRESS|ADMIN_ADDRESS|DATABASE_POOL_SIZE|MAX_CONCURRENT_REQUESTS|TRANSACTION_MAX_RETRIES|DRAIN_PERIOD_MS'
service_env=$(env | grep -E '^SERVICE_[A-Z0-9_]+=' | grep -vE "^SERVICE_($own_settings)=" | LC_ALL=C sort | tr '\n' ' ' || true)

# --- tools -------------------------------------------------------------------
need_apt=()
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing ${need_apt[*]} from the OS packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
source scripts/pg.sh
pg_install

# --- scheduling ----------------------------------------------------------------
# With autogroup (Debian's default), pg_ctl's new session puts every
# PostgreSQL process into one scheduling group and this script's session
# (service, wrk, pgbench) into another, and the kernel shares the CPUs
# between the two groups before it shares them between tasks. On a
# saturated machine that left runnable backends unscheduled for 15 ms to 2 s
# (bench/README.md, "Scheduling"). Turned off for the run, so that processes
# started from here on are scheduled task by task, and restored at exit.
autogroup=${BENCH_AUTOGROUP:-0}
autogroup_file=/proc/sys/kernel/sched_autogroup_enabled
autogroup_restore=
previous=$(cat "$autogroup_file" 2>/dev/null || echo absent)
if [ "$autogroup" != keep ] && [ "$previous" != absent ] && [ "$previous" != "$autogroup" ]; then
  if echo "$autogroup" >"$autogroup_file" 2>/dev/null; then
    autogroup_restore=$previous
    log "sched_autogroup_enabled $previous -> $autogroup for the run"
  else
    log "WARNING: cannot set $autogroup_file to $autogroup (not root, or a read-only /proc/sys);" \
      "running with $previous, which the results record"
  fi
fi
autogroup_now=$(cat "$autogroup_file" 2>/dev/null || echo absent)

# --- cleanup -----------------------------------------------------------------
work=$(mktemp -d /tmp/ledger-bench.XXXXXX)
pg_cgroup=
service_pid=
cleanup() {
  local status=$?
  if [ -n "$autogroup_restore" ]; then echo "$autogroup_restore" >"$autogroup_file" 2>/dev/null || true; fi
  if [ -n "$service_pid" ] && kill -0 "$service_pid" 2>/dev/null; then
    kill -TERM "$service_pid" 2>/dev/null || true
    wait "$service_pid" 2>/dev/null || true
  fi
  pg_stop
  if [ -n "$pg_cgroup" ]; then rmdir "$pg_cgroup" 2>/dev/null || true; fi
  if [ "${BENCH_KEEP:-0}" = 1 ]; then log "work directory kept: $work"; else rm -rf "$work"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- build ---------------------------------------------------------------------
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
  log "building the service (cargo build --release -p service)"
  cargo build --release -p service
fi
[ -x "$service_bin" ] || { log "missing $service_bin"; exit 1; }

# --- database ----------------------------------------------------------------
# fsync off, as bench/README.md documents: both sides share the server, and
# the recorded figures were measured so.
PG_DURABLE=off pg_start
db_url="${DATABASE_URL%/*}/ledger_bench"
psql() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }
psql "$DATABASE_URL" -c "CREATE DATABASE ledger_bench"
SERVICE_REGION=$region SERVICE_DATABASE_URL=$db_url SERVICE_LOG_FILTER=warn \
  "$service_bin" migrate >"$work/migrate.log" 2>&1 || { cat "$work/migrate.log" >&2; exit 1; }
# The load generators authenticate as the principal `bench`, which owns the
# seeded accounts (the key goes to the wrk scripts through the environment).
BENCH_API_KEY=$(SERVICE_REGION=$region SERVICE_DATABASE_URL=$db_url SERVICE_LOG_FILTER=warn \
  "$service_bin" api-key create --principal bench --description benchmark 2>>"$work/migrate.log") \
  || { cat "$work/migrate.log" >&2; exit 1; }
export BENCH_API_KEY

# Account n has the id md5('bench-account-' || n)::uuid: uniformly spread like
# gen_random_uuid(), and computable by pgbench, whose variables are numbers.
log "seeding $accounts accounts"
psql "$db_url" <<SQL
INSERT INTO accounts (id, owner, principal, balance, home_region)
SELECT md5('bench-account-' || n)::uuid, 'bench-owner-' || n, 'bench', 1000000000000, '$region'
FROM generate_series(1, $accounts) AS n;
SQL
# A ledger with a past: transfers in pairs that cancel out (a->b then b->a),
# so balances stay as seeded, each with its stored idempotent answer. Without
# them the first run would insert into empty indexes, where serializable
# transactions conflict far more often (SIRead locks on the same few pages).
log "seeding $history transfers"
psql "$db_url" <<SQL
INSERT INTO transfers (from_account, to_account, amount, idempotency_key, principal, served_by_region)
SELECT md5('bench-account-' || (CASE WHEN g % 2 = 0 THEN a ELSE b END))::uuid,
       md5('bench-account-' || (CASE WHEN g % 2 = 0 THEN b ELSE a END))::uuid,
       1, 'seed-' || md5(g::text), 'bench', '$region'
FROM (SELECT g, 1 + (g / 2) % $accounts AS a, 1 + ((g / 2) * 7919 + 1) % $accounts AS b
      FROM generate_series(0, $history - 1) AS g) AS pairs
WHERE a <> b;
INSERT INTO idempotency_keys (principal, operation, idempotency_key, request_hash, response_status, response_body, served_by_region)
SELECT 'bench', 'transfer', idempotency_key, md5(idempotency_key), 201,
       jsonb_build_object('id', id, 'from', from_account, 'to', to_account, 'amount', amount,
                          'served_by_region', served_by_region, 'created_at', created_at),
       served_by_region
FROM transfers;
VACUUM ANALYZE;
SQL
ids_file=$work/account-ids.txt
psql "$db_url" -At -c "SELECT md5('bench-account-' || n)::uuid FROM generate_series(1, $accounts) AS n ORDER BY n" >"$ids_file"
[ "$(wc -l <"$ids_file")" -eq "$accounts" ] || { log "account id file is incomplete"; exit 1; }

# --- service -----------------------------------------------------------------
listen_port=$(pg_free_port)
admin_port=$(pg_free_port)
while [ "$admin_port" = "$listen_port" ]; do admin_port=$(pg_free_port); done
base_url=http://127.0.0.1:$listen_port
SERVICE_REGION=$region \
SERVICE_DATABASE_URL=$db_url \
SERVICE_LISTEN_ADDRESS=127.0.0.1:$listen_port \
SERVICE_ADMIN_ADDRESS=127.0.0.1:$admin_port \
SERVICE_DATABASE_POOL_SIZE=$connections \
SERVICE_MAX_CONCURRENT_REQUESTS=$((connections * 16 + 64)) \
SERVICE_TRANSACTION_MAX_RETRIES=$max_retries \
SERVICE_DRAIN_PERIOD_MS=0 \
SERVICE_RATE_LIMIT_PER_SECOND=1000000000 \
SERVICE_RATE_LIMIT_BURST=1000000000 \
  "$service_bin" serve >"$work/service.log" 2>&1 &
service_pid=$!
for _ in $(seq 1 150); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$base_url/readyz" || true)" = 200 ] && break
  kill -0 "$service_pid" 2>/dev/null || { cat "$work/service.log" >&2; log "the service exited"; exit 1; }
  sleep 0.2
done
[ "$(curl -s -o /dev/null -w '%{http_code}' "$base_url/readyz" || true)" = 200 ] \
  || { cat "$work/service.log" >&2; log "the service did not become ready"; exit 1; }
# Sanity: both endpoints answer as the load generators expect.
first_id=$(sed -n 1p "$ids_file"); second_id=$(sed -n 2p "$ids_file")
auth="Authorization: Bearer $BENCH_API_KEY"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "$auth" "$base_url/v1/accounts/$first_id")
[ "$code" = 200 ] || { log "GET /v1/accounts answered $code"; exit 1; }
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' -H "$auth" \
  -H "Idempotency-Key: bench-sanity-$$" --data "{\"from\":\"$first_id\",\"to\":\"$second_id\",\"amount\":1}" \
  "$base_url/v1/transfers")
[ "$code" = 201 ] || { log "POST /v1/transfers answered $code"; exit 1; }
log "service ready on $base_url (pool $connections), PostgreSQL on 127.0.0.1:$PG_PORT"

# --- CPU accounting (where the 2 cores go during a run) ----------------------
clk_tck=$(getconf CLK_TCK)
pm_pid=$(head -n 1 "$PG_DIR/data/postmaster.pid")
# utime+stime of a process (+ its reaped children's with a second argument).
proc_ticks() {
  local stat; stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
  set -- ${stat##*) }
  echo $(( ${12} + ${13} ))
}
proc_ticks_children() {
  local stat; stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
  set -- ${stat##*) }
  echo $(( ${12} + ${13} + ${14} + ${15} ))
}
# PostgreSQL's CPU, exactly when the machine lets us: its processes in a
# cgroup of their own, whose counter includes backends that have exited (a
# backend exiting between two reads of /proc is otherwise lost, which showed
# as "other" CPU in the transfer runs). Otherwise, from /proc. Not a cgroup
# with the cpu controller (v1 cpu,cpuacct mounted together, or v2 with cpu
# on): that would make PostgreSQL one scheduling group again (see
# "scheduling" above).
for base in /sys/fs/cgroup/cpuacct /sys/fs/cgroup/unified /sys/fs/cgroup; do
  [ -e "$base/cgroup.procs" ] || continue
  if [ "$base" = /sys/fs/cgroup/cpuacct ]; then
    counter=cpuacct.usage
    [ -e "$base/cpu.shares" ] && continue
  else
    counter=cpu.stat
    grep -qw cpu "$base/cgroup.subtree_control" 2>/dev/null && continue
  fi
  candidate=$base/ledger-bench-$$
  mkdir "$candidate" 2>/dev/null || continue
  moved=1
  for pid in "$pm_pid" $(pgrep -P "$pm_pid" || true); do
    echo "$pid" >"$candidate/cgroup.procs" 2>/dev/null || moved=0
  done
  if [ "$moved" = 1 ] && [ -r "$candidate/$counter" ]; then
    pg_cgroup=$candidate pg_counter=$counter
    break
  fi
  for pid in $(cat "$candidate/cgroup.procs" 2>/dev/null); do echo "$pid" >"$base/cgroup.procs" 2>/dev/null || true; done
  rmdir "$candidate" 2>/dev/null || true
done
if [ -n "$pg_cgroup" ]; then log "PostgreSQL CPU from cgroup $pg_cgroup"; else log "PostgreSQL CPU from /proc (no writable cgroup)"; fi
postgres_ticks() {
  if [ -n "$pg_cgroup" ]; then
    if [ "$pg_counter" = cpuacct.usage ]; then
      awk -v hz="$clk_tck" '{ printf "%d", $1 * hz / 1e9 }' "$pg_cgroup/cpuacct.usage"
    else
      awk -v hz="$clk_tck" '$1 == "usage_usec" { printf "%d", $2 * hz / 1e6 }' "$pg_cgroup/cpu.stat"
    fi
    return
  fi
  local pg child
  pg=$(proc_ticks_children "$pm_pid")
  for child in $(pgrep -P "$pm_pid" || true); do
    pg=$((pg + $(proc_ticks "$child")))
  done
  echo "$pg"
}
# Prints: service postgres loadgen(reaped children of this shell) machine_busy
cpu_snapshot() {
  local pg busy
  pg=$(postgres_ticks)
  busy=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9; exit}' /proc/stat)
  echo "$(proc_ticks "$service_pid") $pg $(proc_ticks_children $$) $busy"
}
# Turns two snapshots and a wall time into cores used per component.
cpu_report() {
  local -a a=($1) b=($2)
  awk -v hz="$clk_tck" -v t="$3" -v s="$((b[0] - a[0]))" -v p="$((b[1] - a[1]))" \
      -v l="$((b[2] - a[2]))" -v m="$((b[3] - a[3]))" 'BEGIN {
    o = m - s - p - l; if (o < 0) o = 0
    printf "cpu_server=%.3f cpu_postgres=%.3f cpu_loadgen=%.3f cpu_other=%.3f\n", s/hz/t, p/hz/t, l/hz/t, o/hz/t }'
}
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

retries_total() {
  curl -s "http://127.0.0.1:$admin_port/metrics" \
    | awk '/^service_db_transaction_retries_total/ { n += $NF } END { printf "%d", n }'
}

# Same state before each measured run: dead rows vacuumed, statistics fresh,
# dirty pages flushed.
settle() {
  psql "$db_url" -c "VACUUM ANALYZE accounts, transfers, idempotency_keys" -c "CHECKPOINT"
}

mkdir -p "$out_dir" "$work/runs"
runs=$work/runs

# run_wrk WORKLOAD LUA ROUND
run_wrk() {
  local workload=$1 script=$2 round=$3 before after t0 t1 r0
  log "$workload: wrk warm-up ${warmup}s"
  wrk -t "$threads" -c "$connections" -d "${warmup}s" --timeout 10s -s "$script" "$base_url" \
    -- "$ids_file" "$((seed + 1000 * round + 1))" "warm$round" >"$work/$workload.wrk-warmup.out"
  settle
  log "$workload: wrk ${duration}s, $connections connections, $threads threads"
  r0=$(retries_total)
  local perf_pid=
  if [ "${BENCH_PERF:-0}" = 1 ]; then
    perf record -q -F 499 -g -p "$service_pid" -o "$out_dir/perf.$workload.$round.data" \
      -- sleep "$duration" 2>"$work/perf.$workload.$round.err" &
    perf_pid=$!
  elif [ "${BENCH_PERF:-0}" = stat ]; then
    perf stat -e raw_syscalls:sys_enter,context-switches,task-clock -p "$service_pid" \
      -o "$out_dir/perf.$workload.$round.stat" -- sleep "$duration" 2>"$work/perf.$workload.$round.err" &
    perf_pid=$!
  fi
  before=$(cpu_snapshot); t0=$(now)
  wrk -t "$threads" -c "$connections" -d "${duration}s" --timeout 10s -s "$script" "$base_url" \
    -- "$ids_file" "$((seed + 1000 * round))" "main$round" >"$work/$workload.wrk.out"
  t1=$(now); after=$(cpu_snapshot)
  if [ -n "$perf_pid" ]; then
    wait "$perf_pid" || { cat "$work/perf.$workload.$round.err" >&2; log "perf record failed"; }
    log "$workload: service profile in $out_dir/perf.$workload.$round.data (perf report -i ...)"
  fi
  cat "$work/$workload.wrk.out" >&2
  {
    grep '^BENCH ' "$work/$workload.wrk.out" | sed 's/^BENCH //'
    echo "retries=$(( $(retries_total) - r0 ))"
    cpu_report "$before" "$after" "$(elapsed "$t0" "$t1")"
  } >"$runs/$workload.service.$round"
}

# run_pgbench WORKLOAD SQL ROUND
run_pgbench() {
  local workload=$1 script=$2 round=$3 before after t0 t1
  local -a args=(-n -M prepared -c "$connections" -j "$threads" --max-tries=$((max_retries + 1))
    -D "accounts=$accounts" -f "$script")
  log "$workload: pgbench warm-up ${warmup}s"
  "$PG_BIN/pgbench" "${args[@]}" -T "$warmup" --random-seed=$((seed + 1000 * round + 1)) "$db_url" \
    >"$work/$workload.pgbench-warmup.out" 2>&1 || { cat "$work/$workload.pgbench-warmup.out" >&2; exit 1; }
  settle
  log "$workload: pgbench ${duration}s, $connections clients, $threads threads"
  before=$(cpu_snapshot); t0=$(now)
  "$PG_BIN/pgbench" "${args[@]}" -T "$duration" --random-seed="$((seed + 1000 * round))" \
    -l --log-prefix="$work/$workload.pgbench-log" "$db_url" \
    >"$work/$workload.pgbench.out" 2>&1 || { cat "$work/$workload.pgbench.out" >&2; exit 1; }
  t1=$(now); after=$(cpu_snapshot)
  grep -E '^(tps|number of|latency average|total number)' "$work/$workload.pgbench.out" >&2 || true
  {
    awk '/^tps = / { print "tps=" $3 }
         /^number of transactions actually processed:/ { split($6, a, "/"); print "transactions=" a[1] }
         /^number of failed transactions:/ { print "failed=" $5 }
         /^number of transactions retried:/ { print "retried=" $5 }
         /^total number of retries:/ { print "retries_total=" $5 }' "$work/$workload.pgbench.out"
    python3 bench/report.py pgbench-log "$work/$workload.pgbench-log" "$(elapsed "$t0" "$t1")" "$connections"
    cpu_report "$before" "$after" "$(elapsed "$t0" "$t1")"
  } >"$runs/$workload.pgbench.$round"
  rm -f "$work/$workload".pgbench-log.*
}

{
  echo "connections=$connections threads=$threads duration_s=$duration warmup_s=$warmup accounts=$accounts history=$history rounds=$rounds seed=$seed"
  echo "cpus=$(nproc) max_tries=$((max_retries + 1)) sched_autogroup=$autogroup_now"
  echo "postgres=$("$PG_BIN/postgres" --version | awk '{print $3}') pgbench=$("$PG_BIN/pgbench" --version | awk '{print $3}')"
  echo "wrk=$(wrk --version 2>&1 | awk 'NR == 1 {print $2}') service_commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
} >"$runs/config"
echo "${service_env% }" >"$runs/service_env"

# Rounds alternate which side runs first, so that neither always inherits
# the other's rows (transfers, keys) or a warmer cache.
for round in $(seq 1 "$rounds"); do
  log "round $round of $rounds"
  for workload in $workloads; do
    if [ $((round % 2)) = 1 ]; then
      run_pgbench "$workload" "bench/pgbench_$workload.sql" "$round"
      run_wrk "$workload" "bench/$workload.lua" "$round"
    else
      run_wrk "$workload" "bench/$workload.lua" "$round"
      run_pgbench "$workload" "bench/pgbench_$workload.sql" "$round"
    fi
  done
done

# Money is conserved: a transfer benchmark that broke the ledger is void.
total=$(psql "$db_url" -At -c "SELECT sum(balance) = 1000000000000::numeric * count(*) FROM accounts")
[ "$total" = t ] || log "WARNING: the sum of balances changed during the benchmark"

# What authentication adds to each request above: the path the middleware
# runs (an API key among 10,000 stored, then the principal's token bucket),
# measured alone by service/benches/auth.rs; the report sets it against the
# service's CPU per request. After the rounds, so that its build and run
# never share the machine with a measured run.
log "authentication per request (cargo bench -p service --bench auth)"
BENCH_AUTH_SECONDS=${BENCH_AUTH_SECONDS:-2} CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2} \
  cargo bench -q -p service --bench auth -- "api key, valid (10000 keys)" "rate limit, admitted, 10,000 principals" \
  >"$work/auth.out" 2>"$work/auth.err" || { cat "$work/auth.err" >&2; exit 1; }
cat "$work/auth.out" >&2
awk '/^api key, valid \(10000 keys\)/ { print "auth_api_key_ns=" $(NF-2) }
     /^rate limit, admitted, 10,000 principals/ { print "auth_rate_limit_ns=" $(NF-2) }' \
  "$work/auth.out" >"$runs/auth"
[ "$(wc -l <"$runs/auth")" -eq 2 ] || { log "the auth benchmark printed no figure for one of its cases"; cat "$work/auth.out" >&2; exit 1; }

python3 bench/report.py report "$runs" "$out_dir/results.json"
