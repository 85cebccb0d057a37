//! The drill's clockwork while the load runs: the method's faults at their
//! offsets, progress and the abort monitor, and the DNS watcher.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::actuators::Actuators;
use crate::analysis::DnsObservation;
use crate::deployment::FaultAction;
use crate::driver::FaultDriver;
use crate::journal::{Journal, JournalDeployment};
use crate::load::{self, LiveCounters, Target};
use crate::model::FaultWindow;
use crate::spec::{Drill, Fault, FaultKind, LEADER};

/// The fault journal and the deployment its entries name.
pub(super) struct Journaled {
    pub journal: Arc<Journal>,
    pub deployment: JournalDeployment,
}

/// What the method needs besides the driver: the actuators' access to the
/// target (`None` without `--target`), the load's length (an evacuation's
/// expiry) and where to say why a fault's start aborted the drill.
pub(super) struct MethodContext {
    pub actuators: Option<Actuators>,
    pub load_s: f64,
    pub abort_reason: Arc<Mutex<Option<String>>>,
    /// What a region's death costs the database (the drill's
    /// `topology.wan.lease_transfer_s`); `None` for nothing.
    pub lease_transfer: Option<Duration>,
}

impl MethodContext {
    /// The lease transfer that follows `action` (a region killed or
    /// blackholed), when the drill models one.
    pub fn lease_transfer_after(&self, action: &FaultAction) -> Option<FaultAction> {
        let hold = self.lease_transfer.filter(|hold| !hold.is_zero())?;
        match action {
            FaultAction::RegionKill { target, on: true }
            | FaultAction::RegionBlackhole { target, on: true } => {
                Some(FaultAction::LeaseTransfer {
                    target: target.clone(),
                    hold_ms: u64::try_from(hold.as_millis()).unwrap_or(u64::MAX),
                })
            }
            _ => None,
        }
    }
}

/// Applies each fault at its offset and undoes it after its duration. Each
/// fault is journaled before it is applied (a fault that cannot be
/// journaled is not applied), and its entry marked undone after its undo.
pub(super) async fn run_method(
    method: Vec<Fault>,
    driver: FaultDriver,
    t0: Instant,
    windows: Arc<Mutex<Vec<FaultWindow>>>,
    abort: Arc<AtomicBool>,
    journaled: Journaled,
    context: MethodContext,
) {
    let Journaled {
        journal,
        deployment,
    } = journaled;
    let mut entries: BTreeMap<usize, u64> = BTreeMap::new();
    // Timeline of (time, fault index, start?).
    let mut steps: Vec<(f64, usize, bool)> = Vec::new();
    for (index, fault) in method.iter().enumerate() {
        steps.push((fault.start_s, index, true));
        if let Some(duration) = fault.duration_s {
            steps.push((fault.start_s + duration, index, false));
        }
    }
    steps.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut leader_targets: BTreeMap<usize, String> = BTreeMap::new();
    for (at, index, start) in steps {
        tokio::time::sleep_until((t0 + Duration::from_secs_f64(at)).into()).await;
        if abort.load(Ordering::Relaxed) {
            return;
        }
        let fault = &method[index];
        // `leader-kill`, and any fault whose target is `leader`, hit the
        // region whose controller holds the lease when the fault starts.
        let target = if fault.fault == FaultKind::LeaderKill || fault.target == LEADER {
            match leader_targets.get(&index) {
                Some(target) => target.clone(),
                None => match driver.leader().await {
                    Ok(leader) => leader.unwrap_or_default(),
                    Err(error) => {
                        eprintln!("chaos: cannot find the leader: {error:#}");
                        String::new()
                    }
                },
            }
        } else {
            fault.target.clone()
        };
        let Some(action) = fault_action(fault, &target, start, &context) else {
            eprintln!(
                "chaos: fault {} on {target} not applied: it needs --target",
                fault.fault.as_str()
            );
            continue;
        };
        if start {
            match journal.applying(&deployment, &action) {
                Ok(Some(id)) => {
                    entries.insert(index, id);
                }
                Ok(None) => {}
                Err(error) => {
                    eprintln!(
                        "chaos: fault {} on {target} not applied: {error:#}",
                        fault.fault.as_str()
                    );
                    continue;
                }
            }
        }
        // A fault starts when its action begins (the RTO clock starts at
        // injection, as FIS and Resilience Hub count it, however long a
        // start hook then takes) and ends when its undo has completed.
        let began = t0.elapsed().as_secs_f64();
        let (result, hook_run) = match crate::actuators::apply(&action).await {
            Some((result, run)) => (result, run),
            None => (driver.apply(&action).await, None),
        };
        let now = t0.elapsed().as_secs_f64();
        match result {
            Ok(()) if start => {
                leader_targets.insert(index, target.clone());
                eprintln!("chaos: t={now:.1}s {} {target}", fault.fault.as_str());
                if let Some(transfer) = context.lease_transfer_after(&action) {
                    let hold_ms = match &transfer {
                        FaultAction::LeaseTransfer { hold_ms, .. } => *hold_ms,
                        _ => 0,
                    };
                    match driver.apply(&transfer).await {
                        Ok(()) => eprintln!(
                            "chaos: t={now:.1}s writes to the rows homed in {target} wait {:.1} s \
                             (lease transfer)",
                            hold_ms as f64 / 1000.0
                        ),
                        // The drill models a lease transfer it could not
                        // apply: going on would judge an easier outage than
                        // the drill file describes.
                        Err(error) => abort_drill(
                            &context,
                            &abort,
                            format!(
                                "the lease transfer of {target}'s rows was not applied at \
                                 t={now:.1}s: {error:#}"
                            ),
                        ),
                    }
                }
                windows
                    .lock()
                    .expect("faults lock")
                    .push(FaultWindow::opened(
                        fault.fault.as_str(),
                        &target,
                        began,
                        hook_run.into_iter().collect(),
                    ));
            }
            Ok(()) => {
                eprintln!(
                    "chaos: t={now:.1}s restored {} {target}",
                    fault.fault.as_str()
                );
                if let Some(id) = entries.remove(&index) {
                    if let Err(error) = journal.undone(id, "drill: the fault's end") {
                        eprintln!("chaos: {error:#}");
                    }
                }
                if let Some(window) = windows.lock().expect("faults lock").iter_mut().find(|w| {
                    w.target == target && w.kind == fault.fault.as_str() && w.end_s.is_none()
                }) {
                    window.end_s = Some(now);
                    window.hooks.extend(hook_run);
                }
            }
            // An actuator that did not act (a controller refusing the drain,
            // a hook failing) aborts the drill: going on would judge a fault
            // that never happened.
            Err(error) if start && fault.fault.actuator() => {
                let reason = format!(
                    "fault {} on {target} failed to start at t={now:.1}s: {error:#}",
                    fault.fault.as_str()
                );
                // A hook that failed to start is in the report all the
                // same, with the stop hook the rollback runs after it.
                if let Some(run) = hook_run {
                    windows
                        .lock()
                        .expect("faults lock")
                        .push(FaultWindow::opened(
                            fault.fault.as_str(),
                            &target,
                            began,
                            vec![run],
                        ));
                }
                abort_drill(&context, &abort, reason);
                return;
            }
            Err(error) => eprintln!(
                "chaos: fault {} on {target} failed: {error:#}",
                fault.fault.as_str()
            ),
        }
    }
}

