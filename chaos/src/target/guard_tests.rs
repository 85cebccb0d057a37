//! The guard's arithmetic: each rule refused with its message, overlaps,
//! open-ended faults, the leader and deployment-wide faults.

use super::*;

const REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-southeast-1"];

fn drill(method: &str) -> Drill {
    let text = format!(
        r#"
title: guard
load: {{ rate_per_client_region: 10, write_ratio: 0.5, duration_s: 60 }}
hypothesis: {{ min_success_ratio: 0.99, max_p99_ms: 2000 }}
method:
{method}
"#
    );
    Drill::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn guard(method: &str, may_touch: &[&str], min_serving_regions: usize) -> Verdict {
    let regions: Vec<String> = REGIONS.iter().map(|r| r.to_string()).collect();
    let blast = BlastRadius {
        may_touch: may_touch.iter().map(|r| r.to_string()).collect(),
        min_serving_regions,
    };
    check(&drill(method), &regions, &blast)
}

fn messages(verdict: &Verdict) -> Vec<String> {
    verdict.violations.iter().map(|v| v.to_string()).collect()
}

#[test]
fn a_drill_inside_the_blast_radius_is_allowed() {
    let verdict = guard(
        "  - { fault: region-kill, target: eu-west-1, start_s: 10, duration_s: 20 }\n  \
         - { fault: latency, target: eu-west-1, start_s: 40, delay_ms: 100 }",
        &["eu-west-1"],
        2,
    );
    assert!(verdict.allowed(), "{:?}", messages(&verdict));
    assert_eq!(verdict.fewest_serving, Some((2, 10.0)));
    assert!(verdict.render().starts_with("blast radius: allowed"));
}

#[test]
fn a_region_outside_may_touch_is_refused_naming_fault_region_and_rule() {
    let verdict = guard(
        "  - { fault: region-kill, target: eu-west-1, start_s: 10, duration_s: 5 }\n  \
         - { fault: region-blackhole, target: us-east-1, start_s: 20, duration_s: 5 }",
        &["eu-west-1"],
        1,
    );
    assert_eq!(
        messages(&verdict),
        vec![
            "method[1] (region-blackhole on us-east-1) breaks blast_radius.may_touch: \
             us-east-1 is not in may_touch [eu-west-1]"
        ]
    );
    assert!(verdict.render().contains("REFUSED"));
}

#[test]
fn deployment_wide_faults_need_every_region_in_may_touch() {
    let method = "  - { fault: db-crash, start_s: 10, duration_s: 5 }";
    let verdict = guard(method, &["eu-west-1", "us-east-1"], 0);
    assert_eq!(
        messages(&verdict),
        vec![
            "method[0] (db-crash on every region) breaks blast_radius.may_touch: it touches \
             every region, and [ap-southeast-1] may not be touched"
        ]
    );
    // Allowed everywhere, it still leaves no region serving.
    let verdict = guard(method, &REGIONS, 1);
    assert_eq!(verdict.violations.len(), 1);
    assert_eq!(verdict.violations[0].rule, Rule::MinServingRegions);
    assert!(guard(method, &REGIONS, 0).allowed());
}

#[test]
fn leader_faults_need_every_region_in_may_touch_and_count_as_one_region() {
    for method in [
        "  - { fault: leader-kill, start_s: 10, duration_s: 5 }",
        "  - { fault: region-kill, target: leader, start_s: 10, duration_s: 5 }",
    ] {
        let verdict = guard(method, &["eu-west-1", "us-east-1"], 1);
        assert_eq!(verdict.violations.len(), 1, "{method}");
        let violation = &verdict.violations[0];
        assert_eq!(
            (violation.rule, &violation.reach),
            (Rule::MayTouch, &Reach::Leader)
        );
        assert!(
            violation
                .to_string()
                .contains("on the leader's region) breaks blast_radius.may_touch: the lease holder may be in any region, and [ap-southeast-1] may not be touched"),
            "{violation}"
        );
        let verdict = guard(method, &REGIONS, 2);
        assert!(verdict.allowed(), "{:?}", messages(&verdict));
        assert_eq!(verdict.fewest_serving, Some((2, 10.0)));
    }
    // With a named region down, the leader is taken to be another one.
    let verdict = guard(
        "  - { fault: region-kill, target: eu-west-1, start_s: 10, duration_s: 20 }\n  \
         - { fault: leader-kill, start_s: 15, duration_s: 5 }",
        &REGIONS,
        2,
    );
    assert_eq!(verdict.fewest_serving, Some((1, 15.0)));
    assert_eq!(verdict.violations[0].fault_index, 1);
}

#[test]
fn overlapping_faults_count_together_and_touching_ones_overlap() {
    let overlapping =
        "  - { fault: region-kill, target: eu-west-1, start_s: 10, duration_s: 20 }\n  \
                       - { fault: region-kill, target: us-east-1, start_s: 25, duration_s: 10 }";
    let verdict = guard(overlapping, &REGIONS, 2);
    assert_eq!(
        messages(&verdict),
        vec![
            "method[1] (region-kill on us-east-1) breaks blast_radius.min_serving_regions: at \
             t=25.0 s with method[0] region-kill on eu-west-1 still applied, 1 of 3 regions \
             would serve, fewer than 2"
        ]
    );
    // One ends at 30 s, the other starts at 30 s: the first region is not
    // back yet, so they overlap.
    let touching = overlapping.replace("start_s: 25", "start_s: 30");
    assert_eq!(guard(&touching, &REGIONS, 2).violations.len(), 1);
    let apart = overlapping.replace("start_s: 25", "start_s: 31");
    let verdict = guard(&apart, &REGIONS, 2);
    assert!(verdict.allowed(), "{:?}", messages(&verdict));
    // The same region twice is one region down.
    let same = overlapping.replace("target: us-east-1", "target: eu-west-1");
    assert!(guard(&same, &REGIONS, 2).allowed());
}

#[test]
fn a_fault_without_duration_lasts_to_the_end_of_the_load() {
    let method = "  - { fault: region-kill, target: eu-west-1, start_s: 10 }\n  \
                  - { fault: latency, target: us-east-1, start_s: 55, duration_s: 1, delay_ms: 50 }";
    let verdict = guard(method, &REGIONS, 2);
    assert_eq!(verdict.violations.len(), 1);
    assert_eq!(verdict.violations[0].fault_index, 1);
    assert_eq!(verdict.fewest_serving, Some((1, 55.0)));
    // Ended at 50 s, it no longer counts at 55 s.
    let ended = method.replace("start_s: 10 }", "start_s: 10, duration_s: 40 }");
    assert!(guard(&ended, &REGIONS, 2).allowed());
}

#[test]
fn every_violation_is_listed() {
    let verdict = guard(
        "  - { fault: region-kill, target: us-east-1, start_s: 10 }\n  \
         - { fault: region-kill, target: ap-southeast-1, start_s: 20 }",
        &["eu-west-1"],
        2,
    );
    let rules: Vec<(usize, Rule)> = verdict
        .violations
        .iter()
        .map(|v| (v.fault_index, v.rule))
        .collect();
    assert_eq!(
        rules,
        vec![
            (0, Rule::MayTouch),
            (1, Rule::MayTouch),
            (1, Rule::MinServingRegions)
        ]
    );
}

#[test]
fn a_hook_that_names_no_region_may_touch_every_region() {
    let unlabelled =
        "  - { fault: command, start_s: 10, duration_s: 5, start: [true], stop: [true] }";
    let verdict = guard(unlabelled, &["eu-west-1"], 0);
    assert_eq!(
        messages(&verdict),
        vec![
            "method[0] (command on every region) breaks blast_radius.may_touch: \
             it touches every region, and [us-east-1, ap-southeast-1] may not be touched"
        ]
    );
    let labelled = "  - { fault: command, target: eu-west-1, start_s: 10, duration_s: 5, start: [true], stop: [true] }";
    assert!(guard(labelled, &["eu-west-1"], 2).allowed());
}
