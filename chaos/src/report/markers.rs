//! Fault windows and controller events on the timeline charts: shading,
//! strips, dashed lines and numbered badges placed so they never overlap.

use std::fmt::Write;

use super::format::{coordinate as c, escape_html, event_kind_label};
use super::svg::Frame;
use crate::model::{ControllerEvent, FaultWindow};

/// Height of one row of marker badges above the plot.
pub(crate) const MARKER_ROW: f64 = 18.0;
/// At most this many badge rows; more events simply share the last row.
const MAX_MARKER_ROWS: usize = 3;

/// Shades every fault's window over the plot (under the data).
pub(crate) fn fault_shading(out: &mut String, frame: &Frame, faults: &[FaultWindow]) {
    for fault in faults {
        let x1 = frame.x(fault.start_s);
        let x2 = frame.x(fault.end_s.unwrap_or(frame.x_max));
        let _ = write!(
            out,
            r#"<rect class="fault" x="{x}" y="{y}" width="{w}" height="{h}"><title>{title}</title></rect>"#,
            x = c(x1),
            y = c(frame.plot_top()),
            w = c((x2 - x1).max(1.0)),
            h = c(frame.plot_height()),
            title = escape_html(&fault_label(fault)),
        );
    }
}

/// A thin band just above the plot for each fault, for charts whose data
/// covers the shading.
pub(crate) fn fault_strip(out: &mut String, frame: &Frame, faults: &[FaultWindow]) {
    for fault in faults {
        let x1 = frame.x(fault.start_s);
        let x2 = frame.x(fault.end_s.unwrap_or(frame.x_max));
        let _ = write!(
            out,
            r#"<rect class="fault-strip" x="{x}" y="{y}" width="{w}" height="5"><title>{title}</title></rect>"#,
            x = c(x1),
            y = c(frame.plot_top() - 7.0),
            w = c((x2 - x1).max(1.0)),
            title = escape_html(&fault_label(fault)),
        );
    }
}

/// "region-kill us-east-1 (20.0 s to 60.0 s)".
pub(crate) fn fault_label(fault: &FaultWindow) -> String {
    let end = fault
        .end_s
        .map(|end| format!("{end:.1} s"))
        .unwrap_or_else(|| "end".to_string());
    format!(
        "{} {} ({:.1} s to {end})",
        fault.kind, fault.target, fault.start_s
    )
}

/// Rows for labels at `positions` (x, width) so that no two in a row
/// overlap; greedy, left to right, at most `max_rows` rows.
pub(crate) fn place_in_rows(positions: &[(f64, f64)], max_rows: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..positions.len()).collect();
    order.sort_by(|a, b| positions[*a].0.total_cmp(&positions[*b].0));
    let mut row_ends: Vec<f64> = Vec::new();
    let mut rows = vec![0; positions.len()];
    for index in order {
        let (x, width) = positions[index];
        let start = x - width / 2.0;
        let row = row_ends
            .iter()
            .position(|end| *end + 3.0 <= start)
            .unwrap_or(row_ends.len())
            .min(max_rows.saturating_sub(1));
        if row == row_ends.len() {
            row_ends.push(f64::MIN);
        }
        row_ends[row] = row_ends[row].max(x + width / 2.0);
        rows[index] = row;
    }
    rows
}

/// Badge rows the events need on this frame (0 without events).
pub(crate) fn marker_rows(frame: &Frame, events: &[ControllerEvent]) -> usize {
    let groups = badge_groups(frame, events);
    let rows = badge_rows(&groups);
    rows.iter().max().map(|row| row + 1).unwrap_or(0)
}

/// Events close enough on the x axis to share one badge, e.g. "2–9".
struct BadgeGroup {
    /// Indexes into the events, first and last (inclusive).
    first: usize,
    last: usize,
    first_x: f64,
    last_x: f64,
}

