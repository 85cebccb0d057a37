//! Leader election with three controller processes on the real PostgreSQL:
//! kill the leader and another acts within the lease TTL; a leader paused
//! (SIGSTOP) past its lease changes nothing when it resumes. Also checks the
//! metrics exposition with promtool when it is on PATH.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::time::Instant;

use crate::helpers::{base_toml, get_json, test_db, wait_for, Health, Regions};

const TTL_MS: u64 = 2000;
const RENEW_MS: u64 = 500;

pub struct Controller {
    pub child: Child,
    pub http: String,
    pub dns: std::net::SocketAddr,
    pub id: String,
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port(ip: &str) -> u16 {
    std::net::TcpListener::bind(format!("{ip}:0"))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Writes the configuration file that the controller processes of a test
/// share (each gets its region, id and addresses from the environment).
pub fn write_config(regions: &Regions, lease_ttl_ms: u64, lease_renew_ms: u64) -> PathBuf {
    let path = std::env::temp_dir().join(format!("fc-proc-{}.toml", uuid::Uuid::new_v4()));
    std::fs::write(
        &path,
        format!(
            "admin_token = \"t\"\n{}{}",
            base_toml(lease_ttl_ms, lease_renew_ms),
            regions.toml()
        ),
    )
    .unwrap();
    path
}

pub fn spawn(region: usize, db_url: &str, config: &std::path::Path) -> Controller {
    spawn_with_env(region, db_url, config, &[])
}

/// As [`spawn`], with more environment variables (FAILOVER_* settings,
/// AWS credentials).
pub fn spawn_with_env(
    region: usize,
    db_url: &str,
    config: &std::path::Path,
    env: &[(&str, String)],
) -> Controller {
    let ip = format!("127.0.{region}.100");
    let http = format!("{ip}:{}", free_port(&ip));
    let dns = format!("{ip}:{}", free_port(&ip));
    let id = format!("proc-region-{region}");
    let child = Command::new(env!("CARGO_BIN_EXE_failover-controller"))
        .arg("run")
        .env("FAILOVER_CONFIG", config)
        .env("FAILOVER_REGION", format!("region-{region}"))
        .env("FAILOVER_CONTROLLER_ID", &id)
        .env("FAILOVER_DATABASE_URL", db_url)
        .env("FAILOVER_HTTP_LISTEN", &http)
        .env("FAILOVER_DNS_LISTEN", &dns)
        .env("RUST_LOG", "warn")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the controller binary");
    Controller {
        child,
        http: format!("http://{http}"),
        dns: dns.parse().expect("dns address"),
        id,
    }
}

pub async fn leader_of(controllers: &[Option<Controller>]) -> Option<(usize, i64)> {
    for (i, c) in controllers.iter().enumerate() {
        let Some(c) = c else { continue };
        let Ok(response) = reqwest::get(format!("{}/status", c.http)).await else {
            continue;
        };
        let Ok(status) = response.json::<serde_json::Value>().await else {
            continue;
        };
        if status["lease"]["held"] == true {
            return Some((i, status["lease"]["epoch"].as_i64().unwrap_or_default()));
        }
    }
    None
}

#[tokio::test]
async fn a_dead_leader_is_replaced_and_a_paused_one_changes_nothing() {
    let db = test_db().await;
    let regions = Regions::start(3).await;
    let config = write_config(&regions, TTL_MS, RENEW_MS);
    let mut controllers: Vec<Option<Controller>> =
        (1..=3).map(|r| Some(spawn(r, &db.url, &config))).collect();
    let (first, first_epoch) = wait_for(Duration::from_secs(20), || leader_of(&controllers))
        .await
        .expect("a leader is elected");

    // Metrics pass promtool (when installed, as under scripts/test.sh).
    let leader_http = controllers[first].as_ref().unwrap().http.clone();
    let metrics = reqwest::get(format!("{leader_http}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "failover_probe_total",
        "failover_probe_rtt_seconds",
        "failover_region_state",
        "failover_lease_held",
        "failover_lease_epoch",
        "failover_frozen",
    ] {
        assert!(metrics.contains(name), "missing {name}");
    }
    if let Ok(mut promtool) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        use std::io::Write;
        promtool
            .stdin
            .take()
            .unwrap()
            .write_all(metrics.as_bytes())
            .unwrap();
        let out = promtool.wait_with_output().unwrap();
        assert!(
            out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
            "promtool: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // Kill the leader: another takes over within the TTL (plus one renewal).
    let killed = Instant::now();
    controllers[first] = None;
    let (expired_at,): (chrono::DateTime<chrono::Utc>,) =
        sqlx::query_as("SELECT expires_at FROM failover_lease WHERE epoch = $1")
            .bind(first_epoch)
            .fetch_one(&db.pool)
            .await
            .expect("the killed leader's lease row");
    let (second, second_epoch) = wait_for(Duration::from_secs(10), || leader_of(&controllers))
        .await
        .expect("a new leader");
    println!(
        "leader killed; replaced after {:?} (lease TTL {TTL_MS} ms)",
        killed.elapsed()
    );
    // Measured on the database's clock, from the killed leader's lease
    // expiry to the new leader's acquisition (its audit entry), so that the
    // test's own polling on a loaded machine does not count: a follower
    // tries every renewal interval.
    let (acquired_at,): (chrono::DateTime<chrono::Utc>,) = sqlx::query_as(
        "SELECT at FROM failover_audit WHERE kind = 'lease' AND name = 'lease_acquired' \
         AND lease_epoch = $1",
    )
    .bind(second_epoch)
    .fetch_one(&db.pool)
    .await
    .expect("the new leader's lease_acquired audit entry");
    let after_expiry = (acquired_at - expired_at).num_milliseconds();
    println!("the new leader acquired the lease {after_expiry} ms after it expired");
    assert!(
        after_expiry <= (RENEW_MS + 1000) as i64,
        "acquired {after_expiry} ms after the expiry"
    );
    assert!(second_epoch > first_epoch);

    // The killed replica restarts (as Kubernetes would restart it), so
    // that two live vantage points can make the majority below.
    controllers[first] = Some(spawn(first + 1, &db.url, &config));
    let restarted = controllers[first].as_ref().unwrap().http.clone();
    wait_for(Duration::from_secs(15), || async {
        let status: serde_json::Value = reqwest::get(format!("{restarted}/status"))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (status["counted_vantages"].as_array()?.len() == 3).then_some(())
    })
    .await
    .expect("the restarted replica hears all three vantage points");

    // Pause the new leader past its lease; meanwhile region-3 dies and the
    // two others (two of three configured vantage points) drain it with a
    // newer epoch.
    let paused = controllers[second].as_ref().unwrap();
    let paused_id = paused.id.clone();
    Command::new("kill")
        .args(["-STOP", &paused.child.id().to_string()])
        .status()
        .unwrap();
    let third = 3 - first - second;
    regions.set_region(2, Health::Unavailable);
    let drained = wait_for(Duration::from_secs(15), || async {
        let row: Option<(bool, i64)> = sqlx::query_as(
            "SELECT drained, fencing_epoch FROM region_state WHERE region = 'region-3'",
        )
        .fetch_optional(&db.pool)
        .await
        .unwrap();
        row.filter(|r| r.0)
    })
    .await
    .expect("region-3 drained by the replicas that were not paused");
    assert!(
        drained.1 > second_epoch,
        "drained with epoch {} by the new leader",
        drained.1
    );
    // One of the live replicas leads. A leader trusts its lease for 80% of
    // the TTL after a renewal began, so on a loaded machine a late renewal
    // can leave a moment with no replica claiming it; never two.
    let leading = wait_for(Duration::from_secs(10), || async {
        let mut holders = Vec::new();
        for i in [first, third] {
            let status =
                get_json(&format!("{}/status", controllers[i].as_ref().unwrap().http)).await;
            if status["lease"]["held"] == true {
                holders.push(i);
            }
        }
        assert!(
            holders.len() < 2,
            "two replicas claim the lease: {holders:?}"
        );
        (holders.len() == 1).then_some(())
    })
    .await;
    assert!(leading.is_some(), "no live replica leads");

    // Resume the paused one: it must not act (and would be fenced if it did).
    let resumed_at = chrono::Utc::now();
    Command::new("kill")
        .args([
            "-CONT",
            &controllers[second].as_ref().unwrap().child.id().to_string(),
        ])
        .status()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let row: (bool, i64) =
        sqlx::query_as("SELECT drained, fencing_epoch FROM region_state WHERE region = 'region-3'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        row,
        (true, drained.1),
        "the resumed stale leader changed the drain flag"
    );
    let actions: (i64,) = sqlx::query_as(
        "SELECT count(*) FROM failover_audit WHERE controller_id = $1 AND kind = 'action' AND outcome = 'ok' AND at >= $2",
    )
    .bind(&paused_id)
    .bind(resumed_at)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(actions.0, 0, "the resumed stale leader acted");
    let status = get_json(&format!(
        "{}/status",
        controllers[second].as_ref().unwrap().http
    ))
    .await;
    // It may lead again only by a new election (a newer epoch), never on
    // the lease it held when it was paused.
    assert!(
        status["lease"]["held"] == false || status["lease"]["epoch"].as_i64() > Some(drained.1),
        "the resumed replica believes it still leads: {}",
        status["lease"]
    );
    std::fs::remove_file(config).ok();
}
