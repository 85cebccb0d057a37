//! The fault journal: every fault action a drill applies, written to
//! `<report dir>/journal.jsonl` and fsynced before the action is applied,
//! and an `undone` record after its undo succeeded. A drill that dies
//! (SIGKILL, a crash, a lost machine) leaves applied-but-not-undone entries,
//! which `chaos rollback --journal` undoes.
//!
//! Layout: this module is the file format, the writer and the reader;
//! `rollback` undoes what is pending and checks that every region serves and
//! is in DNS again.
//!
//! Invariant: the journal never holds the control token, only where it is
//! (the attached `chaos up`'s state file).

pub mod rollback;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::actuators::HookRun;
use crate::deployment::FaultAction;

/// Name of the journal in the report directory.
pub const JOURNAL_FILE: &str = "journal.jsonl";

/// The deployment an entry applies to, enough for `chaos rollback` to find
/// it again without the drill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum JournalDeployment {
    /// A running `chaos up` driven through its control API.
    Attached {
        control_url: String,
        /// The state file that holds the token (`<run dir>/deployment.json`),
        /// or `None` when the token was given on the command line: then
        /// `chaos rollback` needs `--attach <url>` and the token again.
        state_file: Option<PathBuf>,
    },
    /// A deployment the drill brought up in its own process: its processes
    /// are the drill's children and its faults die with it.
    InProcess { run_dir: PathBuf },
    /// A deployment known only from its target file (no `local` section).
    Target { target_file: PathBuf },
}

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "kebab-case")]
pub enum Record {
    /// Written (and fsynced) before `action` is applied (boxed: it holds
    /// three actions, an actuator's with its whole access).
    Applied(Box<Applied>),
    /// Written after the undo of entry `id` succeeded.
    Undone {
        id: u64,
        at: DateTime<Utc>,
        /// "drill" or "chaos rollback", and how ("its undo", "the catch-all").
        by: String,
        /// The stop hook's run, for a `command` or `http` fault.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hook: Option<HookRun>,
    },
    /// An undo that failed, so that a reader sees the attempt.
    UndoFailed {
        id: u64,
        at: DateTime<Utc>,
        error: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hook: Option<HookRun>,
    },
}

/// An applied fault action and how to undo it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Applied {
    /// Unique within the journal, increasing.
    pub id: u64,
    pub at: DateTime<Utc>,
    pub deployment: JournalDeployment,
    pub action: FaultAction,
    /// The action that undoes it (its `on: false` form).
    pub undo: FaultAction,
    /// What to try when `undo` fails: `restore-all` for a killed or
    /// stopped process, `heal-network` for a network fault.
    pub catch_all: FaultAction,
}

/// The undo of `action` and its catch-all, or `None` for an action that is
/// itself an undo or a restore (nothing to journal).
pub fn undo_of(action: &FaultAction) -> Option<(FaultAction, FaultAction)> {
    use FaultAction as A;
    let processes = A::RestoreAll;
    let network = A::HealNetwork;
    let (undo, catch_all) = match action.clone() {
        A::RegionKill { target, on: true } => (A::RegionKill { target, on: false }, processes),
        A::RegionBlackhole { target, on: true } => {
            (A::RegionBlackhole { target, on: false }, processes)
        }
        A::ControllerKill { target, on: true } => {
            (A::ControllerKill { target, on: false }, processes)
        }
        A::ProberPartition { target, on: true } => {
            (A::ProberPartition { target, on: false }, network)
        }
        A::Latency {
            target,
            on: true,
            delay_ms,
        } => (
            A::Latency {
                target,
                on: false,
                delay_ms,
            },
            network,
        ),
        A::DbStall { target, on: true } => (A::DbStall { target, on: false }, network),
        A::DbCrash { on: true } => (A::DbCrash { on: false }, processes),
        A::CommitReset {
            target,
            on: true,
            share,
        } => (
            A::CommitReset {
                target,
                on: false,
                share,
            },
            network,
        ),
        A::ControllerDbCut { target, on: true } => {
            (A::ControllerDbCut { target, on: false }, network)
        }
        A::Route53Throttle { on: true } => (A::Route53Throttle { on: false }, network),
        // Its undo is idempotent; trying it again is the only catch-all.
        A::Evacuate {
            target,
            on: true,
            admin,
        } => {
            let undo = A::Evacuate {
                target,
                on: false,
                admin,
            };
            (undo.clone(), undo)
        }
        // The stop command is the undo; running it again the catch-all.
        A::Command {
            target,
            on: true,
            start,
            stop,
            timeout_s,
        } => {
            let undo = A::Command {
                target,
                on: false,
                start,
                stop,
                timeout_s,
            };
            (undo.clone(), undo)
        }
        A::Http {
            target,
            on: true,
            start,
            stop,
            timeout_s,
        } => {
            let undo = A::Http {
                target,
                on: false,
                start,
                stop,
                timeout_s,
            };
            (undo.clone(), undo)
        }
        _ => return None,
    };
    Some((undo, catch_all))
}

