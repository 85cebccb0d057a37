//! Markdown escaping, number formatting and the one colour per region that every
//! chart and legend shares.

use crate::model::DrillReport;

/// Colours for regions, in the order of `regions` then any client region
/// that is not also a serving region. Red and grey are left out on purpose:
/// they mean "failed" and "unknown" in every chart.
const REGION_COLOURS: [&str; 8] = [
    "#2563eb", // blue
    "#0d9488", // teal
    "#d97706", // amber
    "#9333ea", // purple
    "#db2777", // pink
    "#65a30d", // lime
    "#0891b2", // cyan
    "#7c2d12", // brown
];

/// Requests that failed even after the retry.
pub(crate) const FAILED_COLOUR: &str = "#dc2626";
/// Requests whose outcome the client could not know.
pub(crate) const UNKNOWN_COLOUR: &str = "#6b7280";

/// Maps region names to colours, stable for one report.
pub(crate) struct Palette {
    names: Vec<String>,
}

impl Palette {
    pub(crate) fn new(report: &DrillReport) -> Self {
        let mut names: Vec<String> = Vec::new();
        let served = report
            .timeline
            .iter()
            .flat_map(|bucket| bucket.served_by.keys());
        for name in report
            .regions
            .iter()
            .chain(report.client_regions.iter())
            .chain(served)
        {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        Self { names }
    }

    /// The colour of `region`; an unknown name gets a neutral slate.
    pub(crate) fn colour(&self, region: &str) -> &'static str {
        self.names
            .iter()
            .position(|name| name == region)
            .map(|index| REGION_COLOURS[index % REGION_COLOURS.len()])
            .unwrap_or("#475569")
    }

    /// Every serving region (the deployment's, then any other that served).
    pub(crate) fn serving_regions(&self, report: &DrillReport) -> Vec<String> {
        let mut regions = report.regions.clone();
        for bucket in &report.timeline {
            for name in bucket.served_by.keys() {
                if !regions.contains(name) {
                    regions.push(name.clone());
                }
            }
        }
        regions
    }
}

/// Escapes text for a Markdown table cell: pipes would end the cell and
/// newlines the row.
pub(crate) fn escape_markdown_cell(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
}

/// Seconds with two decimals, e.g. "1.20 s"; "n/a" when absent.
pub(crate) fn seconds(value: Option<f64>) -> String {
    match value {
        Some(value) if value.is_finite() => format!("{value:.2} s"),
        _ => "n/a".to_string(),
    }
}

/// Seconds with a sign, e.g. "+0.60 s" or "−0.08 s"; empty when absent.
pub(crate) fn signed_seconds(value: Option<f64>) -> String {
    match value {
        Some(value) if value.is_finite() && value < 0.0 => format!("\u{2212}{:.2} s", -value),
        Some(value) if value.is_finite() => format!("+{value:.2} s"),
        _ => String::new(),
    }
}

/// A ratio (0..=1) as a percentage with as many decimals as it takes to
/// tell 99.99% from 100% without printing noise.
pub(crate) fn percent(ratio: f64) -> String {
    if !ratio.is_finite() {
        return "n/a".to_string();
    }
    let value = ratio * 100.0;
    if value == 100.0 || value == 0.0 {
        return format!("{value:.0}%");
    }
    if value >= 99.0 {
        // Never round 99.996% up to "100%": that would hide a failure.
        let truncated = (value * 100.0).floor() / 100.0;
        return format!("{truncated:.2}%");
    }
    if value >= 10.0 {
        return format!("{value:.1}%");
    }
    if value >= 0.1 {
        return format!("{value:.2}%");
    }
    format!("{value:.3}%")
}

/// Milliseconds, fewer decimals as the value grows.
pub(crate) fn millis(value: Option<f64>) -> String {
    match value {
        Some(value) if value.is_finite() && value >= 100.0 => format!("{value:.0} ms"),
        Some(value) if value.is_finite() && value >= 10.0 => format!("{value:.1} ms"),
        Some(value) if value.is_finite() => format!("{value:.2} ms"),
        _ => "n/a".to_string(),
    }
}

/// An integer with thin thousands separators, e.g. "12 345".
pub(crate) fn count(value: u64) -> String {
    let digits = value.to_string();
    // The first group holds 1 to 3 digits, every later group exactly 3.
    let head = match digits.len() % 3 {
        0 => 3,
        rest => rest,
    };
    let mut grouped = String::with_capacity(digits.len() * 2);
    grouped.push_str(&digits[..head]);
    let mut start = head;
    while start < digits.len() {
        grouped.push('\u{202f}');
        grouped.push_str(&digits[start..start + 3]);
        start += 3;
    }
    grouped
}

/// A signed integer with thousands separators.
pub(crate) fn signed_count(value: i64) -> String {
    let sign = if value < 0 { "-" } else { "" };
    format!("{sign}{}", count(value.unsigned_abs()))
}

/// Human name of a controller event kind, e.g. "dns_change" -> "DNS change".
pub(crate) fn event_kind_label(kind: &str) -> String {
    match kind {
        "decision" => "decision".to_string(),
        "drain_flag" => "drain flag".to_string(),
        "dns_change" => "DNS change".to_string(),
        "restore" => "restore".to_string(),
        "leader_change" => "leader change".to_string(),
        other => other.replace(['_', '-'], " "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_never_rounds_a_failure_up_to_one_hundred() {
        assert_eq!(percent(0.99996), "99.99%");
        assert_eq!(percent(1.0), "100%");
        assert_eq!(percent(0.5), "50.0%");
        assert_eq!(percent(0.0037), "0.37%");
        assert_eq!(percent(0.000_12), "0.012%");
    }

    #[test]
    fn escaping_covers_table_syntax() {
        assert_eq!(escape_markdown_cell("a|b\nc"), "a\\|b c");
    }

    #[test]
    fn counts_are_grouped_by_thousands() {
        assert_eq!(count(12), "12");
        assert_eq!(count(12_345), "12\u{202f}345");
        assert_eq!(signed_count(-1_000_000), "-1\u{202f}000\u{202f}000");
    }
}
