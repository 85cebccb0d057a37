//! The plan's text: every step in time order, each undo with its time,
//! the rollbacks, and the guard's and preflight's verdicts.

use super::*;
use crate::target::preflight::{Outcome, PreflightCheck};
use crate::target::BlastRadius;

const DRILL: &str = r#"
title: Kill and return
load: { rate_per_client_region: 10, write_ratio: 0.5, duration_s: 60 }
hypothesis: { min_success_ratio: 0.99, max_p99_ms: 2000 }
method:
  - { fault: region-kill, target: eu-west-1, start_s: 20, duration_s: 15 }
  - { fault: latency, target: us-east-1, start_s: 5, delay_ms: 80 }
  - { fault: leader-kill, start_s: 40, duration_s: 5 }
rollbacks:
  - action: clear-drain-flags
"#;

fn lines(text: &str) -> Vec<&str> {
    text.lines().map(str::trim_end).collect()
}

#[test]
fn a_local_plan_lists_every_step_in_time_order_with_its_undo() {
    let drill = Drill::parse(DRILL).unwrap();
    let text = render(&drill, PlanTarget::Local);
    assert_eq!(
        lines(&text),
        vec![
            "plan of drill \"Kill and return\" on a local deployment (3 regions: us-east-1, \
             eu-west-1, ap-southeast-1); nothing is started or changed",
            "  before     seed 20 accounts; register the rollbacks",
            "  t=0.0 s    load starts: 10 req/s from each of us-east-1, eu-west-1, \
             ap-southeast-1 (50% writes), 60 s",
            "  t=5.0 s    method[1] latency on us-east-1: journal, then apply latency \
             target=us-east-1 delay_ms=80 on=true; no duration_s: undone by the rollbacks after \
             the load, latency target=us-east-1 delay_ms=80 on=false (else heal-network)",
            "  t=20.0 s   method[0] region-kill on eu-west-1: journal, then apply region-kill \
             target=eu-west-1 on=true; undone at t=35.0 s by region-kill target=eu-west-1 \
             on=false (else restore-all)",
            "  t=35.0 s   method[0] region-kill on eu-west-1 ends: region-kill target=eu-west-1 \
             on=false",
            "  t=40.0 s   method[2] leader-kill on the leader's region: journal, then apply \
             controller-kill target=leader on=true; undone at t=45.0 s by controller-kill \
             target=leader on=false (else restore-all)",
            "  t=45.0 s   method[2] leader-kill on the leader's region ends: controller-kill \
             target=leader on=false",
            "  t=60.0 s   load ends",
            "  after      rollbacks (also on abort and on a stop): undo every journaled fault \
             not undone, newest first, then restore-processes, heal-network, \
             clear-drain-flags; then wait until every region serves and is in DNS",
            "  abort      when more than 100.0% of the 30-day error budget is burned",
            "blast radius: none (no target)",
        ]
    );
}

#[test]
fn a_target_plan_gives_the_guard_and_preflight_verdicts() {
    let drill = Drill::parse(DRILL).unwrap();
    let regions: Vec<String> = drill.topology.regions.clone();
    let blast = BlastRadius {
        may_touch: vec!["eu-west-1".into()],
        min_serving_regions: 2,
    };
    let verdict = guard::check(&drill, &regions, &blast);
    let preflight = Preflight {
        target: "staging".into(),
        checked_at: chrono::Utc::now(),
        passed: true,
        checks: vec![PreflightCheck {
            name: "a leader holds the lease".into(),
            outcome: Outcome::Pass,
            expected: "exactly one controller holds it".into(),
            observed: "held by c-us-east-1 (epoch 3)".into(),
        }],
        failed_earlier: Vec::new(),
    };
    let text = render(
        &drill,
        PlanTarget::Target {
            name: "staging",
            guard: &verdict,
            preflight: &preflight,
        },
    );
    assert!(
        text.starts_with(
            "plan of drill \"Kill and return\" on target staging; nothing is changed\n"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "blast radius: REFUSED (fewest regions serving: 1 of 3 at t=20.0 s; at least 2 must serve)\n  \
             method[1] (latency on us-east-1) breaks blast_radius.may_touch: us-east-1 is not in may_touch [eu-west-1]\n"
        ),
        "{text}"
    );
    assert!(text.contains("[pass] a leader holds the lease"), "{text}");
    assert!(text.ends_with("preflight passed\n"), "{text}");
}