impl BadgeGroup {
    fn label(&self) -> String {
        if self.first == self.last {
            return (self.first + 1).to_string();
        }
        format!("{}–{}", self.first + 1, self.last + 1)
    }
    fn x(&self) -> f64 {
        (self.first_x + self.last_x) / 2.0
    }
    fn width(&self) -> f64 {
        8.0 + 6.5 * self.label().chars().count() as f64
    }
}

/// Groups events (in time order) that lie within a badge's width of the
/// first event of their group; a burst of DNS changes gets one badge.
fn badge_groups(frame: &Frame, events: &[ControllerEvent]) -> Vec<BadgeGroup> {
    let mut groups: Vec<BadgeGroup> = Vec::new();
    for (index, event) in events.iter().enumerate() {
        let x = frame.x(event.at_s);
        match groups.last_mut() {
            Some(group) if x - group.first_x < 12.0 => {
                group.last = index;
                group.last_x = x;
            }
            _ => groups.push(BadgeGroup {
                first: index,
                last: index,
                first_x: x,
                last_x: x,
            }),
        }
    }
    groups
}

fn badge_rows(groups: &[BadgeGroup]) -> Vec<usize> {
    let positions: Vec<(f64, f64)> = groups
        .iter()
        .map(|group| (group.x(), group.width()))
        .collect();
    place_in_rows(&positions, MAX_MARKER_ROWS)
}

/// Dashed vertical lines for the controller's events, and numbered badges
/// above the plot (numbers match the events table) when `badges` says so.
pub(crate) fn event_markers(
    out: &mut String,
    frame: &Frame,
    events: &[ControllerEvent],
    badges: Badges,
) {
    let titles: Vec<String> = events
        .iter()
        .enumerate()
        .map(|(index, event)| {
            format!(
                "{}. {} at {:.2} s{}",
                index + 1,
                event_kind_label(&event.kind),
                event.at_s,
                event
                    .region
                    .as_deref()
                    .map(|region| format!(" ({region})"))
                    .unwrap_or_default(),
            )
        })
        .collect();
    for (event, title) in events.iter().zip(&titles) {
        let x = frame.x(event.at_s);
        let _ = write!(
            out,
            r#"<line class="event" x1="{x}" x2="{x}" y1="{y1}" y2="{y2}"><title>{title}</title></line>"#,
            x = c(x),
            y1 = c(frame.plot_top()),
            y2 = c(frame.plot_bottom()),
            title = escape_html(title),
        );
    }
    if badges == Badges::Hidden {
        return;
    }
    let groups = badge_groups(frame, events);
    let rows = badge_rows(&groups);
    for (group, row) in groups.iter().zip(rows) {
        let centre_y = frame.plot_top() - 10.0 - row as f64 * MARKER_ROW;
        let x = group.x();
        let width = group.width();
        let title = titles[group.first..=group.last].join("\n");
        let _ = write!(
            out,
            r#"<g class="badge"><title>{title}</title><line x1="{x}" x2="{x}" y1="{ly1}" y2="{ly2}"/><rect x="{rx}" y="{ry}" width="{w}" height="16" rx="8"/><text x="{x}" y="{ty}" text-anchor="middle">{label}</text></g>"#,
            x = c(x),
            ly1 = c(centre_y + 8.0),
            ly2 = c(frame.plot_top()),
            rx = c(x - width / 2.0),
            ry = c(centre_y - 8.0),
            w = c(width),
            ty = c(centre_y + 4.0),
            title = escape_html(&title),
            label = group.label(),
        );
    }
}

/// Whether [`event_markers`] draws the numbered badges or only the lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Badges {
    Shown,
    Hidden,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_labels_go_to_separate_rows() {
        let rows = place_in_rows(
            &[(100.0, 16.0), (104.0, 16.0), (140.0, 16.0), (300.0, 16.0)],
            3,
        );
        assert_eq!(rows, vec![0, 1, 0, 0]);
    }
}
