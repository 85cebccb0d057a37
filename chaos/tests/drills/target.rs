//! `chaos check --target`: the preflight of a running `chaos up`, driven
//! only through the `target.yaml` it writes (the control API only for the
//! faults), failing for each reason and passing again after the way back.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use chaos::target::preflight::{Outcome, Preflight};
use chaos::target::Target;

use super::up::ChaosUp;
use super::{bin_dir, lock_deployment};

/// Runs `chaos check --target <file> --json` and returns the exit code and
/// the parsed result.
fn check(target: &Path) -> (i32, Preflight) {
    let output = Command::new(bin_dir().join("chaos"))
        .args(["check", "--json", "--target"])
        .arg(target)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let json = &stdout[stdout.find("\n{").map_or(0, |i| i + 1)..];
    let preflight: Preflight =
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    (output.status.code().unwrap_or(-1), preflight)
}

fn failed(preflight: &Preflight) -> Vec<String> {
    preflight
        .checks
        .iter()
        .filter(|c| c.outcome == Outcome::Fail)
        .map(|c| c.name.clone())
        .collect()
}

/// Asserts preflight fails with `wanted` among the failed checks.
fn assert_fails(target: &Path, wanted: &str) {
    let (code, preflight) = check(target);
    let failed = failed(&preflight);
    assert_eq!(code, 3, "{failed:?}");
    assert!(
        failed.iter().any(|f| f.contains(wanted)),
        "{wanted}: {failed:?}"
    );
}

/// Waits until preflight passes again.
fn assert_passes_within(target: &Path, within: Duration) {
    let started = Instant::now();
    loop {
        let (code, preflight) = check(target);
        if code == 0 {
            assert!(preflight.passed);
            return;
        }
        assert!(
            started.elapsed() < within,
            "still failing after {within:?}: {:?}",
            failed(&preflight)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A copy of target.yaml beside it (so relative paths still hold), edited.
fn edited(run_dir: &Path, name: &str, from: &str, to: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(run_dir.join("target.yaml")).unwrap();
    assert!(text.contains(from), "{from} not in target.yaml:\n{text}");
    let path = run_dir.join(name);
    std::fs::write(&path, text.replace(from, to)).unwrap();
    path
}

#[test]
fn preflight_through_the_target_file_fails_for_each_reason_and_passes_after_the_way_back() {
    let _guard = lock_deployment();
    let run_dir = std::env::temp_dir().join(format!("chaos-target-test-{}", std::process::id()));
    let database_url = std::env::var("TEST_DATABASE_URL").ok();
    let up = ChaosUp::start(&run_dir, database_url.as_deref());
    let path = run_dir.join("target.yaml");
    assert!(up.banner.contains("target.yaml"), "{}", up.banner);
    let target = Target::load(&path).unwrap();
    let secret = |name: &str| std::fs::read_to_string(run_dir.join("secrets").join(name)).unwrap();
    let client = reqwest::Client::new();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let send = |request: reqwest::RequestBuilder| -> serde_json::Value {
        runtime.block_on(async {
            let response = request.send().await.unwrap().error_for_status().unwrap();
            let text = response.text().await.unwrap();
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
        })
    };
    let local = target
        .local
        .clone()
        .expect("chaos up writes a local section");
    let control_token = secret("control-token").trim().to_owned();
    let admin_token = secret("admin-token").trim().to_owned();
    let started = Instant::now();
    assert_passes_within(&path, Duration::from_secs(20));

    // Wrong admin token: fails; the right one again: passes.
    std::fs::write(run_dir.join("secrets/wrong-token"), "not-the-token\n").unwrap();
    let wrong_token = edited(
        &run_dir,
        "wrong-token.yaml",
        "secrets/admin-token",
        "secrets/wrong-token",
    );
    assert_fails(&wrong_token, "admin token accepted");
    assert_passes_within(&path, Duration::from_secs(5));

    // Wrong resolver address: DNS fails.
    let wrong_resolver = edited(&run_dir, "wrong-resolver.yaml", ".1.53:5300", ".1.54:5300");
    assert_fails(&wrong_resolver, "DNS answers");

    // Wrong ledger URL: fails.
    std::fs::write(
        run_dir.join("secrets/wrong-db"),
        "postgres://nobody@127.0.0.1:1/none\n",
    )
    .unwrap();
    let wrong_ledger = edited(
        &run_dir,
        "wrong-ledger.yaml",
        "secrets/database-url",
        "secrets/wrong-db",
    );
    assert_fails(&wrong_ledger, "ledger reachable");

    // A region drained through the admin API: not in DNS; undrained: back.
    let controller = &target.regions["us-east-1"].controller_admin_url;
    let drain = send(
        client
            .post(format!("{controller}/v1/admin/overrides"))
            .bearer_auth(&admin_token)
            .json(&serde_json::json!({"kind": "drain", "region": "eu-west-1",
                "reason": "preflight test", "actor": "test", "ttl_seconds": 300})),
    );
    let begin = Instant::now();
    loop {
        let (_, preflight) = check(&path);
        if failed(&preflight)
            .iter()
            .any(|f| f == "region eu-west-1 in DNS")
        {
            break;
        }
        assert!(
            begin.elapsed() < Duration::from_secs(15),
            "the drain never left DNS"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    send(
        client
            .delete(format!(
                "{controller}/v1/admin/overrides/{}",
                drain["id"].as_str().unwrap()
            ))
            .bearer_auth(&admin_token),
    );
    assert_passes_within(&path, Duration::from_secs(40));

    // A region killed through the control API: not healthy; restored: back.
    let fault = |on: bool| {
        send(
            client
                .post(format!("{}/faults", local.control_url))
                .bearer_auth(&control_token)
                .json(&serde_json::json!({"kind": "region-kill", "target": "ap-southeast-1", "on": on})),
        );
    };
    fault(true);
    assert_fails(&path, "region ap-southeast-1 healthy");
    fault(false);
    assert_passes_within(&path, Duration::from_secs(40));
    println!("preflight cases took {:?}", started.elapsed());
    drop(up);
    let _ = std::fs::remove_dir_all(&run_dir);
}
