//! The drills that travel a whole outage beyond a region's loss (database
//! crash, connection reset at COMMIT, controller cut off from the
//! database, Route53 throttling), and their fail-on-purpose versions: the
//! shipped drill with what it guards broken, seen to fail. The
//! fail-on-purpose versions are `#[ignore]`d (each is a whole drill more):
//! run them with `cargo test -p chaos --test drills -- --ignored <name>`.

use std::path::Path;

use chaos::drill::{self, DeploymentSource, DrillOptions};
use chaos::model::{DrillReport, Verdict};

use super::{bin_dir, lock_deployment, run_drill};

/// Runs the shipped drill `name` with `edit` applied to its file, and
/// returns the report whatever its verdict.
fn run_broken(name: &str, variant: &str, edit: impl Fn(&str) -> String) -> DrillReport {
    let _guard = lock_deployment();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let shipped = std::fs::read_to_string(root.join(format!("drills/{name}.yaml"))).unwrap();
    let broken = edit(&shipped);
    assert_ne!(broken, shipped, "the edit changed nothing");
    let report_dir = root
        .join("target/drill-tests")
        .join(format!("{name}-{variant}"));
    std::fs::create_dir_all(&report_dir).unwrap();
    let drill_file = report_dir.join("drill.yaml");
    std::fs::write(&drill_file, broken).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let report = runtime
        .block_on(drill::run(
            DrillOptions {
                drill_file,
                report_dir,
                deployment: DeploymentSource::Start {
                    bin_dir: bin_dir(),
                    database_url: std::env::var("TEST_DATABASE_URL").ok(),
                },
                actuators: None,
            },
            std::future::pending(),
        ))
        .unwrap_or_else(|e| panic!("drill {name} ({variant}) could not run: {e:#}"));
    for check in report.checks.iter().filter(|c| !c.passed) {
        println!(
            "{name} ({variant}) failed as meant: {}: expected {}, observed {}",
            check.name, check.expected, check.observed
        );
    }
    report
}

fn failed_check<'a>(report: &'a DrillReport, name_contains: &str) -> Option<&'a str> {
    report
        .checks
        .iter()
        .find(|c| !c.passed && c.name.contains(name_contains))
        .map(|c| c.observed.as_str())
}

fn print_figures(name: &str, report: &DrillReport) {
    let t = &report.totals;
    println!(
        "{name}: failover {:?} s, failback {:?} s, served again {:?} s; requests {} \
         (failed {}, unknown {}); writes acknowledged {}, lost {}",
        report.phases.dns_s,
        report.phases.failback_s,
        report.phases.served_again_s,
        t.requests,
        t.failed,
        t.unknown,
        t.writes_acknowledged,
        t.writes_lost
    );
    for check in &report.checks {
        println!(
            "  {} {}: {}",
            if check.passed { "ok  " } else { "FAIL" },
            check.name,
            check.observed
        );
    }
}

/// The database dies under load and comes back: every vantage point sees
/// every region down, so nothing is drained; every acknowledged write
/// survives the crash; service returns by itself.
#[test]
fn a_database_crash_drains_nothing_and_loses_no_acknowledged_write() {
    let report = run_drill("database-crash");
    print_figures("database-crash", &report);
    assert!(
        report.events.iter().all(|e| e.kind != "drain_flag"),
        "{:?}",
        report.events
    );
    assert_eq!(report.totals.writes_lost, 0);
    assert!(report.totals.writes_acknowledged > 100);
    assert!(
        report.totals.failed + report.totals.unknown > 0,
        "the crash was not felt: {:?}",
        report.totals
    );
}

/// Broken on purpose: a server that acknowledges a commit before its WAL is
/// written (synchronous_commit off, the WAL writer every 10 s) loses
/// acknowledged writes in the crash, and the verifier finds them.
#[test]
#[ignore = "fail-on-purpose version: a whole drill more"]
fn a_database_crash_fails_when_commits_are_acknowledged_before_the_wal_is_written() {
    let report = run_broken("database-crash", "async-commit", |text| {
        text.replace(
            "  instances_per_region: 2\n",
            "  instances_per_region: 2\n  overrides:\n    database: { synchronous_commit: \"off\", wal_writer_delay: \"10s\" }\n",
        )
    });
    assert_eq!(report.verdict, Verdict::Failed);
    assert!(report.totals.writes_lost > 0, "{:?}", report.totals);
    assert!(failed_check(&report, "acknowledged writes lost").is_some());
}

