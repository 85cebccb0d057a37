#!/usr/bin/env python3
"""Helpers of scripts/bench.sh (standard library only).

  report.py pgbench-log PREFIX SECONDS CLIENTS
                                        -> percentiles of a pgbench -l log
  report.py report RUNS_DIR OUT.json    -> prints the table, writes the JSON

A run directory holds one `<workload>.<side>.<round>` file of `key=value`
lines per measured run (side: service or pgbench), written by
scripts/bench.sh. Each side is summarised by its median round (by
throughput); the ratio is median service / median pgbench, and every round's
own ratio is listed next to it so the spread shows.
"""
import collections
import glob
import json
import math
import sys

TARGETS = {"read_account": 0.8, "transfer": 0.7}
LABELS = {"read_account": "read account", "transfer": "transfer"}


def counted(values):
    """Sorted (value, count) pairs of `values`."""
    return sorted(collections.Counter(values).items())


def corrected_for_omission(pairs, expected_us):
    """wrk 4's coordinated-omission correction (`stats_correct` in its
    `wrk.c`), applied to a pgbench log so that both sides' percentiles are
    computed the same way. A closed-loop client that waited `v` for one
    answer did not send the requests it would have sent meanwhile; wrk
    counts them as if they had been sent every `expected_us` (the mean time
    between a connection's requests) and waited the rest: for each latency
    `v >= 2 * expected_us` it adds `v - expected_us`, `v - 2 * expected_us`,
    ... while above `expected_us`. Takes and returns sorted (latency, count)
    pairs; an `expected_us` of 0 corrects nothing."""
    counts = collections.Counter(dict(pairs))
    if expected_us > 0:
        for value, count in pairs:
            if value < 2 * expected_us:
                continue
            m = value - expected_us
            while m > expected_us:
                counts[m] += count
                m -= expected_us
    return sorted(counts.items())


def weighted_percentile(pairs, p):
    """Nearest-rank percentile of sorted (value, count) pairs."""
    total = sum(count for _, count in pairs)
    if not total:
        return float("nan")
    rank = max(1, math.ceil(p / 100.0 * total))
    seen = 0
    for value, count in pairs:
        seen += count
        if seen >= rank:
            return value
    return pairs[-1][0]


def pgbench_log(prefix, duration_s, clients):
    # pgbench 15 -l line: client_id transaction_no time script_no time_epoch
    # time_us [schedule_lag] [retries]; time is the latency in microseconds,
    # or "failed" / "skipped".
    latencies, failed, retries = [], 0, 0
    files = sorted(glob.glob(prefix + ".*"))
    if not files:
        sys.exit(f"report.py: no pgbench log files match {prefix}.*")
    for path in files:
        with open(path) as log:
            for line in log:
                fields = line.split()
                if len(fields) < 6:
                    continue
                if fields[2] in ("failed", "skipped"):
                    failed += 1
                    continue
                latencies.append(int(fields[2]))
                if len(fields) >= 7:
                    retries += int(fields[-1])
    raw = counted(latencies)
    # As wrk: the mean time between two requests of one connection, from
    # all requests (failed ones included) over the run's length.
    complete = len(latencies) + failed
    expected_us = int(duration_s * 1e6) // (complete // clients) if complete // clients else 0
    corrected = corrected_for_omission(raw, expected_us)
    print(
        f"log_transactions={len(latencies)} log_failed={failed} log_retries={retries} "
        f"p50_ms={weighted_percentile(corrected, 50) / 1000:.3f} "
        f"p99_ms={weighted_percentile(corrected, 99) / 1000:.3f} "
        f"raw_p99_ms={weighted_percentile(raw, 99) / 1000:.3f} "
        f"max_ms={(raw[-1][0] if raw else float('nan')) / 1000:.3f}"
    )


def read_kv(path):
    values = {}
    with open(path) as f:
        for line in f:
            for token in line.split():
                if "=" in token:
                    key, _, value = token.partition("=")
                    if key in ("postgres", "pgbench", "wrk", "service_commit"):
                        values[key] = value
                        continue
                    try:
                        values[key] = float(value) if "." in value or "e" in value else int(value)
                    except ValueError:
                        values[key] = value
    return values


