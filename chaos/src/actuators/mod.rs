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
pub mod http;

use std::path::Path;

use std::time::Duration;

use serde::{Deserialize, Serialize};

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
    /// The target's `service.ca_file`, absolute.
    pub ca_file: Option<std::path::PathBuf>,
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
            ca_file: target.service.ca_file.as_ref().map(|file| {
                let path = target.path(file);
                std::path::absolute(&path).unwrap_or(path)
            }),
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
            ca_file: self.ca_file.clone(),
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

/// A hook of a `command` or `http` fault: an argv list, or a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Hook {
    Command(Vec<String>),
    Http(http::HttpHook),
}

const HOOK_EXPECTED: &str =
    "an argv list [program, args...] or a call {method, url, headers, body}";

// By hand rather than untagged, so that an error names the hook's own
// field and says what was expected.
impl<'de> Deserialize<'de> for Hook {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HookVisitor;
        impl<'de> serde::de::Visitor<'de> for HookVisitor {
            type Value = Hook;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(HOOK_EXPECTED)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Hook, A::Error> {
                Vec::<String>::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
                    .map(Hook::Command)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Hook, A::Error> {
                http::HttpHook::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(Hook::Http)
            }
        }
        deserializer.deserialize_any(HookVisitor)
    }
}

impl Default for Hook {
    fn default() -> Self {
        Hook::Command(Vec::new())
    }
}

impl Hook {
    /// Not given in the drill file.
    pub fn is_empty(&self) -> bool {
        matches!(self, Hook::Command(argv) if argv.is_empty())
    }
}

/// One run of a hook, as the report shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "hook", rename_all = "lowercase")]
pub enum HookRun {
    Command(command::CommandRun),
    Http(http::HttpRun),
}

impl HookRun {
    /// The argv (space-joined) or `METHOD url`.
    pub fn what(&self) -> String {
        match self {
            HookRun::Command(run) => run.argv.join(" "),
            HookRun::Http(run) => format!("{} {}", run.method, run.url),
        }
    }

    /// `exit 0`, `timed out (killed)`, `HTTP 204`, `no answer: ...`.
    pub fn result(&self) -> String {
        match self {
            HookRun::Command(run) => match (run.timed_out, run.exit_code) {
                (true, _) => "timed out (killed)".into(),
                (false, Some(code)) => format!("exit {code}"),
                (false, None) => "killed by a signal".into(),
            },
            HookRun::Http(run) => match (&run.error, run.status) {
                (Some(error), _) => format!("no answer: {error}"),
                (None, Some(status)) => format!("HTTP {status}"),
                (None, None) => "no answer".into(),
            },
        }
    }

    pub fn succeeded(&self) -> bool {
        match self {
            HookRun::Command(run) => run.succeeded(),
            HookRun::Http(run) => run.succeeded(),
        }
    }

    pub fn elapsed_s(&self) -> f64 {
        match self {
            HookRun::Command(run) => run.elapsed_s,
            HookRun::Http(run) => run.elapsed_s,
        }
    }

    /// The last `chars` characters of the non-empty outputs (stdout and
    /// stderr, or the answer's body), trimmed, joined by " / ".
    pub fn output_tail(&self, chars: usize) -> String {
        let parts = match self {
            HookRun::Command(run) => vec![run.stdout.as_str(), run.stderr.as_str()],
            HookRun::Http(run) => vec![run.body.as_str()],
        };
        let joined = parts
            .iter()
            .map(|part| part.trim())
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join(" / ");
        let count = joined.chars().count();
        if count <= chars {
            return joined;
        }
        let kept: String = joined.chars().skip(count - chars).collect();
        format!("…{kept}")
    }

    /// One line for the console: what ran, how it ended, the end of its
    /// output.
    pub fn summary(&self) -> String {
        let output = self.output_tail(300);
        let output = if output.is_empty() {
            String::new()
        } else {
            format!(": {output}")
        };
        format!(
            "`{}` {} in {:.2} s{output}",
            self.what(),
            self.result(),
            self.elapsed_s()
        )
    }
}

/// Checks the actuator fields of `fault` (`field` makes their paths): a
/// `command` fault needs two argv lists, an `http` fault two calls, both a
/// sane timeout, and no other fault may carry them.
pub fn validate_fault(fault: &Fault, field: &dyn Fn(&str) -> String) -> Result<(), String> {
    let bad = |name: &str, problem: &str| Err(format!("field `{}`: {problem}", field(name)));
    let hooked = matches!(fault.fault, FaultKind::Command | FaultKind::Http);
    if !hooked {
        for (name, given) in [
            ("start", !fault.start.is_empty()),
            ("stop", !fault.stop.is_empty()),
            ("timeout_s", fault.timeout_s.is_some()),
        ] {
            if given {
                return bad(name, "applies only to command and http faults");
            }
        }
        return Ok(());
    }
    for (name, hook) in [("start", &fault.start), ("stop", &fault.stop)] {
        match (fault.fault, hook) {
            (FaultKind::Command, Hook::Command(argv)) if argv.is_empty() => {
                return bad(
                    name,
                    "is required for a command fault: an argv list such as [kubectl, scale, ...]",
                )
            }
            (FaultKind::Command, Hook::Command(argv)) if argv[0].trim().is_empty() => {
                return bad(&format!("{name}[0]"), "the program must not be empty")
            }
            (FaultKind::Command, Hook::Command(_)) => {}
            (FaultKind::Command, Hook::Http(_)) => {
                return bad(name, "a command fault takes an argv list, not a call")
            }
            (_, Hook::Http(call)) => call.validate(&field(name))?,
            (_, Hook::Command(_)) => {
                return bad(
                    name,
                    "is required for an http fault: {method, url, headers, body}",
                )
            }
        }
    }
    if fault.timeout_s.is_some_and(|t| !(t > 0.0 && t <= 3600.0)) {
        return bad("timeout_s", "must be more than 0 and at most 3600 s");
    }
    Ok(())
}

/// The action of a `command` or `http` fault: start (`on`) or stop.
pub fn hook_action(fault: &Fault, target: String, on: bool) -> FaultAction {
    let timeout_s = fault.timeout_s.unwrap_or(DEFAULT_COMMAND_TIMEOUT_S);
    match (&fault.start, &fault.stop) {
        (Hook::Http(start), Hook::Http(stop)) => FaultAction::Http {
            target,
            on,
            start: start.clone(),
            stop: stop.clone(),
            timeout_s,
        },
        (start, stop) => FaultAction::Command {
            target,
            on,
            start: argv_of(start),
            stop: argv_of(stop),
            timeout_s,
        },
    }
}

fn argv_of(hook: &Hook) -> Vec<String> {
    match hook {
        Hook::Command(argv) => argv.clone(),
        Hook::Http(_) => Vec::new(),
    }
}

/// Carries out an actuator's action; `None` for an action that is not one.
/// A hook's run comes back with the result, for the report.
pub async fn apply(action: &FaultAction) -> Option<(anyhow::Result<()>, Option<HookRun>)> {
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
                Ok(run) => (
                    run.clone().into_result().map(drop),
                    Some(HookRun::Command(run)),
                ),
                Err(error) => (Err(error), None),
            })
        }
        FaultAction::Http {
            on,
            start,
            stop,
            timeout_s,
            ..
        } => {
            let hook = if *on { start } else { stop };
            let timeout = Duration::from_secs_f64(*timeout_s);
            Some(match http::call(hook, timeout).await {
                Ok(run) => (
                    run.clone().into_result().map(drop),
                    Some(HookRun::Http(run)),
                ),
                Err(error) => (Err(error), None),
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod http_tests;
