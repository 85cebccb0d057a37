//! The real binary: SIGTERM during a slow request lets it finish and exits
//! 0; invalid configuration exits non-zero before binding, naming the field.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use sqlx::Executor;

use crate::helpers::{create_database, free_port, server_url, test_settings, TestApp};

const BINARY: &str = env!("CARGO_BIN_EXE_service");

#[tokio::test]
async fn sigterm_during_a_slow_request_finishes_it_and_exits_zero() {
    sigterm_during_a_slow_request("0", "true").await;
}

/// The same with one serving thread (`worker_threads = 1`).
#[tokio::test]
async fn sigterm_with_one_serving_thread_finishes_the_request_too() {
    sigterm_during_a_slow_request("1", "true").await;
}

/// The same on one work-stealing runtime (`thread_per_core = false`).
#[tokio::test]
async fn sigterm_on_the_work_stealing_runtime_finishes_the_request_too() {
    sigterm_during_a_slow_request("2", "false").await;
}

async fn sigterm_during_a_slow_request(worker_threads: &str, thread_per_core: &str) {
    let url = create_database(&server_url()).await;
    // Migrate and seed through an in-process instance, then stop it.
    let seeder = TestApp::spawn_on(test_settings("us-east-1", &url), true).await;
    let a = seeder.create_account("a", 100).await;
    let b = seeder.create_account("b", 0).await;
    let key = seeder.key.clone();
    seeder.stop().await;

    let port = free_port();
    let mut child = tokio::process::Command::new(BINARY)
        .env("SERVICE_REGION", "us-east-1")
        .env("SERVICE_DATABASE_URL", &url)
        .env("SERVICE_LISTEN_ADDRESS", format!("127.0.0.1:{port}"))
        .env(
            "SERVICE_ADMIN_ADDRESS",
            format!("127.0.0.1:{}", free_port()),
        )
        .env("SERVICE_DRAIN_PERIOD_MS", "500")
        .env("SERVICE_SHUTDOWN_GRACE_MS", "10000")
        .env("SERVICE_WORKER_THREADS", worker_threads)
        .env("SERVICE_THREAD_PER_CORE", thread_per_core)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let started = Instant::now();
    while client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .map(|r| r.status())
        .ok()
        != Some(StatusCode::OK)
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "service did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Hold a lock on the source account so that the transfer blocks.
    let mut locker = crate::helpers::lock_row(&url, a).await;
    let slow = tokio::spawn({
        let client = client.clone();
        let base = base.clone();
        async move {
            client
                .post(format!("{base}/v1/transfers"))
                .bearer_auth(&key)
                .header("Idempotency-Key", "slow-one")
                .header(
                    "traceparent",
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                )
                .json(&json!({"from": a, "to": b, "amount": 10}))
                .send()
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !slow.is_finished(),
        "the transfer should be blocked on the lock"
    );

    let pid = child.id().unwrap().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    // Unready at once, while the drain period keeps the listener open.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let ready = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);

    // Past the drain period the listener is closed, the request still waits.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!slow.is_finished());
    locker.execute("COMMIT").await.unwrap();

    let response = slow
        .await
        .unwrap()
        .expect("the in-flight request completed");
    assert_eq!(response.status(), StatusCode::CREATED);
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("the process exited")
        .unwrap();
    assert!(status.success(), "exit status {status}");

    // The incoming W3C traceparent is kept in the JSON logs.
    let mut stdout = String::new();
    use tokio::io::AsyncReadExt;
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .await
        .unwrap();
    assert!(
        stdout.contains("4bf92f3577b34da6a3ce929d0e0e4736"),
        "traceparent missing from the logs:\n{stdout}"
    );
}

#[test]
fn invalid_configuration_exits_before_binding_and_names_the_field() {
    let port = free_port();
    let cases: [(&[(&str, &str)], &str); 5] = [
        (
            &[("SERVICE_DATABASE_URL", "postgres://x@127.0.0.1/db")],
            "`region`",
        ),
        (&[("SERVICE_REGION", "us-east-1")], "`database_url`"),
        (
            &[
                ("SERVICE_REGION", "us-east-1"),
                ("SERVICE_DATABASE_URL", "postgres://x@127.0.0.1/db"),
                ("SERVICE_DATABASE_POOL_SIZE", "lots"),
            ],
            "database-pool-size",
        ),
        (
            &[
                ("SERVICE_REGION", "us-east-1"),
                ("SERVICE_DATABASE_URL", "postgres://x@127.0.0.1/db"),
                ("SERVICE_REGION_STATE_REFRESH_MS", "5000"),
            ],
            "`region_state_refresh_ms`",
        ),
        (
            &[
                ("SERVICE_REGION", "us-east-1"),
                ("SERVICE_DATABASE_URL", "postgres://x@127.0.0.1/db"),
                ("SERVICE_WORKER_THREADS", "100000"),
            ],
            "`worker_threads`",
        ),
    ];
    for (env, field) in cases {
        let output = Command::new(BINARY)
            .env_clear()
            .envs(env.iter().copied())
            .env("SERVICE_LISTEN_ADDRESS", format!("127.0.0.1:{port}"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{env:?} should fail");
        assert!(
            stderr.contains(field),
            "{env:?}: stderr does not name {field}: {stderr}"
        );
        // Nothing was bound: the port is still free.
        std::net::TcpListener::bind(("127.0.0.1", port)).expect("port still free");
    }
}