def rounds_of(runs_dir, workload, side, rate_key):
    """{round: values} of one side's measured runs."""
    found = {}
    for path in glob.glob(f"{runs_dir}/{workload}.{side}.*"):
        suffix = path.rsplit(".", 1)[1]
        if suffix.isdigit():
            values = read_kv(path)
            if rate_key in values:
                found[int(suffix)] = values
    return found


def median_round(rounds, rate_key):
    """The round with the median throughput (the lower middle one of an even count)."""
    ordered = sorted(rounds.values(), key=lambda values: values[rate_key])
    return ordered[(len(ordered) - 1) // 2]


def authentication(runs_dir, workloads):
    """What authenticating each request costs, from the auth benchmark's
    medians (runs/auth), set against the service's CPU per request in the
    median rounds above; None when the run has no auth figures."""
    try:
        values = read_kv(f"{runs_dir}/auth")
    except FileNotFoundError:
        return None
    if "auth_api_key_ns" not in values or "auth_rate_limit_ns" not in values:
        return None
    per_request_ns = values["auth_api_key_ns"] + values["auth_rate_limit_ns"]
    shares = {}
    for w in workloads:
        s = w["service"]
        if s.get("rps") and s.get("cpu_server", 0) >= 0.005:
            service_us = s["cpu_server"] / s["rps"] * 1e6
            shares[w["workload"]] = {
                "service_cpu_us_per_request": round(service_us, 2),
                "share": round(per_request_ns / 1000 / service_us, 4),
            }
    summary = (
        f"authentication per request (every request above carries an API key): "
        f"{per_request_ns / 1000:.2f} µs of CPU (API key among 10,000 stored "
        f"{values['auth_api_key_ns']:.0f} ns + rate limit {values['auth_rate_limit_ns']:.0f} ns)"
    )
    if shares:
        summary += "; " + ", ".join(
            f"{100 * v['share']:.1f}% of the service's {v['service_cpu_us_per_request']:.1f} µs per "
            f"{LABELS[name].strip()}"
            for name, v in shares.items()
        )
    return {
        "api_key_ns": values["auth_api_key_ns"],
        "rate_limit_ns": values["auth_rate_limit_ns"],
        "per_request_ns": per_request_ns,
        "by_workload": shares,
        "summary": summary,
    }


def report(runs_dir, out_path):
    config = read_kv(f"{runs_dir}/config")
    with open(f"{runs_dir}/service_env") as f:
        config["service_env"] = f.read().strip()
    workloads = []
    for name in ("read_account", "transfer"):
        service_rounds = rounds_of(runs_dir, name, "service", "rps")
        pgbench_rounds = rounds_of(runs_dir, name, "pgbench", "tps")
        if not service_rounds or not pgbench_rounds:
            continue
        service = median_round(service_rounds, "rps")
        pgbench = median_round(pgbench_rounds, "tps")
        ratio = service["rps"] / pgbench["tps"] if pgbench.get("tps") else float("nan")
        p99_ratio = service["p99_ms"] / pgbench["p99_ms"] if pgbench.get("p99_ms") else float("nan")
        paired = {
            r: service_rounds[r]["rps"] / pgbench_rounds[r]["tps"]
            for r in sorted(service_rounds)
            if r in pgbench_rounds and pgbench_rounds[r].get("tps")
        }
        target = TARGETS[name]
        workloads.append(
            {
                "workload": name,
                "service": service,
                "pgbench": pgbench,
                "throughput_ratio": round(ratio, 3),
                "p99_ratio": round(p99_ratio, 3),
                "target_throughput_ratio": target,
                "verdict": "PASS" if ratio >= target else "BELOW TARGET",
                "service_errors_all_rounds": sum(v.get("errors", 0) for v in service_rounds.values()),
                "pgbench_failed_all_rounds": sum(v.get("failed", 0) for v in pgbench_rounds.values()),
                "rounds": [
                    {
                        "round": r,
                        "service_rps": service_rounds[r]["rps"],
                        "pgbench_tps": pgbench_rounds[r]["tps"],
                        "throughput_ratio": round(paired[r], 3),
                    }
                    for r in paired
                ],
            }
        )

    header = (
        f"{'workload':<14} {'service req/s':>13} {'pgbench tps':>12} {'ratio':>6} {'target':>6}  "
        f"{'service p99':>11} {'pgbench p99':>11} {'p99 ratio':>9}  verdict"
    )
    print()
    print(
        f"{int(config.get('connections', 0))} database connections and {int(config.get('connections', 0))} "
        f"concurrent clients on each side, {config.get('duration_s')} s per run after a "
        f"{config.get('warmup_s')} s warm-up, {config.get('accounts')} accounts, "
        f"{config.get('history')} seeded transfers, {config.get('cpus')} CPUs "
        f"(sched_autogroup_enabled {config.get('sched_autogroup', 'unknown')}); "
        f"median of {config.get('rounds')} rounds per side"
    )
    print(
        "service settings from the environment: "
        + (config["service_env"] or "none (the service's defaults)")
    )
    print(header)
    print("-" * len(header))
    for w in workloads:
        s, p = w["service"], w["pgbench"]
        print(
            f"{LABELS[w['workload']]:<14} {s['rps']:>13.0f} {p['tps']:>12.0f} {w['throughput_ratio']:>6.2f} "
            f"{w['target_throughput_ratio']:>6.2f}  {s['p99_ms']:>8.2f} ms {p['p99_ms']:>8.2f} ms "
            f"{w['p99_ratio']:>9.2f}  {w['verdict']}"
        )
    print()
    for w in workloads:
        s, p = w["service"], w["pgbench"]
        notes = []
        if len(w["rounds"]) > 1:
            notes.append(
                "ratio per round: "
                + ", ".join(
                    f"{r['throughput_ratio']:.2f} ({r['service_rps']:.0f}/{r['pgbench_tps']:.0f})"
                    for r in w["rounds"]
                )
                + " (the figures below are of each side's median round)"
            )
        if s.get("errors", 0):
            notes.append(
                f"service run had {s['errors']} ERRORS (non-2xx {s.get('status_errors', 0)}, "
                f"timeouts {s.get('timeouts', 0)}, socket {s.get('connect_errors', 0) + s.get('read_errors', 0) + s.get('write_errors', 0)})"
            )
        if w["service_errors_all_rounds"] > s.get("errors", 0):
            notes.append(f"service runs of all rounds had {w['service_errors_all_rounds']} ERRORS")
        if p.get("failed", 0):
            notes.append(f"pgbench run had {p['failed']} FAILED transactions")
        if w["pgbench_failed_all_rounds"] > p.get("failed", 0):
            notes.append(f"pgbench runs of all rounds had {w['pgbench_failed_all_rounds']} FAILED transactions")
        if s.get("retries", 0) or p.get("retried", 0):
            notes.append(
                f"serialization retries: service {s.get('retries', 0)}, pgbench {p.get('retries_total', 0)} "
                f"(in {p.get('retried', 0)} transactions)"
            )
        for side, values in (("service", s), ("pgbench", p)):
            cpu = [f"{k[4:]} {values[k]:.2f}" for k in ("cpu_server", "cpu_postgres", "cpu_loadgen", "cpu_other")
                   if k in values and (k != "cpu_server" or values[k] >= 0.005)]
            if cpu:
                notes.append(f"{side} run, CPU cores used: " + ", ".join(cpu).replace("server", "service"))
            rate = values.get("rps") or values.get("tps")
            if rate and "cpu_postgres" in values:
                per = [
                    f"{label} {values[key] / rate * 1e6:.0f}"
                    for label, key in (("service", "cpu_server"), ("postgres", "cpu_postgres"), ("load generator", "cpu_loadgen"))
                    if values.get(key, 0) >= 0.005
                ]
                notes.append(f"{side} run, CPU microseconds per request: " + ", ".join(per))
        for side, values in (("service", s), ("pgbench", p)):
            if values.get("cpu_other", 0) > 0.25:
                notes.append(
                    f"WARNING: other processes on this machine used {values['cpu_other']:.2f} cores during the "
                    f"{side} run; this pair is distorted (rerun on a quiet machine)"
                )
        if notes:
            print(f"{LABELS[w['workload']]}:")
            for note in notes:
                print(f"  {note}")
    auth = authentication(runs_dir, workloads)
    if auth:
        print(auth["summary"])
    with open(out_path, "w") as out:
        json.dump({"config": config, "workloads": workloads, "authentication": auth}, out, indent=2)
        out.write("\n")
    print(f"\nresults written to {out_path}")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "pgbench-log":
        pgbench_log(sys.argv[2], float(sys.argv[3]), int(sys.argv[4]))
    elif len(sys.argv) == 4 and sys.argv[1] == "report":
        report(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
