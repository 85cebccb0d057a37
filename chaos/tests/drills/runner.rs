//! A remote load runner on a real `chaos up`, through its target file only
//! (without the `local` section): ap-southeast-1's load is sent by a
//! `chaos runner` process (the real binary) while eu-west-1 is evacuated
//! and comes back; the runner's operations are in the history and the
//! report; a runner that refuses the token fails preflight (and the drill,
//! which leaves its preflight.json and applies nothing); a runner shut
//! down mid-drill aborts the drill, which still rolls back; a drill started
//! while the runner is down runs once it is back before the last
//! preflight pass.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chaos::model::Verdict;
use chaos::target::{RunnerTarget, SecretRef, Target};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::actuators::{drill_file, wait_all_well};
use super::running::{history, report, RunningDrill};
use super::up::ChaosUp;
use super::{bin_dir, lock_deployment};

const REGION: &str = "ap-southeast-1";

/// `chaos runner` on a loopback port, its log in `log`.
struct Runner {
    child: Child,
    url: String,
}

impl Runner {
    fn start(token_file: &Path, log: &Path) -> Self {
        let port = 29_600 + (std::process::id() % 300) as u16;
        let listen = format!("127.0.0.1:{port}");
        let child = Command::new(bin_dir().join("chaos"))
            .args(["runner", "--listen", &listen, "--token-file"])
            .arg(token_file)
            .env("RUST_LOG", "chaos=info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        let url = format!("http://{listen}");
        let started = Instant::now();
        while std::net::TcpStream::connect(&listen).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the runner never listened"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Self { child, url }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The target file without `local`, ap-southeast-1's vantage point sending
/// its load through the runner at `url` with the token in `token_file`;
/// written as JSON (which is YAML) beside the run directory's target.yaml.
fn runner_target(run_dir: &Path, url: &str, token_file: &Path, name: &str) -> PathBuf {
    let mut target = Target::load(&run_dir.join("target.yaml")).unwrap();
    target.local = None;
    let vantage = target
        .vantage_points
        .iter_mut()
        .find(|v| v.region == REGION)
        .expect("chaos up writes a vantage point per region");
    vantage.runner = Some(RunnerTarget {
        url: url.to_owned(),
        token: SecretRef::File(token_file.to_owned()),
        ca_file: None,
    });
    let path = run_dir.join(name);
    std::fs::write(&path, serde_json::to_string_pretty(&target).unwrap()).unwrap();
    assert!(Target::load(&path)
        .unwrap()
        .vantage_points
        .iter()
        .any(|v| v.runner.is_some()));
    path
}

#[test]
fn a_load_runner_sends_a_regions_load_and_a_runner_lost_aborts_the_drill() {
    let _guard = lock_deployment();
    let scratch = std::env::temp_dir().join(format!("chaos-runner-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).unwrap();
    let run_dir = scratch.join("run");
    let database_url = std::env::var("TEST_DATABASE_URL").ok();
    let _up = ChaosUp::start(&run_dir, database_url.as_deref());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let control =
        chaos::driver::ControlClient::attach(&run_dir.display().to_string(), None).unwrap();
    let info = runtime.block_on(control.topology()).unwrap();

    let token_file = scratch.join("runner-token");
    std::fs::write(&token_file, "runner-secret\n").unwrap();
    let runner = Runner::start(&token_file, &scratch.join("runner.log"));
    let target = runner_target(&run_dir, &runner.url, &token_file, "runner-target.yaml");

    // A token the runner does not know: preflight fails on that check,
    // naming the vantage point, and the drill does not start.
    let wrong_token = scratch.join("wrong-token");
    std::fs::write(&wrong_token, "not-the-secret\n").unwrap();
    let wrong = runner_target(
        &run_dir,
        &runner.url,
        &wrong_token,
        "wrong-runner-target.yaml",
    );
    let checked = Command::new(bin_dir().join("chaos"))
        .args(["check", "--target"])
        .arg(&wrong)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&checked.stdout);
    assert_eq!(checked.status.code(), Some(3), "{stdout}");
    assert!(
        stdout.contains("[FAIL] load runner of ap-southeast-1 answers")
            && stdout.contains("vantage_points[2].runner")
            && stdout.contains("refuses the token"),
        "{stdout}"
    );
    assert!(!stdout.contains("not-the-secret"), "{stdout}");
    // The drill itself: refused with the failed check on stderr and the
    // preflight kept in the report directory, nothing applied.
    let drill = drill_file(
        &scratch,
        "refused",
        20,
        "  - { fault: evacuate, target: eu-west-1, start_s: 4, duration_s: 8 }\n",
        "",
    );
    let report_dir = scratch.join("refused");
    let (status, stderr) =
        RunningDrill::on_target(&drill, &report_dir, &wrong).finish(Duration::from_secs(60));
    assert_eq!(status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("chaos: preflight check failed: load runner of ap-southeast-1 answers")
            && stderr.contains("refuses the token"),
        "{stderr}"
    );
    // Checked again a few seconds apart before the refusal: a failure that
    // persists fails every pass, and the earlier ones are kept.
    assert!(
        stderr.contains("chaos: preflight pass 1 of 3 failed; checking again in 2 s")
            && stderr.contains("chaos: preflight pass 2 of 3 failed"),
        "{stderr}"
    );
    let kept: chaos::target::preflight::Preflight =
        serde_json::from_str(&std::fs::read_to_string(report_dir.join("preflight.json")).unwrap())
            .unwrap();
    assert!(!kept.passed);
    assert_eq!(
        kept.failed_earlier
            .iter()
            .filter(|c| c.name == "load runner of ap-southeast-1 answers")
            .count(),
        2,
        "{kept:?}"
    );
    assert!(!report_dir.join("journal.jsonl").exists());
    assert!(!report_dir.join("report.json").exists());

    // (a) eu-west-1 evacuated for 8 s of a 30 s drill, ap-southeast-1's
    // load from the runner: it passes, and the runner's operations are in
    // the history, the report and the runner's log.
    wait_all_well(&runtime, &info, &target);
    let drill = drill_file(
        &scratch,
        "evacuate",
        30,
        "  - { fault: evacuate, target: eu-west-1, start_s: 4, duration_s: 8 }\n",
        "  must_drain: [eu-west-1]\n  must_return: [eu-west-1]\n",
    );
    let report_dir = scratch.join("evacuate");
    let (status, stderr) =
        RunningDrill::on_target(&drill, &report_dir, &target).finish(Duration::from_secs(150));
    assert_eq!(status.code(), Some(0), "{stderr}");
    let passed = report(&report_dir);
    assert_eq!(passed.verdict, Verdict::Passed, "{stderr}");
    let runners = &passed.configuration["runners"];
    assert_eq!(runners[0]["region"], REGION, "{runners}");
    assert_eq!(runners[0]["url"], runner.url.as_str(), "{runners}");
    assert!(runners[0]["error"].is_null(), "{runners}");
    let operations = history(&report_dir);
    let from_runner = operations
        .iter()
        .filter(|o| o.client_region == REGION)
        .count();
    assert_eq!(from_runner, 300, "10 per second for 30 s");
    assert_eq!(runners[0]["operations"], from_runner, "{runners}");
    // Its region's DNS was watched from the runner, ten times a second.
    let dns_answers = runners[0]["dns_answers"].as_u64().unwrap_or(0);
    assert!(dns_answers >= 200, "{runners}");
    for region in ["us-east-1", "eu-west-1"] {
        assert_eq!(
            operations
                .iter()
                .filter(|o| o.client_region == region)
                .count(),
            300,
            "{region}"
        );
    }
    // Served from the runner's vantage, as its clients are: its own region
    // answers nearly all of it.
    let served_home = operations
        .iter()
        .filter(|o| o.client_region == REGION && o.served_by.as_deref() == Some(REGION))
        .count();
    assert!(
        served_home * 10 >= from_runner * 9,
        "{served_home} of {from_runner}"
    );
    let markdown = std::fs::read_to_string(report_dir.join("report.md")).unwrap();
    assert!(
        markdown.contains("load runner of ap-southeast-1 answers"),
        "{markdown}"
    );
    let log = std::fs::read_to_string(scratch.join("runner.log")).unwrap();
    assert!(
        log.contains("load accepted") && log.contains("load done"),
        "{log}"
    );
    let clock = &runners[0]["clock"];
    println!(
        "runner: {from_runner} operations, round trip {} ms, clock offset {} ms, late {} ms",
        clock["rtt_ms"], clock["offset_ms"], runners[0]["late_ms"]
    );

    // (b) The runner shut down while eu-west-1 is evacuated: the drill
    // aborts naming it, and its rollback gives eu-west-1 back.
    wait_all_well(&runtime, &info, &target);
    let drill = drill_file(
        &scratch,
        "lost",
        40,
        "  - { fault: evacuate, target: eu-west-1, start_s: 2 }\n",
        "",
    );
    let report_dir = scratch.join("lost");
    let mut running = RunningDrill::on_target(&drill, &report_dir, &target);
    running.wait_for("s evacuate eu-west-1");
    kill(Pid::from_raw(runner.child.id() as i32), Signal::SIGTERM).unwrap();
    let stopped = Instant::now();
    let (status, stderr) = running.finish(Duration::from_secs(120));
    assert_eq!(status.code(), Some(1), "{stderr}");
    let aborted = report(&report_dir);
    assert_eq!(aborted.verdict, Verdict::Aborted, "{stderr}");
    let reason = aborted.abort_reason.unwrap_or_default();
    assert!(
        reason.contains("the load runner of ap-southeast-1") && reason.contains("shut down"),
        "{reason}"
    );
    assert!(
        stopped.elapsed() < Duration::from_secs(30),
        "the drill ran {:?} after the runner went",
        stopped.elapsed()
    );
    wait_all_well(&runtime, &info, &run_dir.join("target.yaml"));
    println!(
        "runner lost: the drill stopped {:?} after: {reason}",
        stopped.elapsed()
    );
    drop(runner);

    // (c) The way back: a drill started while the runner is still down
    // fails its first preflight pass on the runner; the runner comes back
    // before the next pass, and the drill runs with it and passes, its
    // report keeping the check that failed on the earlier pass.
    let drill = drill_file(
        &scratch,
        "back",
        20,
        "  - { fault: evacuate, target: eu-west-1, start_s: 2, duration_s: 3 }\n",
        "",
    );
    let report_dir = scratch.join("back");
    let mut running = RunningDrill::on_target(&drill, &report_dir, &target);
    running.wait_for("chaos: preflight pass 1 of 3 failed");
    let runner = Runner::start(&token_file, &scratch.join("runner-back.log"));
    let (status, stderr) = running.finish(Duration::from_secs(120));
    assert_eq!(status.code(), Some(0), "{stderr}");
    let passed = report(&report_dir);
    assert_eq!(passed.verdict, Verdict::Passed, "{stderr}");
    let preflight: chaos::target::preflight::Preflight =
        serde_json::from_value(passed.configuration["preflight"].clone()).unwrap();
    assert!(preflight.passed, "{preflight:?}");
    assert!(
        preflight
            .failed_earlier
            .iter()
            .any(|c| c.name == "load runner of ap-southeast-1 answers"),
        "{preflight:?}"
    );
    assert_eq!(
        history(&report_dir)
            .iter()
            .filter(|o| o.client_region == REGION)
            .count(),
        200,
        "the runner back sent ap-southeast-1's load"
    );
    wait_all_well(&runtime, &info, &run_dir.join("target.yaml"));
    drop(runner);
    let _ = std::fs::remove_dir_all(&scratch);
}