/// Stops the drill for `reason`, which the report gives (the first reason
/// stands).
fn abort_drill(context: &MethodContext, abort: &AtomicBool, reason: String) {
    eprintln!("chaos: ABORT: {reason}");
    context
        .abort_reason
        .lock()
        .expect("abort lock")
        .get_or_insert(reason);
    abort.store(true, Ordering::Relaxed);
}

/// The drill file's fault as the driver's action: applied when `start`,
/// undone otherwise. A leader-kill kills the controller of `target`, the
/// leader's region found when the fault starts. `None` for an actuator
/// without the target's access.
pub(super) fn fault_action(
    fault: &Fault,
    target: &str,
    start: bool,
    context: &MethodContext,
) -> Option<FaultAction> {
    let target = target.to_owned();
    let on = start;
    Some(match fault.fault {
        FaultKind::RegionKill => FaultAction::RegionKill { target, on },
        FaultKind::RegionBlackhole => FaultAction::RegionBlackhole { target, on },
        FaultKind::LeaderKill => FaultAction::ControllerKill { target, on },
        FaultKind::ProberPartition => FaultAction::ProberPartition { target, on },
        FaultKind::Latency => FaultAction::Latency {
            target,
            on,
            delay_ms: fault.delay_ms,
        },
        FaultKind::DbStall => FaultAction::DbStall { target, on },
        FaultKind::DbCrash => FaultAction::DbCrash { on },
        FaultKind::CommitReset => FaultAction::CommitReset {
            target,
            on,
            share: fault.share,
        },
        FaultKind::ControllerDbCut => FaultAction::ControllerDbCut { target, on },
        FaultKind::Route53Throttle => FaultAction::Route53Throttle { on },
        FaultKind::Command | FaultKind::Http => crate::actuators::hook_action(fault, target, on),
        FaultKind::Evacuate => FaultAction::Evacuate {
            target,
            on,
            admin: context.actuators.as_ref()?.admin_api(fault, context.load_s),
        },
    })
}

