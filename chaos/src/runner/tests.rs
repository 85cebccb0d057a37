//! The runner protocol between a real `chaos runner` server (in process,
//! on loopback) and the coordinator's client: the token, the clock, a load
//! streamed back whole, an abort, and a coordinator that goes away. The
//! load here reaches no service (every operation fails fast): what is
//! tested is what comes back; `tests/drills/runner.rs` runs a drill whose
//! load comes from a `chaos runner` process against a deployment.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::client::{run_load, Load, RemoteRunner};
use super::server;
use crate::load::{LiveCounters, Outcome, Plan, Target};

const TOKEN: &str = "runner-test-token";

/// A runner on a free loopback port; stopped by dropping the sender.
async fn start_runner() -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server::serve(listener, TOKEN.into(), None, async {
        let _ = stopped.await;
    }));
    (address, stop)
}

/// A target file naming the runner for eu-west-1, with `token` in a file.
fn target_file(address: SocketAddr, token: &str) -> crate::target::Target {
    let dir = std::env::temp_dir().join(format!(
        "chaos-runner-test-{}-{}",
        std::process::id(),
        address.port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("runner-token"), format!("{token}\n")).unwrap();
    let text = format!(
        "name: t\nservice: {{public_name: api.example.com, api_key: {{env: X}}}}\n\
         dns: {{nameservers: [\"127.0.0.1:9\"]}}\n\
         regions:\n  eu-west-1: {{endpoints: [\"https://127.0.0.1:1\"], controller_admin_url: \"http://127.0.0.1:1\"}}\n\
         controller: {{admin_token: {{env: Y}}}}\n\
         vantage_points:\n  - region: eu-west-1\n    resolver: \"127.0.0.1:9\"\n    runner: {{url: \"http://{address}\", token: {{file: runner-token}}}}\n\
         blast_radius: {{may_touch: [eu-west-1], min_serving_regions: 0}}\n"
    );
    let path = dir.join("target.yaml");
    std::fs::write(&path, text).unwrap();
    crate::target::Target::load(&path).unwrap()
}

/// A load that reaches nothing: a name server and an instance that refuse.
fn unreachable_load(rate: f64, seconds: u64) -> (Plan, Target) {
    let region = "eu-west-1".to_owned();
    let plan = Plan {
        client_regions: vec![region.clone()],
        seed_offset: 0,
        rate_per_client_region: rate,
        write_ratio: 0.5,
        duration: Duration::from_secs(seconds),
        request_timeout: Duration::from_millis(500),
        accounts: vec![uuid::Uuid::new_v4(), uuid::Uuid::new_v4()],
        seed: 7,
    };
    let instance: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let target = Target {
        dns_servers: vec!["127.0.0.1:9".parse().unwrap()],
        resolvers: BTreeMap::new(),
        ca_pem: String::new(),
        client_addresses: BTreeMap::from([(region.clone(), "127.0.0.1".parse().unwrap())]),
        instances: BTreeMap::from([(region.clone(), vec![instance])]),
        instance_names: BTreeMap::new(),
        preference: BTreeMap::from([(region.clone(), vec![region])]),
        api_key: "k".into(),
        service_name: "api.example.com.".into(),
        service_port: 1,
    };
    (plan, target)
}

fn load(plan: Plan, target: Target, abort: Arc<AtomicBool>) -> (Load, Arc<LiveCounters>) {
    let live = Arc::new(LiveCounters::default());
    let load = Load {
        plan,
        target,
        t0: Instant::now() + Duration::from_millis(300),
        t0_wall: chrono::Utc::now() + chrono::Duration::milliseconds(300),
        live: live.clone(),
        abort,
        abort_reason: Arc::new(Mutex::new(None)),
    };
    (load, live)
}

#[tokio::test]
async fn a_runner_measures_its_clock_and_refuses_a_wrong_token() {
    let (address, _stop) = start_runner().await;
    let target = target_file(address, TOKEN);
    let runners = RemoteRunner::connect_all(&target, &["eu-west-1".into()])
        .await
        .unwrap();
    assert_eq!(runners.len(), 1);
    let clock = runners[0].clock;
    assert!(clock.rtt_ms < 1000.0, "{clock:?}");
    // One machine, one clock: the offset is within the round trip.
    assert!(clock.offset_ms.abs() <= clock.rtt_ms + 1.0, "{clock:?}");
    // A region without load asks no runner.
    let none = RemoteRunner::connect_all(&target, &["us-east-1".into()])
        .await
        .unwrap();
    assert!(none.is_empty());

    let wrong = target_file(address, "not-the-token");
    let error = RemoteRunner::connect_all(&wrong, &["eu-west-1".into()])
        .await
        .err()
        .expect("a wrong token is refused");
    let message = format!("{error:#}");
    assert!(
        message.contains("vantage_points[0].runner") && message.contains("refuses the token"),
        "{message}"
    );
    assert!(!message.contains("not-the-token"), "{message}");
    let _ = std::fs::remove_dir_all(&target.base_dir);
    let _ = std::fs::remove_dir_all(&wrong.base_dir);
}

#[tokio::test]
async fn a_load_on_a_runner_comes_back_whole_with_its_windows() {
    let (address, _stop) = start_runner().await;
    let target = target_file(address, TOKEN);
    let runners = RemoteRunner::connect_all(&target, &["eu-west-1".into()])
        .await
        .unwrap();
    let (plan, load_target) = unreachable_load(20.0, 2);
    let (load, live) = load(plan, load_target, Arc::new(AtomicBool::new(false)));
    let gathered = run_load(load, runners).await;
    let (history, summaries) = (gathered.history, gathered.runners);
    assert_eq!(history.len(), 40, "every planned operation comes back");
    assert!(history.iter().all(|o| o.client_region == "eu-west-1"));
    assert!(history.iter().all(|o| o.outcome != Outcome::Ok));
    assert!(history
        .windows(2)
        .all(|w| w[0].intended_s <= w[1].intended_s));
    // The operations keep the drill's time: the first planned at t = 0.
    assert!(
        history[0].intended_s.abs() < 0.05,
        "{}",
        history[0].intended_s
    );
    assert_eq!(live.completed_total.load(Ordering::Relaxed), 40);
    assert_eq!(summaries.len(), 1);
    assert_eq!(summaries[0].operations, 40);
    assert_eq!(summaries[0].error, None);
    let _ = std::fs::remove_dir_all(&target.base_dir);
}

#[tokio::test]
async fn an_abort_reaches_the_runner_and_a_runner_shut_down_says_so() {
    let (address, stop) = start_runner().await;
    let target = target_file(address, TOKEN);
    let runners = RemoteRunner::connect_all(&target, &["eu-west-1".into()])
        .await
        .unwrap();
    // Aborted by the coordinator after 1 s of a 30 s load.
    let abort = Arc::new(AtomicBool::new(false));
    let (plan, load_target) = unreachable_load(10.0, 30);
    let (load_of, _) = load(plan.clone(), load_target.clone(), abort.clone());
    let flag = abort.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        flag.store(true, Ordering::Relaxed);
    });
    let started = Instant::now();
    let gathered = run_load(load_of, runners.clone()).await;
    let (history, summaries) = (gathered.history, gathered.runners);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(
        !history.is_empty() && history.len() < 100,
        "{}",
        history.len()
    );
    assert_eq!(summaries[0].error, None, "an abort is no failure");

    // The runner shut down mid-load: the drill hears why and aborts.
    let (load_of, _) = load(plan, load_target, Arc::new(AtomicBool::new(false)));
    let reason = load_of.abort_reason.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let _ = stop.send(());
    });
    let summaries = run_load(load_of, runners).await.runners;
    let error = summaries[0].error.clone().unwrap_or_default();
    assert!(error.contains("shut down"), "{error}");
    let reason = reason.lock().unwrap().clone().unwrap_or_default();
    assert!(
        reason.contains("the load runner of eu-west-1") && reason.contains("shut down"),
        "{reason}"
    );
    let _ = std::fs::remove_dir_all(&target.base_dir);
}