/// Commits that lose their answer are resolved through the idempotency
/// key: nothing applied twice, nothing lost, every account reconciles.
#[test]
fn a_connection_reset_at_commit_applies_nothing_twice() {
    let report = run_drill("commit-reset");
    print_figures("commit-reset", &report);
    assert_eq!(report.totals.writes_lost, 0);
    assert_eq!(report.totals.writes_duplicated, 0);
    assert_eq!(report.totals.accounts_unreconciled, 0);
    assert!(report
        .checks
        .iter()
        .any(|c| c.name.starts_with("commits whose answer was cut") && c.passed));
    // Broken on purpose: the same ledger with one cut commit applied a
    // second time behind its row (what a service without the idempotency
    // key's replay would do) no longer reconciles.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let unreconciled = runtime.block_on(apply_a_cut_commit_twice_and_verify("commit-reset"));
    assert_eq!(
        unreconciled, 2,
        "both accounts of the doubled transfer are found"
    );
}

/// Applies one transfer whose commit was cut (a key the service logged as
/// of unknown outcome) a second time in the drill's ledger, behind the same
/// row, and runs the verifier again on the drill's history: returns the
/// accounts that no longer reconcile.
async fn apply_a_cut_commit_twice_and_verify(name: &str) -> u64 {
    use std::collections::BTreeMap;

    use chaos::load::Operation;
    use tokio_postgres::NoTls;

    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/drill-tests")
        .join(name);
    let history: Vec<Operation> = std::fs::read_to_string(root.join("history.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let mut cut_keys = Vec::new();
    for entry in std::fs::read_dir(root.join("run/logs")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default();
        for line in text
            .lines()
            .filter(|l| l.contains("commit outcome unknown; resolving"))
        {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            cut_keys.push(value["fields"]["key"].as_str().unwrap().to_owned());
        }
    }
    // A key of this run, acknowledged to its client.
    let operation = history
        .iter()
        .filter(|o| o.outcome == chaos::load::Outcome::Ok)
        .find(|o| o.key.as_ref().is_some_and(|k| cut_keys.contains(k)))
        .expect("an acknowledged write whose commit was cut");
    let key = operation.key.clone().unwrap();
    let transfer = operation.transfer.unwrap();
    // The drill's ledger: the database on the test server that holds the key.
    let server = std::env::var("TEST_DATABASE_URL").expect("TEST_DATABASE_URL");
    let (admin, connection) = tokio_postgres::connect(&server, NoTls).await.unwrap();
    tokio::spawn(connection);
    let mut ledger_url = None;
    for row in admin
        .query(
            "SELECT datname FROM pg_database WHERE datname LIKE 'ledger_%'",
            &[],
        )
        .await
        .unwrap()
    {
        let url = chaos::deployment::replace_database(&server, row.get::<_, &str>(0));
        let (client, connection) = tokio_postgres::connect(&url, NoTls).await.unwrap();
        tokio::spawn(connection);
        let found = client
            .query_opt(
                "SELECT 1 FROM transfers WHERE idempotency_key = $1",
                &[&key],
            )
            .await
            .ok()
            .flatten();
        if found.is_some() {
            client
                .batch_execute(&format!(
                    "UPDATE accounts SET balance = balance - {amount} WHERE id = '{from}'; \
                     UPDATE accounts SET balance = balance + {amount} WHERE id = '{to}';",
                    amount = transfer.amount,
                    from = transfer.from,
                    to = transfer.to
                ))
                .await
                .unwrap();
            ledger_url = Some(url);
            break;
        }
    }
    let ledger_url = ledger_url.expect("the drill's ledger on the test server");
    let mut opening = BTreeMap::new();
    for operation in &history {
        if let Some(t) = operation.transfer {
            opening.insert(t.from, 1_000_000);
            opening.insert(t.to, 1_000_000);
        }
    }
    let mut totals = chaos::model::Totals::default();
    chaos::verify::check_ledger(&ledger_url, &history, &opening, &mut totals)
        .await
        .unwrap();
    println!("{name} with {key} applied twice: {totals:?}");
    totals.accounts_unreconciled
}

/// A controller replica cut off from the database stops answering DNS
/// from its stale view within the bound and comes back by itself; no
/// region is drained and clients are served.
#[test]
fn a_controller_cut_off_from_the_database_stops_answering_and_drains_nothing() {
    let report = run_drill("controller-database-cut");
    print_figures("controller-database-cut", &report);
    assert!(report.events.iter().all(|e| e.kind != "drain_flag"));
    let cuts = report
        .checks
        .iter()
        .filter(|c| c.name.contains("controller cut off from the database"))
        .count();
    assert_eq!(cuts, 3, "one check per cut replica: {:#?}", report.checks);
}

/// Broken on purpose: replicas that keep answering from a view of any
/// age (max_view_age_ms of 10 minutes) answer DNS through the whole cut.
#[test]
#[ignore = "fail-on-purpose version: a whole drill more"]
fn a_controller_cut_fails_when_replicas_answer_from_a_stale_view() {
    let report = run_broken("controller-database-cut", "stale-view", |text| {
        text.replace(
            "\nload:\n",
            "\ncontroller: { decision: { max_view_age_ms: 600000 } }\nload:\n",
        )
    });
    assert_eq!(report.verdict, Verdict::Failed);
    assert!(failed_check(&report, "controller cut off from the database").is_some());
}

/// With the Route53 API throttling while a region dies, the drain flag
/// still takes the region out, and the records converge once it ends:
/// removed, then restored at failback.
#[test]
fn route53_throttling_delays_the_records_but_not_the_drain() {
    let report = run_drill("route53-throttling");
    print_figures("route53-throttling", &report);
    assert!(report.phases.drain_s.is_some());
    assert!(report.phases.failback_s.is_some());
}

/// Broken on purpose: a controller that never fails back (a hold-down of
/// ten minutes) leaves the region's record out and the region drained.
#[test]
#[ignore = "fail-on-purpose version: a whole drill more"]
fn route53_throttling_fails_when_the_controller_never_fails_back() {
    let report = run_broken("route53-throttling", "no-failback", |text| {
        text.replace(
            "\nload:\n",
            "\ncontroller: { decision: { hold_down_base_ms: 600000 } }\nload:\n",
        )
    });
    assert_eq!(report.verdict, Verdict::Failed);
    assert!(failed_check(&report, "Route53 record of eu-west-1").is_some());
}

/// Broken on purpose: a controller that never fails back (a hold-down of
/// ten minutes) leaves the killed region out of DNS to the end.
#[test]
#[ignore = "fail-on-purpose version: a whole drill more"]
fn kill_and_return_fails_when_the_controller_never_fails_back() {
    let report = run_broken("kill-and-return", "no-failback", |text| {
        text.replace(
            "\nload:\n",
            "\ncontroller: { decision: { hold_down_base_ms: 600000 } }\nload:\n",
        )
    });
    assert_eq!(report.verdict, Verdict::Failed);
    assert!(failed_check(&report, "eu-west-1 back after its last fault").is_some());
}

/// Broken on purpose: the game day (shortened as CI runs it) with a
/// controller that never fails back leaves eu-west-1 out of DNS to the
/// end, and the game day fails on it.
#[test]
#[ignore = "fail-on-purpose version: a whole drill more"]
fn the_game_day_fails_when_the_controller_never_fails_back() {
    let report = run_broken("game-day", "short-no-failback", |text| {
        super::shorten_game_day(text).replace(
            "\nload:\n",
            "\ncontroller: { decision: { hold_down_base_ms: 600000 } }\nload:\n",
        )
    });
    assert_eq!(report.verdict, Verdict::Failed);
    assert!(failed_check(&report, "eu-west-1 back after its last fault").is_some());
}

/// Broken on purpose: a probe timeout under the fault's 800 ms (500 ms)
/// makes every vantage point vote the slow region down, and it is drained.
#[test]
#[ignore = "fail-on-purpose version: a whole drill more"]
fn a_slow_region_fails_when_the_probe_timeout_is_shorter_than_its_delay() {
    let report = run_broken("slow-region", "short-timeout", |text| {
        text.replace(
            "\nload:\n",
            "\ncontroller: { probe: { timeout_ms: 500 } }\nload:\n",
        )
    });
    assert_eq!(report.verdict, Verdict::Failed);
    assert!(failed_check(&report, "eu-west-1 never drained").is_some());
}

/// Broken on purpose: a controller that needs 10 failed probes 3 s apart
/// (30 s) to vote a region down never drains the region cut from its
/// database for 20 s.
#[test]
#[ignore = "fail-on-purpose version: a whole drill more"]
fn a_region_database_cut_fails_when_the_controller_never_votes_it_down() {
    let report = run_broken("region-database-cut", "never-down", |text| {
        text.replace(
            "\nload:\n",
            "\ncontroller: { probe: { failures_to_down: 10, interval_ms: 3000 } }\nload:\n",
        )
    });
    assert_eq!(report.verdict, Verdict::Failed);
    assert!(failed_check(&report, "eu-west-1 drained").is_some());
}
