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
    let report_dir = root.join("target/drill-tests").join(format!("{name}-{variant}"));
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
        println!("  {} {}: {}", if check.passed { "ok  " } else { "FAIL" }, check.name, check.observed);
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
            "  dns_ttl_s: 1\n",
            "  dns_ttl_s: 1\n  overrides:\n    database: { synchronous_commit: \"off\", wal_writer_delay: \"10s\" }\n",
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
    assert!(report.checks.iter().any(|c| c.name.starts_with("commits whose answer was cut") && c.passed));
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
            "  dns_ttl_s: 1\n",
            "  dns_ttl_s: 1\n  overrides:\n    controller: { decision.max_view_age_ms: \"600000\" }\n",
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
            "  route53: true\n",
            "  route53: true\n  overrides:\n    controller: { decision.hold_down_base_ms: \"600000\" }\n",
        )
    });
    assert_eq!(report.verdict, Verdict::Failed);
    assert!(failed_check(&report, "Route53 record of eu-west-1").is_some());
}