/// A runner cut off mid-load without a reset (a partition: the proxy in
/// front of it holds every byte) is counted lost after the silence, and
/// the drill aborts naming it.
#[tokio::test]
async fn a_runner_gone_silent_is_lost_after_the_silence() {
    let (address, _stop) = start_runner().await;
    let front = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let proxy = crate::proxy::Proxy::start(front, address).await.unwrap();
    let target = target_file(front, TOKEN);
    let runners = RemoteRunner::connect_all(&target, &["eu-west-1".into()])
        .await
        .unwrap();
    let (plan, load_target) = unreachable_load(10.0, 60);
    let (load_of, _) = load(plan, load_target, Arc::new(AtomicBool::new(false)));
    let reason = load_of.abort_reason.clone();
    let cut = proxy.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        cut.set_mode(crate::proxy::Mode::Hold);
    });
    let started = Instant::now();
    let summaries = tokio::time::timeout(Duration::from_secs(30), run_load(load_of, runners))
        .await
        .expect("the silent runner was never given up")
        .runners;
    let took = started.elapsed();
    assert!(
        took >= super::client::SILENCE && took < super::client::SILENCE + Duration::from_secs(5),
        "{took:?}"
    );
    let error = summaries[0].error.clone().unwrap_or_default();
    assert!(error.contains("nothing heard from it for 10 s"), "{error}");
    let reason = reason.lock().unwrap().clone().unwrap_or_default();
    assert!(reason.contains("the load runner of eu-west-1"), "{reason}");
    let _ = std::fs::remove_dir_all(&target.base_dir);
}
