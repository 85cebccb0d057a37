//! Actuators on a real `chaos up`, driven only through the `target.yaml` it
//! writes, without its `local` section (the deployment as a real one is
//! known: addresses, CA, API key, ledger, admin API): an `evacuate` fault drains eu-west-1 through the controllers'
//! admin API and gives it back; a drill SIGKILLed while a region is
//! evacuated leaves the override, which `chaos rollback --journal` removes;
//! a drain the controllers refuse (min_healthy_regions) aborts the drill
//! with the refusal in its report and undoes the evacuations before it;
//! command hooks run start and stop in order with their runs in the
//! report, and a start past its timeout aborts the drill and runs stop;
//! HTTP hooks call a webhook server the test runs, start then stop.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chaos::journal::rollback::problems;
use chaos::model::{FaultDns, Verdict};
use nix::sys::signal::{kill, Signal};

use super::running::{report, wait_for_preflight, RunningDrill};
use super::up::ChaosUp;
use super::{bin_dir, lock_deployment};

/// A drill of `duration_s` of light load whose method is `method` (YAML
/// list items, indented by two).
pub(super) fn drill_file(
    directory: &Path,
    name: &str,
    duration_s: u32,
    method: &str,
    extra: &str,
) -> PathBuf {
    let text = format!(
        "title: Evacuate {name}
topology:
  regions: [us-east-1, eu-west-1, ap-southeast-1]
  instances_per_region: 2
load:
  rate_per_client_region: 10
  write_ratio: 0.5
  duration_s: {duration_s}
  request_timeout_ms: 2000
  accounts: 60
hypothesis:
  min_success_ratio: 0.9
  max_p99_ms: 4000
{extra}method:
{method}"
    );
    let path = directory.join(format!("{name}.yaml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// The drain overrides in force whose actor is `chaos`, as "region reason".
fn chaos_drains(
    runtime: &tokio::runtime::Runtime,
    admin_url: &str,
    admin_token: &str,
) -> Vec<String> {
    let list: serde_json::Value = runtime.block_on(async {
        reqwest::Client::new()
            .get(format!("{admin_url}/v1/admin/overrides"))
            .bearer_auth(admin_token)
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    list["overrides"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["actor"] == "chaos" && o["kind"] == "drain")
        .map(|o| {
            format!(
                "{} {}",
                o["region"].as_str().unwrap_or("?"),
                o["reason"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

/// Waits until `problems` is empty (every region serving and in DNS), then
/// until the preflight of `target` passes (what the next drill needs).
pub(super) fn wait_all_well(
    runtime: &tokio::runtime::Runtime,
    info: &chaos::deployment::DeploymentInfo,
    target: &Path,
) {
    let started = Instant::now();
    loop {
        let wrong = runtime.block_on(problems(info));
        if wrong.is_empty() {
            wait_for_preflight(runtime, target, Duration::from_secs(60));
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "still wrong: {wrong:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// `<run dir>/target.yaml` without its `local:` block, as
/// `<run dir>/remote-target.yaml` (beside it, so that its relative secret
/// and CA paths still hold).
fn without_local_section(run_dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(run_dir.join("target.yaml")).unwrap();
    let mut kept = String::new();
    let mut in_local = false;
    for line in text.lines() {
        if !line.starts_with(' ') {
            in_local = line.starts_with("local:");
        }
        if !in_local {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    assert!(
        text.contains("\nlocal:") && !kept.contains("control_url"),
        "{kept}"
    );
    let path = run_dir.join("remote-target.yaml");
    std::fs::write(&path, kept).unwrap();
    assert!(chaos::target::Target::load(&path).unwrap().local.is_none());
    path
}

#[test]
fn evacuation_through_the_target_file_drains_and_returns_and_rollback_repairs_a_killed_drill() {
    let _guard = lock_deployment();
    let scratch = std::env::temp_dir().join(format!("chaos-actuators-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).unwrap();
    let run_dir = scratch.join("run");
    let database_url = std::env::var("TEST_DATABASE_URL").ok();
    let up = ChaosUp::start(&run_dir, database_url.as_deref());
    // The deployment as a real one is known: `chaos up`'s target file
    // without its `local` section (the control API), so that every drill
    // here reads addresses, CA, API key and ledger from the file alone.
    let target = without_local_section(&run_dir);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client =
        chaos::driver::ControlClient::attach(&run_dir.display().to_string(), None).unwrap();
    let info = runtime.block_on(client.topology()).unwrap();
    wait_for_preflight(&runtime, &target, Duration::from_secs(60));
    let parsed = chaos::target::Target::load(&target).unwrap();
    let admin_url = parsed.regions["us-east-1"]
        .controller_admin_url
        .trim_end_matches('/')
        .to_owned();
    let admin_token = std::fs::read_to_string(run_dir.join("secrets/admin-token"))
        .unwrap()
        .trim()
        .to_owned();
    let started = Instant::now();

    // (a) The region-kill drill of a deployment this tool does not own:
    // preflight, then eu-west-1 evacuated for 12 s of a 35 s drill; it
    // leaves DNS during the fault and comes back after it, and the report
    // gives the preflight, the RTO verdict against its objective and the
    // failback.
    let drill = drill_file(
        &scratch,
        "return",
        35,
        "  - { fault: evacuate, target: eu-west-1, start_s: 5, duration_s: 12 }\n",
        "  must_drain: [eu-west-1]\n  must_return: [eu-west-1]\nobjectives: { rto_s: 5, rpo_writes: 0 }\n",
    );
    let report_dir = scratch.join("return");
    let mut running = RunningDrill::on_target(&drill, &report_dir, &target);
    running.wait_for("s evacuate eu-west-1");
    assert_eq!(
        chaos_drains(&runtime, &admin_url, &admin_token),
        vec!["eu-west-1 chaos drill Evacuate return".to_owned()]
    );
    let (status, stderr) = running.finish(Duration::from_secs(150));
    assert_eq!(status.code(), Some(0), "{stderr}");
    let evacuated = report(&report_dir);
    assert_eq!(evacuated.verdict, Verdict::Passed, "{stderr}");
    let window = &evacuated.faults[0];
    assert_eq!(
        (window.kind.as_str(), window.target.as_str()),
        ("evacuate", "eu-west-1")
    );
    let Some(FaultDns::Left {
        after_s: left_after_s,
        ..
    }) = window.dns
    else {
        panic!("eu-west-1 never left DNS: {:?}", window.dns);
    };
    let failback_s = window
        .failback
        .and_then(|f| f.dns_back_after_s)
        .unwrap_or_else(|| panic!("eu-west-1 never came back: {:?}", window.failback));
    let preflight = &evacuated.configuration["preflight"];
    assert_eq!(preflight["passed"], true, "{preflight}");
    assert!(
        preflight["checks"]
            .as_array()
            .is_some_and(|c| c.len() >= 10),
        "{preflight}"
    );
    let objectives = evacuated.objectives.as_ref().expect("objectives measured");
    assert_eq!(objectives.rto.objective_s, Some(5.0));
    assert_eq!(objectives.rto.passed, Some(true), "{objectives:?}");
    let rto_s = objectives.rto.measured_s.expect("recovered");
    assert!(objectives.rto.failback_s.is_some(), "{objectives:?}");
    assert_eq!(objectives.rpo.passed, Some(true), "{objectives:?}");
    let markdown = std::fs::read_to_string(report_dir.join("report.md")).unwrap();
    assert!(
        markdown.contains("## Preflight") && markdown.contains("RTO"),
        "{markdown}"
    );
    assert!(chaos_drains(&runtime, &admin_url, &admin_token).is_empty());
    wait_all_well(&runtime, &info, &target);
    println!(
        "evacuation left DNS after {left_after_s:.1} s, failback {failback_s:.1} s, \
         RTO {rto_s:.2} s (objective 5 s), {} preflight checks",
        preflight["checks"].as_array().map_or(0, Vec::len)
    );

    // (b) SIGKILL while eu-west-1 is evacuated: the override stays (until
    // its expiry) and the region stays out; `chaos rollback --journal`
    // removes it and the region returns; twice is harmless.
    let drill = drill_file(
        &scratch,
        "killed",
        40,
        "  - { fault: evacuate, target: eu-west-1, start_s: 2 }\n",
        "",
    );
    let report_dir = scratch.join("killed");
    let journal = report_dir.join("journal.jsonl");
    let mut running = RunningDrill::on_target(&drill, &report_dir, &target);
    running.wait_for("s evacuate eu-west-1");
    kill(running.pid(), Signal::SIGKILL).unwrap();
    let _ = running.finish(Duration::from_secs(10));
    let out = Instant::now();
    loop {
        let wrong = runtime.block_on(problems(&info));
        if wrong.iter().any(|w| w.starts_with("eu-west-1: not in DNS")) {
            break;
        }
        assert!(
            out.elapsed() < Duration::from_secs(20),
            "eu-west-1 was not left out of DNS: {wrong:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        chaos_drains(&runtime, &admin_url, &admin_token),
        vec!["eu-west-1 chaos drill Evacuate killed".to_owned()]
    );
    let journaled = std::fs::read_to_string(&journal).unwrap();
    assert!(!journaled.contains(&admin_token), "{journaled}");
    // The first names the deployment by the target file, as an operator
    // would (`chaos rollback --target`); the second takes the one the
    // journal names (the same file).
    let rollback = |by_target: bool| {
        let mut command = Command::new(bin_dir().join("chaos"));
        command.arg("rollback").arg("--journal").arg(&journal);
        if by_target {
            command.arg("--target").arg(&target);
        }
        let output = command.output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), text)
    };
    let rolled_back_at = Instant::now();
    let (ok, text) = rollback(true);
    let rollback_took = rolled_back_at.elapsed();
    assert!(ok, "{text}");
    assert!(
        text.contains("evacuate eu-west-1 (on) undone")
            && text.contains("every region serves and is in DNS"),
        "{text}"
    );
    assert!(chaos_drains(&runtime, &admin_url, &admin_token).is_empty());
    let wrong = runtime.block_on(problems(&info));
    assert!(
        wrong.is_empty(),
        "right after the rollback said all is well: {wrong:?}"
    );
    let (ok, text) = rollback(false);
    assert!(ok && text.contains("holds 0 fault(s)"), "{text}");

    // (c) A drain the controllers refuse (min_healthy_regions: the third
    // region) aborts the drill with the refusal, and the two evacuations
    // before it are undone. The target's blast radius would refuse this
    // drill before it starts; a copy of it that allows every region to go
    // shows the controllers' own refusal behind the guard.
    let text = std::fs::read_to_string(&target).unwrap();
    assert!(text.contains("min_serving_regions: 2"), "{text}");
    let loose = run_dir.join("target-loose.yaml");
    std::fs::write(
        &loose,
        text.replace("min_serving_regions: 2", "min_serving_regions: 0"),
    )
    .unwrap();
    let drill = drill_file(
        &scratch,
        "refused",
        30,
        "  - { fault: evacuate, target: eu-west-1, start_s: 2 }
  - { fault: evacuate, target: ap-southeast-1, start_s: 3 }
  - { fault: evacuate, target: us-east-1, start_s: 4 }\n",
        "",
    );
    let report_dir = scratch.join("refused");
    let (status, stderr) =
        RunningDrill::on_target(&drill, &report_dir, &loose).finish(Duration::from_secs(150));
    assert_ne!(status.code(), Some(0), "{stderr}");
    let refused = report(&report_dir);
    assert_eq!(refused.verdict, Verdict::Aborted, "{stderr}");
    let reason = refused.abort_reason.unwrap_or_default();
    assert!(
        reason.contains("fault evacuate on us-east-1 failed to start")
            && reason.contains("min_healthy_regions"),
        "{reason}"
    );
    assert!(chaos_drains(&runtime, &admin_url, &admin_token).is_empty());
    wait_all_well(&runtime, &info, &target);

    // (d) Command hooks: start and stop run in order, without a shell
    // unless asked for, and their runs are in report.json.
    let hooks_file = scratch.join("hooks.log");
    let drill = drill_file(
        &scratch,
        "hooks",
        20,
        &format!(
            "  - fault: command
    target: eu-west-1
    start_s: 3
    duration_s: 4
    start: [sh, -c, 'sleep 1; echo start \"$0\" >> {file}', '$HOME; not expanded']
    stop: [sh, -c, 'echo stop >> {file}']
    timeout_s: 10\n",
            file = hooks_file.display()
        ),
        "",
    );
    let report_dir = scratch.join("hooks");
    let (status, stderr) =
        RunningDrill::on_target(&drill, &report_dir, &target).finish(Duration::from_secs(120));
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&hooks_file).unwrap(),
        "start $HOME; not expanded\nstop\n"
    );
    let hooked = report(&report_dir);
    let runs = &hooked.faults[0].hooks;
    assert_eq!(runs.len(), 2, "{:?}", hooked.faults);
    // The fault started when its start command began (3 s), not when the
    // command, a second long, returned: the RTO clock starts at injection.
    let start_s = hooked.faults[0].start_s;
    assert!((2.9..3.6).contains(&start_s), "fault start {start_s} s");
    let commands: Vec<&chaos::actuators::command::CommandRun> = runs
        .iter()
        .filter_map(|run| match run {
            chaos::actuators::HookRun::Command(run) => Some(run),
            chaos::actuators::HookRun::Http(_) => None,
        })
        .collect();
    assert!(
        commands.iter().all(|run| run.exit_code == Some(0)),
        "{runs:?}"
    );
    assert_eq!(
        commands[1].argv[2],
        format!("echo stop >> {}", hooks_file.display())
    );

    // (e) A start command past its timeout (sleep 30, 1 s) is killed at the
    // timeout, aborts the drill, and the stop command still runs.
    let stop_file = scratch.join("stopped.log");
    let drill = drill_file(
        &scratch,
        "timeout",
        20,
        &format!(
            "  - {{ fault: command, target: eu-west-1, start_s: 3, start: [sleep, '30'], timeout_s: 1, \
             stop: [sh, -c, 'echo stop >> {}'] }}\n",
            stop_file.display()
        ),
        "",
    );
    let report_dir = scratch.join("timeout");
    let (status, stderr) =
        RunningDrill::on_target(&drill, &report_dir, &target).finish(Duration::from_secs(120));
    assert_eq!(status.code(), Some(1), "{stderr}");
    let timed_out = report(&report_dir);
    assert_eq!(timed_out.verdict, Verdict::Aborted, "{stderr}");
    let reason = timed_out.abort_reason.unwrap_or_default();
    assert!(reason.contains("timed out after"), "{reason}");
    let failed_at: f64 = reason
        .split("failed to start at t=")
        .nth(1)
        .and_then(|rest| rest.split('s').next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no time in {reason}"));
    assert!(
        failed_at - 3.0 < 2.5,
        "the 1 s timeout took {:.1} s",
        failed_at - 3.0
    );
    assert_eq!(std::fs::read_to_string(&stop_file).unwrap(), "stop\n");
    // Both runs are in the report: the start that timed out, and the stop
    // the drill's rollback ran after the abort.
    let runs: Vec<(String, bool)> = timed_out.faults[0]
        .hooks
        .iter()
        .map(|run| (run.what(), run.succeeded()))
        .collect();
    assert_eq!(
        runs,
        vec![
            ("sleep 30".to_owned(), false),
            (format!("sh -c echo stop >> {}", stop_file.display()), true)
        ],
        "{:?}",
        timed_out.faults
    );
    let markdown = std::fs::read_to_string(report_dir.join("report.md")).unwrap();
    assert!(
        markdown.contains("## Hooks") && markdown.contains("timed out (killed)"),
        "{markdown}"
    );
    println!(
        "a 1 s start timeout failed the fault {:.1} s after it began",
        failed_at - 3.0
    );

    // (f) HTTP hooks: a webhook server (here in the test, recording every
    // call) gets the start and then the stop, with the header whose value
    // comes from the environment; the runs are in the report and the
    // journal never holds the header's value.
    let calls: Arc<Mutex<Vec<String>>> = Arc::default();
    let recorded = calls.clone();
    let hooks = axum::Router::new().fallback(
        move |method: axum::http::Method, uri: axum::http::Uri, headers: axum::http::HeaderMap| {
            let recorded = recorded.clone();
            async move {
                let authorization = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("none")
                    .to_owned();
                recorded
                    .lock()
                    .unwrap()
                    .push(format!("{method} {} {authorization}", uri.path()));
                "recorded"
            }
        },
    );
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let hooks_address = listener.local_addr().unwrap();
    runtime.spawn(async move { axum::serve(listener, hooks).await });
    std::env::set_var("CHAOS_ACTUATORS_TEST_HOOK_TOKEN", "Bearer hook-secret-7");
    let drill = drill_file(
        &scratch,
        "webhooks",
        15,
        &format!(
            "  - fault: http
    target: eu-west-1
    start_s: 3
    duration_s: 4
    start: {{ url: 'http://{hooks_address}/experiments/start', headers: {{ authorization: {{ env: CHAOS_ACTUATORS_TEST_HOOK_TOKEN }} }}, body: '{{}}' }}
    stop: {{ method: DELETE, url: 'http://{hooks_address}/experiments/current' }}
    timeout_s: 5\n"
        ),
        "",
    );
    let report_dir = scratch.join("webhooks");
    let (status, stderr) =
        RunningDrill::on_target(&drill, &report_dir, &target).finish(Duration::from_secs(120));
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(
        *calls.lock().unwrap(),
        vec![
            "POST /experiments/start Bearer hook-secret-7".to_owned(),
            "DELETE /experiments/current none".to_owned(),
        ]
    );
    let webhooks = report(&report_dir);
    let runs: Vec<bool> = webhooks.faults[0]
        .hooks
        .iter()
        .map(|run| run.succeeded())
        .collect();
    assert_eq!(runs, vec![true, true], "{:?}", webhooks.faults);
    let journal = std::fs::read_to_string(report_dir.join("journal.jsonl")).unwrap();
    assert!(
        journal.contains("CHAOS_ACTUATORS_TEST_HOOK_TOKEN") && !journal.contains("hook-secret-7"),
        "{journal}"
    );

    println!("chaos rollback of an evacuation after SIGKILL took {rollback_took:?}");
    println!("the whole test took {:?}", started.elapsed());
    drop(up);
    let _ = std::fs::remove_dir_all(&scratch);
}
