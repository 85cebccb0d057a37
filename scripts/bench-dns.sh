#!/usr/bin/env bash
# The DNS benchmark of issue 14: the failover controller's authoritative DNS
# against NSD serving the same zone on the same machine, both measured by
# dnsperf with the same query file and client concurrency.
#
#   scripts/bench-dns.sh
#
# Builds the controller in release mode, starts a throwaway PostgreSQL
# (scripts/pg.sh) and the real controller binary on 127.0.60.1 (migrate, then
# run, as README.md does), NSD on 127.0.60.2 with a zone file that holds what
# the controller answers, checks that both give the same answers, then runs
# dnsperf against each in alternating rounds and prints queries per second,
# latency and CPU time per query, and the ratio controller / NSD (target
# 0.8). Results also go to target/bench/dns-results.json. A benchmark, not a
# test: it exits 0 whether or not the target is met. Everything it started
# is stopped on exit. See docs/benchmarks-dns.md for the method.
#
# Settings (environment):
#   BENCH_DNS_DURATION     seconds per measured run (10)
#   BENCH_DNS_WARMUP       seconds of warm-up per server before the rounds (2)
#   BENCH_DNS_ROUNDS       rounds, NSD first in odd ones; medians reported (3)
#   BENCH_DNS_CLIENTS      dnsperf -c, client sockets (8)
#   BENCH_DNS_OUTSTANDING  dnsperf -q, queries in flight (200)
#   BENCH_DNS_THREADS      dnsperf -T (1)
#   BENCH_DNS_NSD_SERVERS  NSD server-count (the number of CPUs: the
#                          controller's runtime has a thread per CPU too)
#   BENCH_SKIP_BUILD       1: use the existing target/release/failover-controller
#   BENCH_DNS_CONTROLLER   another controller binary (e.g. an earlier build,
#                          for before/after figures); implies no build
#   BENCH_KEEP             1: keep the work directory (logs, configs) in /tmp
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

duration=${BENCH_DNS_DURATION:-10}
warmup=${BENCH_DNS_WARMUP:-2}
rounds=${BENCH_DNS_ROUNDS:-3}
clients=${BENCH_DNS_CLIENTS:-8}
outstanding=${BENCH_DNS_OUTSTANDING:-200}
threads=${BENCH_DNS_THREADS:-1}
nsd_servers=${BENCH_DNS_NSD_SERVERS:-$(nproc)}
controller_bin=${BENCH_DNS_CONTROLLER:-$root/target/release/failover-controller}
out_dir=$root/target/bench
controller_ip=127.0.60.1
nsd_ip=127.0.60.2
# dnsperf's source address: a client of region-1 in the controller's config.
client_ip=127.0.61.1
zone=svc.failover.test.

log() { echo "bench-dns.sh: $*" >&2; }

# --- tools -------------------------------------------------------------------
need_apt=()
command -v dnsperf >/dev/null 2>&1 || need_apt+=(dnsperf)
command -v nsd >/dev/null 2>&1 || need_apt+=(nsd)
command -v dig >/dev/null 2>&1 || need_apt+=(bind9-dnsutils)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing ${need_apt[*]} from the OS packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
source scripts/pg.sh
pg_install

# --- cleanup -----------------------------------------------------------------
work=$(mktemp -d /tmp/dns-bench.XXXXXX)
chmod 755 "$work"
controller_pid=
nsd_pid=
stop_process() {
  local pid=$1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local status=$?
  stop_process "$controller_pid"
  stop_process "$nsd_pid"
  pg_stop
  scratch_stop
  if [ "${BENCH_KEEP:-0}" = 1 ]; then log "work directory kept: $work"; else rm -rf "$work"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- build -------------------------------------------------------------------
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ] && [ -z "${BENCH_DNS_CONTROLLER:-}" ]; then
  log "building the controller (cargo build --release -p failover-controller)"
  cargo build --release --locked -p failover-controller
fi
[ -x "$controller_bin" ] || { log "missing $controller_bin"; exit 1; }

# A port free for UDP and TCP on both addresses.
port=$(python3 - "$controller_ip" "$nsd_ip" <<'PY'
import socket, sys
for _ in range(100):
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind((sys.argv[1], 0))
    port = probe.getsockname()[1]
    probe.close()
    held = []
    try:
        for ip in sys.argv[1:]:
            for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                s = socket.socket(socket.AF_INET, kind)
                s.bind((ip, port))
                held.append(s)
        for s in held:
            s.close()
        print(port)
        break
    except OSError:
        for s in held:
            s.close()
PY
)
[ -n "$port" ] || { log "no free port on $controller_ip and $nsd_ip"; exit 1; }

