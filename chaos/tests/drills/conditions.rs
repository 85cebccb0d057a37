//! Stop conditions on a real `chaos up`, drills run through its
//! `target.yaml`: a region that no fault touches failing, a Prometheus
//! query (a real Prometheus scraping the controllers) returning a series,
//! the success ratio over a window and the error budget (every region's
//! database stalled), each stop the drill within seconds, roll it back,
//! and name the condition in the report; every region serves and is in
//! DNS afterwards.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chaos::deployment::{DeploymentInfo, FaultAction};
use chaos::journal::rollback::problems;
use chaos::model::{DrillReport, Verdict};

use super::lock_deployment;
use super::running::{wait_for_preflight, RunningDrill};
use super::up::ChaosUp;

/// A 40 s drill whose only fault is 50 ms more latency on eu-west-1 (it
/// touches eu-west-1 alone), with the stop condition `abort`.
fn drill_with(directory: &Path, name: &str, abort: &str) -> PathBuf {
    drill_of(
        directory,
        name,
        "  - {{ fault: latency, target: eu-west-1, start_s: 2, delay_ms: 50 }}",
        abort,
    )
}

/// A 40 s drill of `method` (one YAML list item) with the stop condition
/// `abort`.
fn drill_of(directory: &Path, name: &str, method: &str, abort: &str) -> PathBuf {
    let method = method.replace("{{", "{").replace("}}", "}");
    let text = format!(
        "title: Stop condition {name}
topology:
  regions: [us-east-1, eu-west-1, ap-southeast-1]
  instances_per_region: 2
load:
  rate_per_client_region: 10
  write_ratio: 0.5
  duration_s: 40
  request_timeout_ms: 2000
  accounts: 60
hypothesis:
  min_success_ratio: 0.5
  max_p99_ms: 10000
method:
{method}
rollbacks:
  - action: restore-processes
  - action: heal-network
abort:
{abort}"
    );
    let path = directory.join(format!("{name}.yaml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs the drill through the target file; kills us-east-1 (untouched by
/// the drill) through the control API `kill_after` into it; returns the
/// report and how long after the kill the drill exited.
fn run_killing_us_east_1(
    runtime: &tokio::runtime::Runtime,
    run_dir: &Path,
    drill: &Path,
    report_dir: &Path,
) -> (DrillReport, Duration, String) {
    let mut running = RunningDrill::on_target(drill, report_dir, &run_dir.join("target.yaml"));
    // Preflight, then 2 s of load and the latency fault, then the kill. A
    // drill that exits first (preflight refused it) ends the wait with its
    // stderr, which names each failed check.
    running.wait_for("s latency eu-west-1");
    std::thread::sleep(Duration::from_secs(2));
    let control =
        chaos::driver::ControlClient::attach(&run_dir.display().to_string(), None).unwrap();
    runtime
        .block_on(control.apply(&FaultAction::RegionKill {
            target: "us-east-1".into(),
            on: true,
        }))
        .unwrap();
    let killed = Instant::now();
    let (_, output) = running.finish(Duration::from_secs(60));
    let exited = killed.elapsed();
    let text = std::fs::read_to_string(report_dir.join("report.json"))
        .unwrap_or_else(|e| panic!("no report: {e}: {output}"));
    (serde_json::from_str(&text).unwrap(), exited, output)
}

fn assert_restored(runtime: &tokio::runtime::Runtime, info: &DeploymentInfo, target: &Path) {
    let started = Instant::now();
    loop {
        let wrong = runtime.block_on(problems(info));
        if wrong.is_empty() {
            wait_for_preflight(runtime, target, Duration::from_secs(60));
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "not every region serves and is in DNS a minute after the stop: {wrong:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A Prometheus scraping the three controllers every second, on `port`.
struct Prometheus(Child, PathBuf);

impl Prometheus {
    fn start(
        runtime: &tokio::runtime::Runtime,
        directory: &Path,
        info: &DeploymentInfo,
        port: u16,
    ) -> Self {
        let targets: Vec<String> = info
            .regions
            .iter()
            .map(|r| format!("\"{}\"", r.controller_http))
            .collect();
        let config = directory.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global: {{ scrape_interval: 1s, evaluation_interval: 1s }}\n\
                 scrape_configs:\n  - job_name: controllers\n    scrape_timeout: 900ms\n    static_configs:\n      - targets: [{}]\n",
                targets.join(", ")
            ),
        )
        .unwrap();
        let data = directory.join("prometheus-data");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus (Debian package prometheus, installed by scripts/tools.sh)");
        let prometheus = Self(child, data);
        let started = Instant::now();
        let url = format!("http://127.0.0.1:{port}/api/v1/query?query=up");
        loop {
            let text = runtime.block_on(async {
                match reqwest::get(&url).await {
                    Ok(response) => response.text().await.unwrap_or_default(),
                    Err(_) => String::new(),
                }
            });
            let up = text.matches("\"value\"").count() == 3 && !text.contains("\"0\"]");
            if up {
                return prometheus;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "prometheus never scraped the three controllers"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

#[test]
fn every_stop_condition_trips_the_drill_and_rolls_it_back() {
    let _guard = lock_deployment();
    let scratch =
        std::env::temp_dir().join(format!("chaos-conditions-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).unwrap();
    let run_dir = scratch.join("run");
    let database_url = std::env::var("TEST_DATABASE_URL").ok();
    let _up = ChaosUp::start(&run_dir, database_url.as_deref());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let control =
        chaos::driver::ControlClient::attach(&run_dir.display().to_string(), None).unwrap();
    let info = runtime.block_on(control.topology()).unwrap();
    wait_for_preflight(
        &runtime,
        &run_dir.join("target.yaml"),
        Duration::from_secs(60),
    );

    // A region the drill does not touch fails.
    let drill = drill_with(&scratch, "other-region", "  other_region_failing_s: 2\n");
    let report_dir = scratch.join("other-region");
    let (report, exited, stderr) = run_killing_us_east_1(&runtime, &run_dir, &drill, &report_dir);
    assert_eq!(report.verdict, Verdict::Aborted, "{stderr}");
    let reason = report.abort_reason.clone().unwrap_or_default();
    assert!(
        reason.contains("abort.other_region_failing_s: us-east-1"),
        "{reason}\n{stderr}"
    );
    assert!(
        exited < Duration::from_secs(20),
        "the drill ran {exited:?} after the kill"
    );
    assert_restored(&runtime, &info, &run_dir.join("target.yaml"));
    println!("other region failing: stopped {exited:?} after the kill: {reason}");

    // A Prometheus query: a controller not scraped any more.
    let port = 29_000 + (std::process::id() % 1000) as u16;
    let prometheus = Prometheus::start(&runtime, &scratch, &info, port);
    let us_east = info.regions.iter().find(|r| r.name == "us-east-1").unwrap();
    let query = format!("up{{instance=\"{}\"}} == 0", us_east.controller_http);
    let drill = drill_with(
        &scratch,
        "prometheus",
        &format!("  prometheus:\n    url: http://127.0.0.1:{port}\n    query: '{query}'\n"),
    );
    let report_dir = scratch.join("prometheus");
    let (report, exited, stderr) = run_killing_us_east_1(&runtime, &run_dir, &drill, &report_dir);
    assert_eq!(report.verdict, Verdict::Aborted, "{stderr}");
    let reason = report.abort_reason.clone().unwrap_or_default();
    assert!(reason.contains("abort.prometheus"), "{reason}\n{stderr}");
    assert!(reason.contains("returned 1 series"), "{reason}\n{stderr}");
    assert!(
        exited < Duration::from_secs(20),
        "the drill ran {exited:?} after the kill"
    );
    assert_restored(&runtime, &info, &run_dir.join("target.yaml"));
    println!("prometheus: stopped {exited:?} after the kill: {reason}");
    drop(prometheus);

    // Every region's database path stalls (every request fails, retries
    // too): the success ratio over a window, then the error budget, each
    // stop the drill. The stall reaches every region, so the blast radius
    // is loosened in a copy of the target file.
    let text = std::fs::read_to_string(run_dir.join("target.yaml")).unwrap();
    let loose = text.replace(
        &format!("min_serving_regions: {}", info.regions.len() - 1),
        "min_serving_regions: 0",
    );
    assert_ne!(loose, text, "{text}");
    let loose_target = run_dir.join("loose-target.yaml");
    std::fs::write(&loose_target, loose).unwrap();
    let stall = "  - { fault: db-stall, target: us-east-1, start_s: 2, duration_s: 30 }\n\
                 \x20 - { fault: db-stall, target: eu-west-1, start_s: 2, duration_s: 30 }\n\
                 \x20 - { fault: db-stall, target: ap-southeast-1, start_s: 2, duration_s: 30 }";
    for (name, abort, condition) in [
        (
            "success-ratio",
            "  min_success_ratio: 0.9\n  success_window_s: 3\n",
            "abort.min_success_ratio",
        ),
        (
            "error-budget",
            "  max_error_budget_share: 0.001\n",
            "abort.max_error_budget_share",
        ),
    ] {
        let drill = drill_of(&scratch, name, stall, abort);
        let report_dir = scratch.join(name);
        let started = Instant::now();
        let (status, stderr) = RunningDrill::on_target(&drill, &report_dir, &loose_target)
            .finish(Duration::from_secs(120));
        let took = started.elapsed();
        assert_eq!(status.code(), Some(1), "{stderr}");
        let text = std::fs::read_to_string(report_dir.join("report.json"))
            .unwrap_or_else(|e| panic!("no report: {e}: {stderr}"));
        let report: DrillReport = serde_json::from_str(&text).unwrap();
        assert_eq!(report.verdict, Verdict::Aborted, "{stderr}");
        let reason = report.abort_reason.clone().unwrap_or_default();
        assert!(reason.contains(condition), "{reason}\n{stderr}");
        assert_restored(&runtime, &info, &run_dir.join("target.yaml"));
        println!("{name}: the drill ended {took:?} after it started: {reason}");
    }
    let _ = std::fs::remove_dir_all(&scratch);
}
