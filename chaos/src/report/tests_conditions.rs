//! Tests of what the report shows beyond the timeline: the way back on the
//! charts, the availability bound, the controller settings beside
//! production's and the round-trip matrix, in both renderings.

use super::fixture::region_kill_report;
use super::{render_html, render_markdown};
use crate::model::Totals;

/// The chart data embedded in the page, as JSON.
fn chart_data(html: &str) -> serde_json::Value {
    let start = html
        .find(r#"<script type="application/json" id="chart-data">"#)
        .expect("the page carries its chart data");
    let rest = &html[start..];
    let json = &rest[rest.find('>').unwrap() + 1..rest.find("</script>").unwrap()];
    serde_json::from_str(json).unwrap()
}

#[test]
fn the_charts_mark_the_way_back_beside_the_failover() {
    let report = region_kill_report();
    let html = render_html(&report);
    let data = chart_data(&html);
    let milestones: Vec<(String, f64, String)> = data["milestones"]
        .as_array()
        .unwrap()
        .iter()
        .map(|mark| {
            (
                mark["label"].as_str().unwrap().to_string(),
                mark["at_s"].as_f64().unwrap(),
                mark["direction"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected = [
        ("fault", 20.0, "failover"),
        ("out of DNS", 21.2, "failover"),
        ("fault ended", 45.0, "failback"),
        ("back in DNS", 48.4, "failback"),
        ("served again", 48.9, "failback"),
    ];
    assert_eq!(milestones.len(), expected.len(), "{milestones:?}");
    for ((label, at_s, direction), expected) in milestones.iter().zip(expected) {
        assert_eq!((label.as_str(), *at_s, direction.as_str()), expected);
    }
    // The legend names them, the way back in bold.
    assert!(html.contains(r#"<span class="milestone failback"><span class="swatch tag" style="background:#047857"></span>back in DNS</span>"#));

    // report.md's 5-second table marks them too.
    assert!(render_markdown(&report).contains(
        "region-kill us-east-1 ends at 45.0 s; back in DNS at 48.4 s; served again at 48.9 s;"
    ));

    // A region that never came back has no "back in DNS" to mark.
    let mut stuck = report.clone();
    stuck.faults[0].failback = None;
    let labels = chart_data(&render_html(&stuck))["milestones"].to_string();
    assert!(labels.contains("fault ended") && !labels.contains("back in DNS"));
}

#[test]
fn the_availability_bound_is_shown_with_what_a_claim_would_need() {
    let report = region_kill_report();
    // 36 failed or unknown of 9,000 requests.
    let html = render_html(&report);
    assert!(html.contains("<strong>≥ 99.47%</strong> with 95% confidence: 36 failed or unknown of 9\u{202f}000 requests"), "{html}");
    assert!(html.contains("Not enough to back a 99.99% claim</span>: that needs at least 29\u{202f}956 requests without a failure."));
    assert!(render_markdown(&report).contains(
        "| Availability, 95% lower bound | **>= 99.47%** | 36 failed or unknown of 9\u{202f}000 requests"
    ));

    let mut game_day = report.clone();
    game_day.totals = Totals {
        requests: 180_000,
        ok: 180_000,
        ..Totals::default()
    };
    let html = render_html(&game_day);
    assert!(html.contains("<strong>≥ 99.99%</strong>"));
    assert!(html.contains("Enough to back a 99.99% claim."));
}

#[test]
fn the_controller_settings_say_which_production_defaults_a_drill_overrode() {
    let report = region_kill_report();
    let html = render_html(&report);
    assert!(html.contains("This drill overrode the production settings of <code>k8s/</code></span> (probe interval (probe.interval_ms), probe timeout (probe.timeout_ms), DNS TTL (dns.ttl_seconds))"), "{html}");
    assert!(html.contains(
        r#"<tr class="changed"><td>DNS TTL (dns.ttl_seconds)</td><td>1 s</td><td>30 s</td><td>overridden</td></tr>"#
    ), "{html}");
    assert!(html.contains("<tr><td>good probes to turn a verdict up (probe.successes_to_up)</td><td>3</td><td>3</td><td>as production</td></tr>"), "{html}");
    let markdown = render_markdown(&report);
    assert!(
        markdown
            .contains("| probe interval (probe.interval_ms) | 500 ms | 1000 ms | **overridden** |"),
        "{markdown}"
    );

    let mut production = report.clone();
    production.configuration["controller"] =
        serde_json::json!(crate::controller_settings::ControllerSettings::production());
    let html = render_html(&production);
    assert!(html.contains("This drill ran with the production settings of <code>k8s/</code>."));
    assert!(!html.contains("overridden</td>"));
}

#[test]
fn the_measured_round_trips_stand_beside_the_configured_ones() {
    let report = region_kill_report();
    let html = render_html(&report);
    assert!(html.contains(r#"<table class="matrix"><thead><tr><th>From \ to</th><th class="num">us-east-1</th><th class="num">eu-west-1</th><th class="num">ap-southeast-1</th></tr>"#));
    assert!(html.contains(r#"<tr><td>eu-west-1</td><td class="num"><strong>74.6 ms</strong><br><span class="configured">configured 70.0 ms</span></td>"#), "{html}");
    let markdown = render_markdown(&report);
    assert!(
        markdown
            .contains("| ap-southeast-1 | 224 ms (220 ms) | 170 ms (165 ms) | 5.80 ms (1.00 ms) |"),
        "{markdown}"
    );

    // The lease transfer a region's death cost, under the matrix; a report
    // from before the model says nothing of it.
    let mut leases = report.clone();
    leases.configuration["topology"]["wan"]["lease_transfer_s"] = serde_json::json!(5.0);
    let note = "A region's death held writes to the rows homed in it for 5 s, from every region \
                (the lease transfer, topology.wan.lease_transfer_s).";
    assert!(render_markdown(&leases).contains(note));
    let html = render_html(&leases);
    assert!(
        html.contains(
            "held writes to the rows homed in it for 5 s, from every region (the lease \
                       transfer, topology.wan.lease_transfer_s).</p>"
        ),
        "{html}"
    );
    assert!(!render_markdown(&report).contains("lease transfer"));

    // On the loopback without measurements, there is nothing to tabulate.
    let mut loopback = report.clone();
    loopback.configuration["topology"]["wan"] = serde_json::Value::Null;
    loopback.configuration["measured_rtt_ms"] = serde_json::json!({});
    assert!(render_html(&loopback).contains("every region was on the loopback"));
}

#[test]
fn each_fault_counts_the_failed_and_unknown_operations_of_its_window() {
    let mut report = region_kill_report();
    let html = render_html(&report);
    assert!(html.contains(r##"<td><a href="#operations">1 failed, 1 unknown</a></td></tr>"##));
    assert!(render_markdown(&report).contains(
        "| region-kill | us-east-1 | 20.00 | 45.00 | changed after 1.20 s (at 21.20 s) | back in DNS after 3.40 s, served again after 3.90 s; after it left DNS it served pooled clients for 0.40 s (3 requests), fresh clients for 0.20 s (2 requests) | 1 failed, 1 unknown |"
    ));
    // An operation after the window's end is not the window's.
    for operation in &mut report.failed_operations {
        operation.intended_s += 30.0;
    }
    assert!(render_markdown(&report).contains("fresh clients for 0.20 s (2 requests) | none |"));
}