/// Prints progress each second and raises the abort flag when the error
/// budget burn passes the drill's limit.
pub(super) async fn monitor(
    drill: &Drill,
    t0: Instant,
    duration: Duration,
    live: &LiveCounters,
    abort: &AtomicBool,
    abort_reason: &Mutex<Option<String>>,
    faults: &Mutex<Vec<FaultWindow>>,
) {
    let total_rate = drill.load.rate_per_client_region * drill.client_regions().len() as f64;
    let budget_requests = 1e-4 * 30.0 * 86_400.0 * total_rate;
    let mut success = super::conditions::SuccessWindow::new(&drill.abort);
    tokio::time::sleep_until(t0.into()).await;
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.tick().await;
    while t0.elapsed() < duration + Duration::from_millis(drill.load.request_timeout_ms * 2) {
        ticker.tick().await;
        // A tripped stop condition (here, in the conditions' watcher, or
        // a fault that failed to start) ends the monitor, so that the
        // drill rolls back at once instead of at the end of the load.
        if abort.load(Ordering::Relaxed) {
            break;
        }
        let window = live.take_window();
        let active: Vec<String> = faults
            .lock()
            .expect("faults lock")
            .iter()
            .filter(|f| f.end_s.is_none())
            .map(|f| format!("{} {}", f.kind, f.target))
            .collect();
        let phase = if t0.elapsed() > duration {
            "draining load".to_owned()
        } else if active.is_empty() {
            "steady".to_owned()
        } else {
            format!("fault: {}", active.join(", "))
        };
        let ratios: Vec<String> = window
            .iter()
            .map(|(region, (ok, bad))| {
                let total = ok + bad;
                let ratio = if total == 0 {
                    100.0
                } else {
                    *ok as f64 * 100.0 / total as f64
                };
                format!("{region} {ratio:5.1}%")
            })
            .collect();
        eprintln!(
            "chaos: t={:5.1}s  {:<40} {}",
            t0.elapsed().as_secs_f64(),
            phase,
            ratios.join("  ")
        );
        let burned = live.failed_total.load(Ordering::Relaxed) as f64 / budget_requests;
        let mut tripped = (burned > drill.abort.max_error_budget_share).then(|| {
            format!(
                "stop condition abort.max_error_budget_share: {:.1}% of the 30-day error budget burned, above the limit of {:.1}%",
                burned * 100.0,
                drill.abort.max_error_budget_share * 100.0
            )
        });
        if let Some(success) = &mut success {
            let (ok, failed) = window
                .values()
                .fold((0, 0), |(a, b), (ok, failed)| (a + ok, b + failed));
            if let Some(reason) = success.observe(ok, failed) {
                tripped.get_or_insert(reason);
            }
        }
        if let Some(reason) = tripped {
            let mut slot = abort_reason.lock().expect("abort lock");
            if slot.is_none() {
                let reason = format!("{reason} (at t={:.1} s)", t0.elapsed().as_secs_f64());
                eprintln!("chaos: ABORT: {reason}");
                *slot = Some(reason);
            }
            abort.store(true, Ordering::Relaxed);
            return;
        }
    }
}

/// Polls the controllers' DNS from every client region every 100 ms (a
/// load runner polls its own region's from where it is).
pub(crate) async fn watch_dns(
    target: Target,
    clients: Vec<String>,
    t0: Instant,
    stop: Arc<AtomicBool>,
) -> Vec<DnsObservation> {
    let resolvers: Vec<_> = clients
        .iter()
        .map(|c| {
            (
                c.clone(),
                load::resolver(&target.dns_servers, Some(target.client_addresses[c]), false),
            )
        })
        .collect();
    let mut observations = Vec::new();
    // A question to a name server that does not answer can take seconds:
    // the stop does not wait for it.
    let stopped = || async {
        while !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    while !stop.load(Ordering::Relaxed) {
        for (client, resolver) in &resolvers {
            let answer = tokio::select! {
                answer = resolver.lookup_ip(target.service_name.as_str()) => answer,
                () = stopped() => break,
            };
            if let Ok(answer) = answer {
                let regions = answer
                    .iter()
                    .filter_map(|ip| load::region_of(&target.instances, ip).map(str::to_owned))
                    .collect();
                observations.push(DnsObservation {
                    t: t0.elapsed().as_secs_f64(),
                    client: client.clone(),
                    regions,
                });
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    observations
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(lease_transfer: Option<Duration>) -> MethodContext {
        MethodContext {
            actuators: None,
            load_s: 60.0,
            abort_reason: Arc::default(),
            lease_transfer,
        }
    }

    /// A region's death (kill or blackhole) is followed by the drill's
    /// lease transfer of its rows; nothing else is, nor anything when the
    /// drill models none.
    #[test]
    fn a_lease_transfer_follows_a_regions_death_only() {
        let five = context(Some(Duration::from_secs(5)));
        let kill = |on| FaultAction::RegionKill {
            target: "eu-west-1".into(),
            on,
        };
        assert_eq!(
            five.lease_transfer_after(&kill(true)),
            Some(FaultAction::LeaseTransfer {
                target: "eu-west-1".into(),
                hold_ms: 5_000
            })
        );
        let blackhole = FaultAction::RegionBlackhole {
            target: "ap-southeast-1".into(),
            on: true,
        };
        assert!(five.lease_transfer_after(&blackhole).is_some());
        assert_eq!(five.lease_transfer_after(&kill(false)), None);
        let stall = FaultAction::DbStall {
            target: "eu-west-1".into(),
            on: true,
        };
        assert_eq!(five.lease_transfer_after(&stall), None);
        assert_eq!(context(None).lease_transfer_after(&kill(true)), None);
        assert_eq!(
            context(Some(Duration::ZERO)).lease_transfer_after(&kill(true)),
            None
        );
    }
}
