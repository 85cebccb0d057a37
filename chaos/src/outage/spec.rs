//! The drill file's part for drills that travel a whole outage: the
//! settings a fail-on-purpose version overrides, and the rules for the
//! faults and hypothesis fields of those drills.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::spec::{Drill, FaultKind};

/// Settings of the deployment changed on purpose, so that a drill's
/// fail-on-purpose version is the shipped drill with one of these and is
/// seen to fail when the behaviour it guards is broken (a database that
/// acknowledges a commit before its WAL is written). Controller settings
/// are overridden in the drill's `controller:` section instead.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Overrides {
    /// PostgreSQL settings (`synchronous_commit`) of the server the drill
    /// starts for itself (only drills that crash the database start one).
    pub database: BTreeMap<String, String>,
}

impl Drill {
    /// Whether the drill crashes the database, and so needs a server of its
    /// own: never the shared server other tests use.
    pub fn crashes_database(&self) -> bool {
        self.method.iter().any(|f| f.fault == FaultKind::DbCrash)
    }
}

/// Checks what `Drill::validate` leaves to this module; the error names the
/// field.
pub fn validate(drill: &Drill) -> Result<(), String> {
    let bad = |field: String, problem: &str| Err(format!("field `{field}`: {problem}"));
    for (index, fault) in drill.method.iter().enumerate() {
        let field = |name: &str| format!("method[{index}].{name}");
        if fault.fault.deployment_wide() && !fault.target.is_empty() {
            return bad(
                field("target"),
                "names no region: the fault hits the whole deployment",
            );
        }
        match (fault.fault, fault.share) {
            (FaultKind::CommitReset, None) => {
                return bad(field("share"), "is required for a commit-reset fault")
            }
            (FaultKind::CommitReset, Some(share)) if !(share > 0.0 && share <= 1.0) => {
                return bad(field("share"), "must be in (0, 1]")
            }
            (FaultKind::CommitReset, Some(_)) | (_, None) => {}
            (_, Some(_)) => return bad(field("share"), "applies only to commit-reset faults"),
        }
        if fault.fault == FaultKind::Route53Throttle && !drill.topology.route53 {
            return bad(
                field("fault"),
                "route53-throttle needs topology.route53: true",
            );
        }
    }
    let h = &drill.hypothesis;
    if h.route53_converged && !drill.topology.route53 {
        return bad(
            "hypothesis.route53_converged".into(),
            "needs topology.route53: true",
        );
    }
    for (name, value) in [
        ("max_recovery_s", h.max_recovery_s),
        ("max_stale_answer_s", h.max_stale_answer_s),
    ] {
        if value.is_some_and(|s| s.is_nan() || s <= 0.0) {
            return bad(format!("hypothesis.{name}"), "must be positive");
        }
    }
    if !drill.topology.overrides.database.is_empty() && !drill.crashes_database() {
        return bad(
            "topology.overrides.database".into(),
            "applies only to drills that start their own server (a db-crash fault)",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
title: x
load: { rate_per_client_region: 10, write_ratio: 0.5, duration_s: 30 }
hypothesis: { min_success_ratio: 0.9, max_p99_ms: 2000 }
method:
"#;

    #[test]
    fn outage_faults_are_checked() {
        let ok = format!(
            "{BASE}  - {{ fault: db-crash, start_s: 5, duration_s: 5 }}\n  \
             - {{ fault: commit-reset, target: eu-west-1, start_s: 5, share: 0.2 }}\n"
        );
        let drill = Drill::parse(&ok).unwrap();
        assert!(drill.crashes_database());
        let cases = [
            (
                ok.replace("db-crash,", "db-crash, target: eu-west-1,"),
                "method[0].target",
            ),
            (ok.replace(", share: 0.2", ""), "method[1].share"),
            (ok.replace("share: 0.2", "share: 1.5"), "method[1].share"),
            (
                format!("{BASE}  - {{ fault: route53-throttle, start_s: 5 }}\n"),
                "route53",
            ),
        ];
        for (text, field) in cases {
            let error = Drill::parse(&text).unwrap_err();
            assert!(error.contains(field), "{field}: {error}");
        }
    }
}