# --- controller ----------------------------------------------------------------
# Two regions whose instances nothing answers (port 9): the one vantage point
# sees every region down, is discarded, and so never drains one; region-1's
# clients get region-1's two addresses.
cat >"$work/controller.toml" <<EOF
controller_id = "bench-dns"
[probe]
interval_ms = 500
timeout_ms = 400
[dns]
zone = "$zone"
record = "api"
ttl_seconds = 5
client_subnets = [{ cidr = "127.0.61.0/24", region = "region-1" }]
[dns.latency_ms]
region-1 = { region-2 = 40 }
region-2 = { region-1 = 40 }
[[regions]]
name = "region-1"
instances = ["127.0.62.1:9", "127.0.62.2:9"]
[[regions]]
name = "region-2"
instances = ["127.0.63.1:9", "127.0.63.2:9"]
EOF

scratch_start
pg_start
db_url="${DATABASE_URL%/*}/dns_bench"
psql() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }
psql "$DATABASE_URL" -c "CREATE DATABASE dns_bench"
# The controller reads region_state, which the service's migration creates.
for migration in service/migrations/*.sql; do psql "$db_url" -f "$migration"; done
export FAILOVER_DATABASE_URL=$db_url
"$controller_bin" migrate --config "$work/controller.toml" --region region-1 >"$work/migrate.log" 2>&1 \
  || { cat "$work/migrate.log" >&2; exit 1; }
"$controller_bin" run --config "$work/controller.toml" --region region-1 \
  --http-listen "$controller_ip:0" --dns-listen "$controller_ip:$port" >"$work/controller.log" 2>&1 &
controller_pid=$!

# --- NSD -----------------------------------------------------------------------
# The same records the controller answers region-1's clients: SOA (MINIMUM
# and TTL 5 s), NS (1 h), the service's two A records (5 s).
cat >"$work/zone" <<EOF
\$ORIGIN $zone
\$TTL 5
@    IN SOA ns1.$zone hostmaster.$zone 1 3600 600 86400 5
@    3600 IN NS ns1.$zone
api  IN A 127.0.62.1
api  IN A 127.0.62.2
EOF
# Minimal responses (no NS in authority) as the controller gives them; no
# response rate limiting (NSD's default limits a /24 to 200 qps; the
# controller has none); no privilege drop or chroot (run from here).
cat >"$work/nsd.conf" <<EOF
server:
  ip-address: $nsd_ip
  port: $port
  server-count: $nsd_servers
  reuseport: yes
  username: ""
  chroot: ""
  database: ""
  zonesdir: "$work"
  zonelistfile: "$work/zone.list"
  xfrdfile: "$work/xfrd.state"
  pidfile: "$work/nsd.pid"
  logfile: "$work/nsd.log"
  verbosity: 0
  hide-version: yes
  minimal-responses: yes
  rrl-ratelimit: 0
  rrl-whitelist-ratelimit: 0
remote-control:
  control-enable: no
zone:
  name: "$zone"
  zonefile: "$work/zone"
EOF
nsd-checkzone "$zone" "$work/zone" >/dev/null
nsd-checkconf "$work/nsd.conf"
nsd -d -c "$work/nsd.conf" >"$work/nsd.out" 2>&1 &
nsd_pid=$!

# --- both answer alike ---------------------------------------------------------
queries="api.$zone A|api.$zone AAAA|$zone SOA|$zone NS|nothing.$zone A"
answers() {
  local ip=$1 query
  IFS='|' read -ra list <<<"$queries"
  for query in "${list[@]}"; do
    # shellcheck disable=SC2086
    dig @"$ip" -p "$port" -b "$client_ip" +tries=1 +time=1 +noall +comments +answer +authority $query \
      | grep -E '^[^;]|status:|flags:' | sed -E 's/id: [0-9]+//' | LC_ALL=C sort
  done
}
ready=
for _ in $(seq 1 100); do
  a_controller=$(dig @"$controller_ip" -p "$port" -b "$client_ip" +tries=1 +time=1 +short "api.$zone" A || true)
  a_nsd=$(dig @"$nsd_ip" -p "$port" -b "$client_ip" +tries=1 +time=1 +short "api.$zone" A || true)
  if [[ $a_controller == *127.0.62.1* && $a_nsd == *127.0.62.1* ]]; then
    ready=1
    break
  fi
  kill -0 "$controller_pid" 2>/dev/null || { cat "$work/controller.log" >&2; log "the controller exited"; exit 1; }
  kill -0 "$nsd_pid" 2>/dev/null || { cat "$work/nsd.out" >&2; log "nsd exited"; exit 1; }
  sleep 0.2
done
[ -n "$ready" ] || { log "the servers did not answer"; exit 1; }
if ! diff <(answers "$controller_ip") <(answers "$nsd_ip") >"$work/answers.diff"; then
  cat "$work/answers.diff" >&2
  log "the controller and NSD answer differently"
  exit 1
fi
log "both servers give the same answers to: ${queries//|/, }"

# The query file: mostly the service's A, then its AAAA (NODATA), the apex
# SOA and NS, and an unknown name (NXDOMAIN), as a resolver's mix.
query_file=$work/queries.txt
for _ in $(seq 1 100); do
  printf '%s\n' "api.$zone A" "api.$zone A" "api.$zone A" "api.$zone A" "api.$zone A" \
    "api.$zone A" "api.$zone AAAA" "api.$zone AAAA" "$zone SOA" "nothing.$zone A"
done >"$query_file"

# CPU time (user + system, clock ticks) of a process and its descendants
# (NSD's first process becomes xfrd; main and the servers are below it).
cpu_ticks() {
  local total fields child
  fields=$(cut -d')' -f2 "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
  total=$(echo "$fields" | awk '{print $12 + $13}')
  for child in $(pgrep -P "$1" || true); do
    total=$((total + $(cpu_ticks "$child")))
  done
  echo "$total"
}

# run LABEL IP PID SECONDS OUTPUT: one dnsperf run, with the server's CPU time.
run() {
  local label=$1 ip=$2 pid=$3 seconds=$4 output=$5 before after
  before=$(cpu_ticks "$pid")
  dnsperf -s "$ip" -p "$port" -a "$client_ip" -d "$query_file" -e -c "$clients" -T "$threads" \
    -q "$outstanding" -l "$seconds" >"$output" 2>&1 || { cat "$output" >&2; log "dnsperf failed ($label)"; exit 1; }
  after=$(cpu_ticks "$pid")
  echo "server_cpu_ticks: $((after - before))" >>"$output"
}

log "warm-up: ${warmup} s each"
run nsd "$nsd_ip" "$nsd_pid" "$warmup" "$work/warmup-nsd.txt"
run controller "$controller_ip" "$controller_pid" "$warmup" "$work/warmup-controller.txt"
runs=$work/runs
mkdir -p "$runs"
for round in $(seq 1 "$rounds"); do
  if [ $((round % 2)) = 1 ]; then order="nsd controller"; else order="controller nsd"; fi
  for side in $order; do
    log "round $round/$rounds: $side, ${duration} s"
    if [ "$side" = nsd ]; then
      run nsd "$nsd_ip" "$nsd_pid" "$duration" "$runs/nsd-$round.txt"
    else
      run controller "$controller_ip" "$controller_pid" "$duration" "$runs/controller-$round.txt"
    fi
  done
done

mkdir -p "$out_dir"
python3 - "$runs" "$out_dir/dns-results.json" "$(getconf CLK_TCK)" <<PY
import json, pathlib, re, statistics, sys
runs, out, tck = pathlib.Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])

def parse(path):
    text = path.read_text()
    number = lambda pattern: float(re.search(pattern, text).group(1))
    qps = number(r"Queries per second:\s+([\d.]+)")
    completed = number(r"Queries completed:\s+(\d+)")
    cpu_s = number(r"server_cpu_ticks: (\d+)") / tck
    return {
        "qps": round(qps),
        "completed": int(completed),
        "lost": int(number(r"Queries lost:\s+(\d+)")),
        "avg_latency_ms": round(number(r"Average Latency \(s\):\s+([\d.]+)") * 1000, 3),
        "server_cpu_s": cpu_s,
        "server_cpu_us_per_query": round(cpu_s * 1e6 / completed, 2) if completed else None,
        "codes": re.search(r"Response codes:\s+(.*)", text).group(1).strip(),
    }

sides = {}
for side in ("nsd", "controller"):
    rounds = [parse(p) for p in sorted(runs.glob(f"{side}-*.txt"))]
    median = statistics.median_low([r["qps"] for r in rounds])
    sides[side] = {"median_qps": median, "median_round": next(r for r in rounds if r["qps"] == median), "rounds": rounds}
ratio = sides["controller"]["median_qps"] / sides["nsd"]["median_qps"]
results = {
    "target_ratio": 0.8,
    "ratio": round(ratio, 3),
    "met": ratio >= 0.8,
    "settings": {
        "duration_s": $duration, "rounds": $rounds, "clients": $clients,
        "outstanding": $outstanding, "dnsperf_threads": $threads, "edns": True,
        "nsd_server_count": $nsd_servers, "cpus": $(nproc),
        "queries": "60% A, 20% AAAA (NODATA), 10% SOA, 10% NXDOMAIN",
    },
    "controller_binary": "$controller_bin",
    "versions": {"nsd": "$(nsd -v 2>&1 | head -1)", "dnsperf": "$(dnsperf -h 2>&1 | grep -m1 Version)"},
    "sides": sides,
}
pathlib.Path(out).write_text(json.dumps(results, indent=2) + "\n")
print(f"{'server':<12} {'qps (median)':>12} {'rounds':>26} {'avg latency':>12} {'CPU/query':>10} {'lost':>5}")
for side, label in (("nsd", "NSD"), ("controller", "controller")):
    s = sides[side]; m = s["median_round"]
    rounds = "/".join(str(r["qps"]) for r in s["rounds"])
    print(f"{label:<12} {s['median_qps']:>12} {rounds:>26} {m['avg_latency_ms']:>9} ms {m['server_cpu_us_per_query']:>7} us {m['lost']:>5}")
print(f"controller / NSD: {ratio:.2f} (target 0.80: {'met' if ratio >= 0.8 else 'not met'})")
print(f"results: {out}")
PY
