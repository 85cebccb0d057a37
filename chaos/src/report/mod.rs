//! The drill report: `report.json`, `report.md` and one self-contained
//! `report.html` (inline CSS, the vendored uPlot and the chart script
//! inline, the chart data as inline JSON; nothing loaded from anywhere).
//!
//! # Layout
//! - [`summary`]: the figures both renderers derive from a
//!   [`DrillReport`] (failover time, failure window, per-second ratios),
//!   so that Markdown and HTML never disagree.
//! - [`markdown`], [`markdown_timeline`], [`markdown_conditions`],
//!   [`operations`]: GitHub-flavoured tables.
//! - [`html`]: the page, rendered with minijinja from `chaos/templates/`
//!   (`report.html`, `details.html`, `report.css`), embedded at compile
//!   time.
//! - [`charts`]: the data of the timeline charts (series, fault windows,
//!   events, failover and failback milestones), which
//!   `templates/charts.js` draws with uPlot (`chaos/vendor/uplot/`).
//! - [`objectives`]: the recovery objectives (RTO, time to failback,
//!   RPO) beside what was measured, for all three renderings and the
//!   terminal.
//! - [`preflight`]: the preflight of a drill on a target (each check,
//!   its status, detail and time), for report.md and report.html.
//! - [`settings`]: the controller settings beside production's and the
//!   measured round trips beside the configured WAN.
//! - [`confidence`]: the availability the drill's request count can vouch
//!   for (one-sided Clopper-Pearson bound).
//! - [`format`]: escaping, number formatting and the region palette.
//!
//! Invariant: the HTML references nothing outside itself (no URL, no
//! fonts, no images, no `src` or `href`), so it can be mailed or attached
//! to a ticket and still read the same in a browser. Its one script is
//! inline; without JavaScript every figure is still in its tables.

mod charts;
pub(crate) mod confidence;
mod format;
mod hooks;
mod html;
mod markdown;
mod markdown_conditions;
mod markdown_timeline;
mod objectives;
mod operations;
mod preflight;
mod settings;
mod summary;

#[cfg(test)]
mod browser;
#[cfg(test)]
mod fixture;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_conditions;
#[cfg(test)]
mod tests_hooks;
#[cfg(test)]
mod tests_objectives;
#[cfg(test)]
mod tests_preflight;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;

use crate::model::DrillReport;

pub use html::render_html;
pub use markdown::render_markdown;
pub use objectives::summary_line as objectives_summary_line;

/// Where [`write_all`] put the three files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportPaths {
    pub json: PathBuf,
    pub markdown: PathBuf,
    pub html: PathBuf,
}

/// Writes report.json, report.md and report.html into `dir` (created if
/// missing).
///
/// Each file is written to a temporary file in the same directory, flushed
/// to disk, then renamed over the final name, so a reader (or a crash) never
/// sees a half-written report.
pub fn write_all(report: &DrillReport, dir: &Path) -> anyhow::Result<ReportPaths> {
    fs::create_dir_all(dir)
        .with_context(|| format!("creating report directory {}", dir.display()))?;
    let json = serde_json::to_string_pretty(report).context("serialising report.json")?;
    let paths = ReportPaths {
        json: dir.join("report.json"),
        markdown: dir.join("report.md"),
        html: dir.join("report.html"),
    };
    write_atomically(&paths.json, json.as_bytes())?;
    write_atomically(&paths.markdown, render_markdown(report).as_bytes())?;
    write_atomically(&paths.html, render_html(report).as_bytes())?;
    Ok(paths)
}

/// Writes `contents` to `path` through a temporary sibling and a rename.
pub fn write_atomically(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let file_name = path
        .file_name()
        .and_then(|name| name.to_str())
        .context("report path has no file name")?;
    // The pid and a clock reading keep two concurrent writers (two drills
    // pointed at one directory) from sharing a temporary file.
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or(0);
    let temp_path = dir.join(format!(".{file_name}.{}.{nanos}.tmp", std::process::id()));
    let result = write_and_rename(&temp_path, path, contents);
    if result.is_err() {
        // Best effort: the error that matters is the one being returned.
        let _ = fs::remove_file(&temp_path);
    }
    result
}

fn write_and_rename(temp_path: &Path, path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let mut file =
        fs::File::create(temp_path).with_context(|| format!("creating {}", temp_path.display()))?;
    file.write_all(contents)
        .with_context(|| format!("writing {}", temp_path.display()))?;
    file.sync_all()
        .with_context(|| format!("syncing {}", temp_path.display()))?;
    drop(file);
    fs::rename(temp_path, path)
        .with_context(|| format!("renaming {} to {}", temp_path.display(), path.display()))?;
    Ok(())
}
