//! Re-renders a drill's `report.json` as `report.md` and `report.html`, to
//! look at the report after changing the renderer without running a drill.
//!
//! `cargo run -p chaos --example report_preview -- target/drill/report.json /tmp/report-preview`

use std::path::PathBuf;

use anyhow::Context;
use chaos::model::DrillReport;

fn main() -> anyhow::Result<()> {
    let mut arguments = std::env::args_os().skip(1);
    let input = PathBuf::from(
        arguments
            .next()
            .context("usage: report_preview REPORT_JSON [OUTPUT_DIR]")?,
    );
    let output = arguments
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/report-preview"));
    let text =
        std::fs::read_to_string(&input).with_context(|| format!("reading {}", input.display()))?;
    let report: DrillReport =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", input.display()))?;
    let paths = chaos::report::write_all(&report, &output)?;
    println!("{}", paths.html.display());
    Ok(())
}