/// An open journal, appended to by one drill (or one `chaos rollback`).
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    /// The file and the next entry id, behind one lock so that ids follow
    /// the order of the lines.
    file: Mutex<(std::fs::File, u64)>,
}

impl Journal {
    /// Opens `path` for appending, creating it; ids continue after those
    /// already in it.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let next_id = if path.exists() {
            read(path)?
                .iter()
                .filter_map(|record| match record {
                    Record::Applied(applied) => Some(applied.id + 1),
                    _ => None,
                })
                .max()
                .unwrap_or(1)
        } else {
            1
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open the journal {}", path.display()))?;
        Ok(Self {
            path: path.to_owned(),
            file: Mutex::new((file, next_id)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Journals `action` before it is applied; `None` (and nothing written)
    /// for an action that is an undo itself. The line is on disk when this
    /// returns: a fault is never applied without its entry.
    pub fn applying(
        &self,
        deployment: &JournalDeployment,
        action: &FaultAction,
    ) -> anyhow::Result<Option<u64>> {
        let Some((undo, catch_all)) = undo_of(action) else {
            return Ok(None);
        };
        let mut guard = self.file.lock().expect("journal lock");
        let id = guard.1;
        let record = Record::Applied(Box::new(Applied {
            id,
            at: Utc::now(),
            deployment: deployment.clone(),
            action: action.clone(),
            undo,
            catch_all,
        }));
        write_line(&mut guard.0, &record)
            .with_context(|| format!("cannot write the journal {}", self.path.display()))?;
        guard.1 += 1;
        Ok(Some(id))
    }

    /// Records that entry `id` was undone.
    pub fn undone(&self, id: u64, by: &str) -> anyhow::Result<()> {
        self.undone_with(id, by, None)
    }

    /// Records that entry `id` is undone, with its stop hook's run.
    pub fn undone_with(&self, id: u64, by: &str, hook: Option<&HookRun>) -> anyhow::Result<()> {
        self.append(&Record::Undone {
            id,
            at: Utc::now(),
            by: by.to_owned(),
            hook: hook.cloned(),
        })
    }

    /// Records a failed undo of entry `id`, with its stop hook's run.
    pub fn undo_failed(&self, id: u64, error: &str, hook: Option<&HookRun>) -> anyhow::Result<()> {
        self.append(&Record::UndoFailed {
            id,
            at: Utc::now(),
            error: error.to_owned(),
            hook: hook.cloned(),
        })
    }

    fn append(&self, record: &Record) -> anyhow::Result<()> {
        let mut guard = self.file.lock().expect("journal lock");
        write_line(&mut guard.0, record)
            .with_context(|| format!("cannot write the journal {}", self.path.display()))
    }
}

fn write_line(file: &mut std::fs::File, record: &Record) -> std::io::Result<()> {
    let mut line = serde_json::to_string(record)?;
    line.push('\n');
    file.write_all(line.as_bytes())?;
    file.sync_data()
}

/// Every record of the journal at `path`. A last line cut short (the drill
/// died while writing it) is skipped: its action was never applied.
pub fn read(path: &Path) -> anyhow::Result<Vec<Record>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the journal {}", path.display()))?;
    parse(&text).map_err(|message| anyhow::anyhow!("{}: {message}", path.display()))
}

/// The records of a journal's text; the error names the line.
pub fn parse(text: &str) -> Result<Vec<Record>, String> {
    let mut records = Vec::new();
    let complete = text.ends_with('\n');
    let lines: Vec<&str> = text.lines().collect();
    for (index, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(record) => records.push(record),
            Err(_) if index + 1 == lines.len() && !complete => {}
            Err(error) => return Err(format!("line {}: not a journal record: {error}", index + 1)),
        }
    }
    Ok(records)
}

/// The applied entries without an `undone` record, in the order applied.
pub fn pending(records: &[Record]) -> Vec<Applied> {
    let undone: std::collections::BTreeSet<u64> = records
        .iter()
        .filter_map(|record| match record {
            Record::Undone { id, .. } => Some(*id),
            _ => None,
        })
        .collect();
    records
        .iter()
        .filter_map(|record| match record {
            Record::Applied(applied) if !undone.contains(&applied.id) => Some((**applied).clone()),
            _ => None,
        })
        .collect()
}

/// The deployment to roll back: that of the newest entry not undone, else
/// of the newest entry (for the closing check); `None` for a journal
/// without entries.
pub fn deployment_of(records: &[Record]) -> Option<JournalDeployment> {
    pending(records)
        .last()
        .map(|entry| entry.deployment.clone())
        .or_else(|| {
            records.iter().rev().find_map(|record| match record {
                Record::Applied(applied) => Some(applied.deployment.clone()),
                _ => None,
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attached() -> JournalDeployment {
        JournalDeployment::Attached {
            control_url: "http://127.0.0.1:7450".into(),
            state_file: Some("/run/deployment.json".into()),
        }
    }

    fn kill(target: &str, on: bool) -> FaultAction {
        FaultAction::RegionKill {
            target: target.into(),
            on,
        }
    }

    fn scratch() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("journal-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(JOURNAL_FILE)
    }

    #[test]
    fn an_applied_action_is_on_disk_before_it_returns_and_pending_until_undone() {
        let path = scratch();
        let journal = Journal::open(&path).unwrap();
        let first = journal
            .applying(&attached(), &kill("eu-west-1", true))
            .unwrap()
            .unwrap();
        // Another reader sees the line at once: it was written, not buffered.
        let pending_now = pending(&read(&path).unwrap());
        assert_eq!(pending_now.len(), 1);
        assert_eq!(pending_now[0].undo, kill("eu-west-1", false));
        assert_eq!(pending_now[0].catch_all, FaultAction::RestoreAll);
        let second = journal
            .applying(
                &attached(),
                &FaultAction::ProberPartition {
                    target: "us-east-1".into(),
                    on: true,
                },
            )
            .unwrap()
            .unwrap();
        assert!(second > first);
        journal.undone(first, "drill").unwrap();
        let left = pending(&read(&path).unwrap());
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].id, second);
        assert_eq!(left[0].catch_all, FaultAction::HealNetwork);
        // Undo forms and restores are not journaled as faults.
        assert_eq!(
            journal
                .applying(&attached(), &kill("eu-west-1", false))
                .unwrap(),
            None
        );
        assert_eq!(
            journal
                .applying(&attached(), &FaultAction::RestoreAll)
                .unwrap(),
            None
        );
        // A journal opened again continues the ids.
        drop(journal);
        let again = Journal::open(&path).unwrap();
        let third = again
            .applying(&attached(), &kill("ap-southeast-1", true))
            .unwrap()
            .unwrap();
        assert!(third > second);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("token"), "{text}");
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    /// An evacuation is journaled with how to reach the admin API (the
    /// token's variable name, never its value) and read back the same.
    #[test]
    fn an_evacuation_round_trips_with_its_admin_api_but_not_the_token() {
        std::env::set_var("CHAOS_JOURNAL_TEST_ADMIN_TOKEN", "s3cr3t-admin-token");
        let path = scratch();
        let journal = Journal::open(&path).unwrap();
        let admin = crate::actuators::evacuate::AdminApi {
            urls: vec![
                "http://127.0.0.1:9100".into(),
                "http://127.0.0.1:9200".into(),
            ],
            token: crate::target::SecretRef::Env("CHAOS_JOURNAL_TEST_ADMIN_TOKEN".into()),
            reason: "chaos drill Evacuate eu-west-1".into(),
            ttl_s: 90,
            ca_file: None,
        };
        let evacuate = |on| FaultAction::Evacuate {
            target: "eu-west-1".into(),
            on,
            admin: admin.clone(),
        };
        journal
            .applying(&attached(), &evacuate(true))
            .unwrap()
            .unwrap();
        let left = pending(&read(&path).unwrap());
        assert_eq!(left[0].action, evacuate(true));
        assert_eq!(left[0].undo, evacuate(false));
        assert_eq!(left[0].catch_all, evacuate(false));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("CHAOS_JOURNAL_TEST_ADMIN_TOKEN"), "{text}");
        assert!(!text.contains("s3cr3t"), "{text}");
        assert_eq!(
            rollback::describe(&evacuate(true)),
            "evacuate eu-west-1 (on)"
        );
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn a_torn_last_line_is_skipped_and_a_bad_middle_line_is_named() {
        let good = serde_json::to_string(&Record::Undone {
            id: 1,
            at: Utc::now(),
            by: "drill".into(),
            hook: None,
        })
        .unwrap();
        let torn = format!("{good}\n{{\"record\":\"applied\",\"id\":2,\"at");
        assert_eq!(parse(&torn).unwrap().len(), 1);
        let bad = format!("{good}\nnot json\n{good}\n");
        let error = parse(&bad).unwrap_err();
        assert!(error.starts_with("line 2: not a journal record"), "{error}");
    }
}
