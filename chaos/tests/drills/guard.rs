//! The guard rails before a drill starts, on one real `chaos up` driven
//! only through its `target.yaml`: a drill whose fault hits a region
//! outside the target's `blast_radius.may_touch` is refused (exit 6)
//! before anything is applied, and `chaos drill --plan` prints the
//! schedule and changes nothing; after each, preflight passes (every
//! region healthy and in DNS) and no journal was written. `--plan` and
//! `chaos check` of the refused drill exit 6 too.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use chaos::target::guard::BLAST_RADIUS_EXIT_CODE;

use super::up::ChaosUp;
use super::{bin_dir, lock_deployment};

/// A short region-kill drill on `region`, matching `chaos up`'s topology.
fn kill_drill(directory: &Path, region: &str) -> PathBuf {
    let text = format!(
        "title: Guard test
load: {{ rate_per_client_region: 5, write_ratio: 0.5, duration_s: 20 }}
hypothesis: {{ min_success_ratio: 0.9, max_p99_ms: 4000 }}
method:
  - {{ fault: region-kill, target: {region}, start_s: 0, duration_s: 5 }}
"
    );
    let path = directory.join(format!("kill-{region}.yaml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn chaos(args: &[&str], paths: &[&Path]) -> Output {
    Command::new(bin_dir().join("chaos"))
        .args(args)
        .args(paths)
        .output()
        .unwrap()
}

/// `chaos check --target`: 0 when every region is healthy and in DNS
/// (and the rest of preflight passes).
fn assert_preflight_passes(target: &Path) {
    let output = chaos(&["check", "--target"], &[target]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

#[test]
fn a_drill_outside_the_blast_radius_is_refused_and_a_plan_changes_nothing() {
    let _guard = lock_deployment();
    let run_dir = std::env::temp_dir().join(format!("chaos-guard-test-{}", std::process::id()));
    let database_url = std::env::var("TEST_DATABASE_URL").ok();
    let up = ChaosUp::start(&run_dir, database_url.as_deref());
    let target = run_dir.join("target.yaml");
    let text = std::fs::read_to_string(&target).unwrap();
    let may_touch = text
        .lines()
        .find(|line| line.trim_start().starts_with("may_touch:"))
        .expect("chaos up writes blast_radius.may_touch");
    let narrow = run_dir.join("narrow.yaml");
    std::fs::write(
        &narrow,
        text.replace(may_touch, "  may_touch: [\"eu-west-1\"]"),
    )
    .unwrap();
    assert_preflight_passes(&target);

    // Outside may_touch: refused before preflight and before any fault.
    let report_dir = run_dir.join("refused");
    let outside = kill_drill(&run_dir, "ap-southeast-1");
    let output = chaos(
        &["drill"],
        &[
            &outside,
            Path::new("--report-dir"),
            &report_dir,
            Path::new("--target"),
            &narrow,
        ],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(BLAST_RADIUS_EXIT_CODE),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "method[0] (region-kill on ap-southeast-1) breaks blast_radius.may_touch: \
             ap-southeast-1 is not in may_touch [eu-west-1]"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("the blast-radius guard refuses the drill; it does not start"),
        "{stderr}"
    );
    assert!(
        !report_dir.join("journal.jsonl").exists(),
        "a refused drill wrote a journal"
    );
    assert_preflight_passes(&target);

    // The plan of a drill the guard allows: the schedule, the verdicts,
    // exit 0, and nothing done.
    let report_dir = run_dir.join("planned");
    let inside = kill_drill(&run_dir, "eu-west-1");
    let output = chaos(
        &["drill", "--plan"],
        &[
            &inside,
            Path::new("--report-dir"),
            &report_dir,
            Path::new("--target"),
            &target,
        ],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    for wanted in [
        "plan of drill \"Guard test\" on target ",
        "t=0.0 s    method[0] region-kill on eu-west-1: journal, then apply region-kill \
         target=eu-west-1 on=true; undone at t=5.0 s by region-kill target=eu-west-1 on=false \
         (else restore-all)",
        "t=5.0 s    method[0] region-kill on eu-west-1 ends",
        "t=20.0 s   load ends",
        "blast radius: allowed (fewest regions serving: 2 of 3 at t=0.0 s; at least 2 must serve)",
        "preflight passed",
    ] {
        assert!(stdout.contains(wanted), "{wanted:?} not in:\n{stdout}");
    }
    assert!(
        !report_dir.exists(),
        "--plan created {}",
        report_dir.display()
    );
    assert_preflight_passes(&target);

    // The plan of the refused drill exits as the drill would.
    let output = chaos(
        &["drill", "--plan"],
        &[&outside, Path::new("--target"), &narrow],
    );
    assert_eq!(output.status.code(), Some(BLAST_RADIUS_EXIT_CODE));
    assert!(String::from_utf8_lossy(&output.stdout).contains("blast radius: REFUSED"));
    // And so does `chaos check` of the drill against the target.
    let output = chaos(&["check"], &[&outside, Path::new("--target"), &narrow]);
    assert_eq!(output.status.code(), Some(BLAST_RADIUS_EXIT_CODE));
    drop(up);
    let _ = std::fs::remove_dir_all(&run_dir);
}
