//! Actuators: how a drill makes a fault happen on a deployment it does not
//! own, by asking something that does. Unlike the local faults, which
//! `chaos up` (or the drill's own deployment) applies, an actuator's action
//! is carried out by the drill process itself, and the action holds
//! everything its undo needs, so that `chaos rollback` can undo it from the
//! journal alone.
//!
//! Layout: this module is what a drill knows of the target for its
//! actuators; `evacuate` drains a region through the controllers' admin
//! API.

pub mod command;
pub mod evacuate;

use std::path::Path;

use std::time::Duration;

use crate::deployment::FaultAction;
use crate::spec::{Fault, FaultKind};
use crate::target::{SecretRef, Target};

/// What the actuators of a drill need from its target file.
#[derive(Debug, Clone)]
pub struct Actuators {
    /// The controllers' admin base URLs, in the target file's region order.
    pub admin_urls: Vec<String>,
    /// The admin token's reference, a file path made absolute.
    pub admin_token: SecretRef,
    /// Names every override the drill creates ("chaos drill <title>").
    pub reason: String,
}

impl Actuators {
    pub fn from_target(target: &Target, drill_title: &str) -> Self {
        Self {
            admin_urls: target
                .regions
                .values()
                .map(|region| region.controller_admin_url.clone())
                .collect(),
            admin_token: absolute(&target.controller.admin_token, &target.base_dir),
            reason: format!("chaos drill {drill_title}"),
        }
    }

    /// The admin API as an evacuation of `fault` journals it: its override
    /// expires `EXPIRY_MARGIN_S` after the fault would end (`load_s` is the
    /// load's duration, the end of a fault without one).
    pub fn admin_api(&self, fault: &Fault, load_s: f64) -> evacuate::AdminApi {
        let lasts = fault
            .duration_s
            .unwrap_or((load_s - fault.start_s).max(1.0));
        evacuate::AdminApi {
            urls: self.admin_urls.clone(),
            token: self.admin_token.clone(),
            reason: self.reason.clone(),
            ttl_s: lasts.ceil() as u64 + evacuate::EXPIRY_MARGIN_S,
        }
    }
}

/// A file reference made absolute, so that the journal means the same file
/// wherever `chaos rollback` runs from.
fn absolute(reference: &SecretRef, base: &Path) -> SecretRef {
    match reference {
        SecretRef::Env(name) => SecretRef::Env(name.clone()),
        SecretRef::File(path) => {
            let joined = base.join(path);
            SecretRef::File(std::path::absolute(&joined).unwrap_or(joined))
        }
    }
}

/// A command's timeout when the drill file gives none.
pub const DEFAULT_COMMAND_TIMEOUT_S: f64 = 60.0;

/// Checks the actuator fields of `fault` (`field` makes their paths):
/// a `command` fault needs both argv lists and a sane timeout, and no
/// other fault may carry them.
pub fn validate_fault(fault: &Fault, field: &dyn Fn(&str) -> String) -> Result<(), String> {
    let bad = |name: &str, problem: &str| Err(format!("field `{}`: {problem}", field(name)));
    if fault.fault != FaultKind::Command {
        for (name, given) in [
            ("start", !fault.start.is_empty()),
            ("stop", !fault.stop.is_empty()),
            ("timeout_s", fault.timeout_s.is_some()),
        ] {
            if given {
                return bad(name, "applies only to command faults");
            }
        }
        return Ok(());
    }
    for (name, argv) in [("start", &fault.start), ("stop", &fault.stop)] {
        if argv.is_empty() {
            return bad(
                name,
                "is required for a command fault: an argv list such as [kubectl, scale, ...]",
            );
        }
        if argv[0].trim().is_empty() {
            return bad(&format!("{name}[0]"), "the program must not be empty");
        }
    }
    if fault.timeout_s.is_some_and(|t| !(t > 0.0 && t <= 3600.0)) {
        return bad("timeout_s", "must be more than 0 and at most 3600 s");
    }
    Ok(())
}

/// The action of a `command` fault: start (`on`) or stop.
pub fn command_action(fault: &Fault, target: String, on: bool) -> FaultAction {
    FaultAction::Command {
        target,
        on,
        start: fault.start.clone(),
        stop: fault.stop.clone(),
        timeout_s: fault.timeout_s.unwrap_or(DEFAULT_COMMAND_TIMEOUT_S),
    }
}

/// Carries out an actuator's action; `None` for an action that is not one.
/// A command's run comes back with the result, for the report.
pub async fn apply(
    action: &FaultAction,
) -> Option<(anyhow::Result<()>, Option<command::CommandRun>)> {
    match action {
        FaultAction::Evacuate { target, on, admin } => {
            Some((evacuate::apply(target, *on, admin).await, None))
        }
        FaultAction::Command {
            on,
            start,
            stop,
            timeout_s,
            ..
        } => {
            let argv = if *on { start } else { stop };
            let timeout = Duration::from_secs_f64(*timeout_s);
            Some(match command::run(argv, timeout).await {
                Ok(run) => (run.clone().into_result().map(drop), Some(run)),
                Err(error) => (Err(error), None),
            })
        }
        _ => None,
    }
}
