//! Benchmark (prints figures; not a timed test): from killing a region's
//! instances to the majority decision, the drain flag and the DNS change, at
//! several probe intervals; and probes per second on one core.
//! Run: cargo test -p failover-controller --test it bench -- --ignored --nocapture

use std::net::IpAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use failover_controller::app::Application;
use tokio::time::Instant;

use crate::helpers::{
    get_json, resolve_a, settings, test_db, wait_for, Health, HealthServer, Regions,
};

async fn one_run(interval_ms: u64) -> (f64, f64, f64) {
    let db = test_db().await;
    let regions = Regions::start(3).await;
    let mut stops = Vec::new();
    let mut http = Vec::new();
    let mut dns = Vec::new();
    for r in 1..=3 {
        let mut s = settings(&format!("region-{r}"), &db.url, &regions.toml(), "");
        s.probe.interval_ms = interval_ms;
        s.probe.timeout_ms = interval_ms * 3 / 5;
        s.probe.vote_freshness_ms = (interval_ms * 6).max(3000);
        s.decision.interval_ms = (interval_ms / 4).max(50);
        let app = Application::build(s).await.unwrap();
        http.push(format!("http://{}", app.http_addr()));
        dns.push(app.dns_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        stops.push(stop);
        tokio::spawn(app.run_until_stopped(async move {
            let _ = stopped.await;
        }));
    }
    wait_for(Duration::from_secs(20), || {
        let http = http.clone();
        async move {
            for url in &http {
                let s = get_json(&format!("{url}/status")).await;
                if s["counted_vantages"].as_array().map(|v| v.len()) != Some(3) {
                    return None;
                }
            }
            Some(())
        }
    })
    .await
    .expect("warm");
    tokio::time::sleep(Duration::from_millis(interval_ms * 2)).await;
    let client3: IpAddr = "127.0.3.9".parse().unwrap();
    let region2: Vec<IpAddr> = regions.servers[1].iter().map(|s| s.addr.ip()).collect();
    let killed_at = Utc::now();
    let killed = Instant::now();
    regions.set_region(2, Health::Unavailable);
    let dns_s = wait_for(Duration::from_secs(20), || async {
        let (_, ips) = resolve_a(dns[0], client3, "api.svc.failover.test.").await;
        (ips == region2).then(|| killed.elapsed().as_secs_f64())
    })
    .await
    .expect("dns changed");
    let (decided,): (DateTime<Utc>,) = sqlx::query_as(
        "SELECT min(at) FROM failover_audit WHERE kind = 'decision' AND name = 'drain' AND region = 'region-3'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let (flagged,): (DateTime<Utc>,) =
        sqlx::query_as("SELECT updated_at FROM region_state WHERE region = 'region-3'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    for stop in stops {
        let _ = stop.send(());
    }
    let secs = |t: DateTime<Utc>| (t - killed_at).num_milliseconds() as f64 / 1000.0;
    (secs(decided), secs(flagged), dns_s)
}

#[tokio::test]
#[ignore = "benchmark: prints figures"]
async fn bench_failover_timings() {
    println!("probe interval | decision | drain flag | DNS changed | vs Route53 (30 s)");
    for interval in [250u64, 500, 1000] {
        let (decision, flag, dns) = one_run(interval).await;
        println!(
            "{interval:>11} ms | {decision:>6.2} s | {flag:>8.2} s | {dns:>9.2} s | {:>5.1}x faster",
            30.0 / dns
        );
    }
}

/// Regions and instances of the probe benchmark: 7 x 10, as the issue's
/// target (at least 10,000 probes per second on one core) is stated.
const BENCH_REGIONS: usize = 7;
const BENCH_INSTANCES: usize = 10;
/// Set in the environment of the child process that serves the targets.
const SERVE_TARGETS: &str = "FC_BENCH_SERVE_TARGETS";

/// Not a benchmark itself: the other process of
/// `bench_probes_per_second_on_one_core`, which starts this test binary
/// again with `SERVE_TARGETS` set. It serves `/healthz/instance` on
/// 7 x 10 loopback addresses, prints them, and serves until killed. Run on
/// its own (without the variable) it returns at once.
#[test]
#[ignore = "benchmark helper: run by bench_probes_per_second_on_one_core"]
fn bench_probe_targets_server() {
    if std::env::var_os(SERVE_TARGETS).is_none() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut servers = Vec::new();
        for r in 0..BENCH_REGIONS {
            for i in 1..=BENCH_INSTANCES {
                let server = HealthServer::start(&format!("127.0.{}.{i}", 20 + r)).await;
                println!("BENCH_TARGET region-{} {}", r + 1, server.addr);
                servers.push(server);
            }
        }
        println!("BENCH_TARGETS_READY");
        std::future::pending::<()>().await;
    });
}

