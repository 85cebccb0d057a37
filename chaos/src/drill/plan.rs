//! The plan of a drill (`chaos drill --plan`): what will be done, to which
//! region, when, and how each fault is undone, in time order, with the
//! rollbacks, the blast-radius verdict and the preflight result. Rendering
//! it changes nothing: it is text made from the drill file, the target
//! file and results the caller already has.

use crate::deployment::FaultAction;
use crate::journal::undo_of;
use crate::spec::{Drill, Fault};
use crate::target::guard::{self, Reach};
use crate::target::preflight::Preflight;

/// Where the drill would run, and what was found out before it.
#[derive(Debug, Clone, Copy)]
pub enum PlanTarget<'a> {
    /// A deployment the drill brings up itself (or attaches to).
    Local,
    /// A target file's deployment: its name, the guard's verdict and the
    /// preflight result.
    Target {
        name: &'a str,
        guard: &'a guard::Verdict,
        preflight: &'a Preflight,
    },
}

/// The plan as text, one step a line, in the order the drill would take
/// them (faults at the same second in the order of the method, as the
/// drill applies them).
pub fn render(drill: &Drill, on: PlanTarget<'_>) -> String {
    let end = f64::from(drill.load.duration_s);
    let mut text = format!("plan of drill \"{}\"", drill.title);
    match on {
        PlanTarget::Local => text.push_str(&format!(
            " on a local deployment ({} regions: {}); nothing is started or changed\n",
            drill.topology.regions.len(),
            drill.topology.regions.join(", ")
        )),
        PlanTarget::Target { name, .. } => {
            text.push_str(&format!(" on target {name}; nothing is changed\n"))
        }
    }
    text.push_str(&format!(
        "  before     seed {} accounts; register the rollbacks\n",
        drill.load.accounts
    ));
    let mut steps: Vec<(f64, usize, bool)> = Vec::new();
    for (index, fault) in drill.method.iter().enumerate() {
        steps.push((fault.start_s, index, true));
        if let Some(duration) = fault.duration_s {
            steps.push((fault.start_s + duration, index, false));
        }
    }
    steps.sort_by(|a, b| a.0.total_cmp(&b.0));
    text.push_str(&format!(
        "  t=0.0 s    load starts: {} req/s from each of {} ({}% writes), {} s\n",
        drill.load.rate_per_client_region,
        drill.client_regions().join(", "),
        drill.load.write_ratio * 100.0,
        drill.load.duration_s
    ));
    // An evacuation's action names the controllers' admin API, which only
    // the drill run reads from the target: here it is described, not built.
    let context = super::schedule::MethodContext {
        actuators: None,
        load_s: end,
        abort_reason: std::sync::Arc::default(),
        lease_transfer: None,
    };
    for (at, index, start) in steps {
        let fault = &drill.method[index];
        let when = format!("t={at:.1} s");
        let Some(action) = super::schedule::fault_action(fault, &region_of(fault), start, &context)
        else {
            text.push_str(&format!(
                "  {when:<10} method[{index}] {} on {}{}: through the controllers' admin API \
                 (controller_admin_url, controller.admin_token); undone by removing its override{}\n",
                fault.fault.as_str(),
                Reach::of(fault),
                if start { "" } else { " ends" },
                fault
                    .duration_s
                    .map(|d| format!(" at t={:.1} s", fault.start_s + d))
                    .unwrap_or_default()
            ));
            continue;
        };
        if start {
            let undo = match (undo_of(&action), fault.duration_s) {
                (Some((undo, catch_all)), Some(duration)) => format!(
                    "undone at t={:.1} s by {} (else {})",
                    at + duration,
                    describe(&undo),
                    describe(&catch_all)
                ),
                (Some((undo, catch_all)), None) => format!(
                    "no duration_s: undone by the rollbacks after the load, {} (else {})",
                    describe(&undo),
                    describe(&catch_all)
                ),
                (None, _) => "not journaled (nothing to undo)".to_owned(),
            };
            text.push_str(&format!(
                "  {when:<10} method[{index}] {} on {}: journal, then apply {}; {undo}\n",
                fault.fault.as_str(),
                Reach::of(fault),
                describe(&action)
            ));
        } else {
            text.push_str(&format!(
                "  {when:<10} method[{index}] {} on {} ends: {}\n",
                fault.fault.as_str(),
                Reach::of(fault),
                describe(&action)
            ));
        }
    }
    text.push_str(&format!("  {:<10} load ends\n", format!("t={end:.1} s")));
    let rollbacks: Vec<String> = super::registered_rollbacks(drill)
        .iter()
        .rev()
        .map(|rollback| {
            serde_json::to_value(rollback)
                .ok()
                .and_then(|v| v["action"].as_str().map(str::to_owned))
                .unwrap_or_default()
        })
        .collect();
    text.push_str(&format!(
        "  after      rollbacks (also on abort and on a stop): undo every journaled fault not \
         undone, newest first, then {}; then wait until every region serves and is in DNS\n",
        rollbacks.join(", ")
    ));
    text.push_str(&format!(
        "  abort      when more than {:.1}% of the 30-day error budget is burned\n",
        drill.abort.max_error_budget_share * 100.0
    ));
    match on {
        PlanTarget::Local => text.push_str("blast radius: none (no target)\n"),
        PlanTarget::Target {
            guard, preflight, ..
        } => {
            text.push_str(&guard.render());
            text.push_str(&preflight.render());
        }
    }
    text
}

/// The fault's region as the drill file names it: `leader` stays
/// `leader` (found when the fault starts), a deployment-wide fault has none.
fn region_of(fault: &Fault) -> String {
    match Reach::of(fault) {
        Reach::Region(region) => region,
        Reach::Leader => crate::spec::LEADER.to_owned(),
        Reach::Everywhere => String::new(),
    }
}

/// `region-kill target=us-east-1 on=true`: the action's kind and fields,
/// as the journal records them.
fn describe(action: &FaultAction) -> String {
    let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(action) else {
        return format!("{action:?}");
    };
    let mut text = fields["kind"].as_str().unwrap_or("?").to_owned();
    // The region first, then the rest by name.
    let mut fields: Vec<_> = fields.iter().filter(|(key, _)| *key != "kind").collect();
    fields.sort_by_key(|(key, _)| (*key != "target", key.as_str()));
    for (key, value) in fields {
        match value {
            serde_json::Value::String(value) => text.push_str(&format!(" {key}={value}")),
            serde_json::Value::Null => {}
            value => text.push_str(&format!(" {key}={value}")),
        }
    }
    text
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
