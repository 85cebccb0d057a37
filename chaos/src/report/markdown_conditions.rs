//! The Markdown of the conditions a drill ran under and what its request
//! count can vouch for: the availability bound of the key figures, the
//! controller settings beside production's and the round trips.

use std::fmt::Write;

use super::confidence::AvailabilityBound;
use super::format::{count, escape_markdown_cell as cell, millis, percent};
use super::settings::{controller_settings, latency_matrix};
use crate::model::DrillReport;

/// The availability the drill's request count can vouch for.
pub(crate) fn availability_row(report: &DrillReport) -> (&'static str, String, String) {
    let name = "Availability, 95% lower bound";
    let Some(bound) = AvailabilityBound::new(&report.totals, report.error_budget.slo) else {
        return (name, "n/a".into(), "no requests were recorded".into());
    };
    let claim = if bound.supports_slo {
        format!("enough to back a {} claim", percent(bound.slo))
    } else {
        format!(
            "not enough to back a {} claim: that needs {} requests without a failure",
            percent(bound.slo),
            count(bound.requests_for_slo)
        )
    };
    (
        name,
        format!(">= {}", percent(bound.lower)),
        format!(
            "{} failed or unknown of {} requests (one-sided Clopper–Pearson); {claim}",
            count(bound.failures),
            count(bound.requests)
        ),
    )
}

/// The controller settings beside production's, and the round trips.
pub(crate) fn conditions(out: &mut String, report: &DrillReport) {
    out.push_str("## Conditions\n\n");
    let settings = controller_settings(&report.configuration);
    if settings.is_empty() {
        out.push_str("The report recorded no controller settings.\n\n");
    } else {
        out.push_str(
            "| Controller setting | This drill | Production (`k8s/`) | |\n|---|---|---|---|\n",
        );
        for row in &settings {
            let verdict = if row.overridden {
                "**overridden**"
            } else {
                "as production"
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {verdict} |",
                row.name,
                cell(&row.drill),
                row.production
            );
        }
        out.push('\n');
    }
    let Some(matrix) = latency_matrix(&report.configuration, &report.regions) else {
        out.push_str("No round trips were measured and no WAN was configured.\n\n");
        return;
    };
    out.push_str("Round trips, measured by the controllers' probes (configured in brackets), from each vantage point to each region:\n\n| From \\ to |");
    for region in &matrix.regions {
        let _ = write!(out, " {} |", cell(region));
    }
    out.push_str("\n|---|");
    out.push_str(&"---:|".repeat(matrix.regions.len()));
    out.push('\n');
    for row in &matrix.rows {
        let _ = write!(out, "| {} |", cell(&row.vantage));
        for entry in &row.cells {
            let measured = entry
                .measured_ms
                .map(|ms| millis(Some(ms)))
                .unwrap_or_else(|| "not measured".into());
            let configured = entry
                .configured_ms
                .map(|ms| format!(" ({})", millis(Some(ms))))
                .unwrap_or_default();
            let _ = write!(out, " {measured}{configured} |");
        }
        out.push('\n');
    }
    out.push('\n');
    if let Some(seconds) = matrix.lease_transfer_s {
        let _ = writeln!(out, "{}\n", lease_transfer_note(seconds));
    }
}

/// What a region's death cost the database in the drill, for both
/// renderings.
pub(crate) fn lease_transfer_note(seconds: f64) -> String {
    if seconds > 0.0 {
        format!(
            "A region's death held writes to the rows homed in it for {seconds} s, from every \
             region (the lease transfer, topology.wan.lease_transfer_s)."
        )
    } else {
        "A region's death moved its rows' leases at once (topology.wan.lease_transfer_s: 0)."
            .to_owned()
    }
}