/// This process's user plus system CPU time, from /proc/self/stat.
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // The kernel's USER_HZ is 100 on every Linux that runs this.
    Duration::from_millis(ticks * 10)
}

/// A line of /proc/self/status in kB (VmRSS, VmHWM).
fn memory_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The real prober of one controller, on one thread (a current-thread
/// runtime), probing 7 regions x 10 instances served by another process,
/// round after round for 10 s: probes per second, CPU per probe (this
/// process only) and memory.
#[tokio::test(flavor = "current_thread")]
#[ignore = "benchmark: prints figures"]
async fn bench_probes_per_second_on_one_core() {
    use std::io::BufRead;
    let mut server = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "bench::bench_probe_targets_server",
            "--ignored",
            "--nocapture",
        ])
        .env(SERVE_TARGETS, "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the target server process");
    let mut instances: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for line in std::io::BufReader::new(server.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if line.contains("BENCH_TARGETS_READY") {
            break;
        }
        if let Some(rest) = line.split("BENCH_TARGET ").nth(1) {
            let (region, addr) = rest.split_once(' ').unwrap();
            instances
                .entry(region.to_owned())
                .or_default()
                .push(format!("\"{addr}\""));
        }
    }
    assert_eq!(
        instances.values().map(Vec::len).sum::<usize>(),
        BENCH_REGIONS * BENCH_INSTANCES,
        "the target server process printed every address before it was ready"
    );
    let mut regions_toml = String::new();
    for (region, addrs) in &instances {
        regions_toml.push_str(&format!(
            "[[regions]]\nname = \"{region}\"\ninstances = [{}]\n\n",
            addrs.join(", ")
        ));
    }
    let settings = settings(
        "region-1",
        "postgres://unused@127.0.0.1:1/unused",
        &regions_toml,
        "",
    );
    let mut prober = failover_controller::probe::Prober::new(
        &settings,
        failover_controller::metrics::Metrics::new(),
    )
    .unwrap();
    // Warm up: connections opened, then measure.
    for _ in 0..20 {
        prober.round().await;
    }
    let rss_before = memory_kib("VmRSS:");
    let cpu_before = process_cpu();
    let started = Instant::now();
    let mut rounds = 0u64;
    let mut failed = 0usize;
    while started.elapsed() < Duration::from_secs(10) {
        let votes = prober.round().await;
        failed += votes.iter().filter(|v| !v.last_error.is_empty()).count();
        rounds += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = (process_cpu() - cpu_before).as_secs_f64();
    let probes = rounds * (BENCH_REGIONS * BENCH_INSTANCES) as u64;
    let _ = server.kill();
    let _ = server.wait();
    println!(
        "probes on one core ({BENCH_REGIONS} regions x {BENCH_INSTANCES} instances, targets in another process): \
         {:.0} probes/s ({rounds} rounds of {} in {elapsed:.1} s), {:.1} µs CPU per probe, \
         {:.0}% of one core; memory: RSS {} KiB (+{} KiB while measuring), peak {} KiB; {failed} failed region-rounds; target >= 10,000 probes/s",
        probes as f64 / elapsed,
        BENCH_REGIONS * BENCH_INSTANCES,
        cpu / probes as f64 * 1e6,
        cpu / elapsed * 100.0,
        memory_kib("VmRSS:"),
        memory_kib("VmRSS:").saturating_sub(rss_before),
        memory_kib("VmHWM:"),
    );
    assert_eq!(failed, 0, "every probe succeeded");
}
