//! Rolling back what a journal says is still applied (the drill at its end,
//! on abort and on an emergency stop; `chaos rollback` after a drill died),
//! and the check that ends every rollback: every region serving (each
//! instance's `/readyz` over HTTPS) and back in DNS (its own clients
//! answered with it by the controllers' DNS).

use std::time::{Duration, Instant};

use futures_util::future::join_all;

use super::{pending, read, Applied, Journal, JournalDeployment};
use crate::actuators::HookRun;
use crate::deployment::{DeploymentInfo, FaultAction};
use crate::driver::FaultDriver;

/// What one rollback did.
#[derive(Debug, Clone, Default)]
pub struct Undone {
    /// Entries undone now, newest first.
    pub undone: Vec<u64>,
    /// Entries whose undo and catch-all both failed, with the error.
    pub failed: Vec<(u64, String)>,
    /// The stop hooks run (a `command` or `http` fault's undo), with the
    /// action they undid, succeeded or not.
    pub hooks: Vec<(FaultAction, HookRun)>,
}

/// Undoes every applied-not-undone entry of `journal` through `driver`,
/// newest first, and records each success. An undo that fails falls back
/// to the entry's catch-all; one that still fails is recorded and the
/// others still run. Undoing twice is harmless: an undo of something
/// already undone (a region already running) succeeds and changes nothing.
pub async fn undo_pending(journal: &Journal, driver: &FaultDriver, by: &str) -> Undone {
    let mut result = Undone::default();
    let entries = match read(journal.path()) {
        Ok(records) => pending(&records),
        Err(error) => {
            eprintln!("chaos: rollback: {error:#}");
            result.failed.push((0, format!("{error:#}")));
            return result;
        }
    };
    for entry in entries.iter().rev() {
        let (outcome, hook) = undo_one(entry, driver).await;
        if let Some(hook) = &hook {
            eprintln!(
                "chaos: rollback: #{} stop hook: {}",
                entry.id,
                hook.summary()
            );
        }
        match outcome {
            Ok(how) => {
                eprintln!(
                    "chaos: rollback: #{} {} undone ({how})",
                    entry.id,
                    describe(&entry.action)
                );
                if let Err(error) =
                    journal.undone_with(entry.id, &format!("{by}: {how}"), hook.as_ref())
                {
                    eprintln!("chaos: rollback: {error:#}");
                }
                result.undone.push(entry.id);
            }
            Err(error) => {
                eprintln!(
                    "chaos: rollback: #{} {} NOT undone: {error}",
                    entry.id,
                    describe(&entry.action)
                );
                let _ = journal.undo_failed(entry.id, &error, hook.as_ref());
                result.failed.push((entry.id, error));
            }
        }
        result
            .hooks
            .extend(hook.map(|hook| (entry.action.clone(), hook)));
    }
    result
}

/// Undoes one entry; a hook fault's stop hook comes back with how it ran.
async fn undo_one(
    entry: &Applied,
    driver: &FaultDriver,
) -> (Result<&'static str, String>, Option<HookRun>) {
    if let (
        JournalDeployment::InProcess { run_dir },
        FaultDriver::Remote(_) | FaultDriver::Target(_),
    ) = (&entry.deployment, driver)
    {
        let error = format!(
            "it was applied to the deployment the drill ran in its own process (run directory \
             {}), which nothing can reach now: stop what is left of it by hand",
            run_dir.display()
        );
        return (Err(error), None);
    }
    // An actuator's undo (a stop hook, an undrain) is carried out by this
    // process, whatever the driver; a hook's run comes back with it.
    let (undo, hook) = match crate::actuators::apply(&entry.undo).await {
        Some((result, hook)) => (result, hook),
        None => (driver.apply(&entry.undo).await, None),
    };
    (undo_or_catch_all(entry, driver, undo).await, hook)
}

/// `undo`'s outcome, or the catch-all's after it failed.
async fn undo_or_catch_all(
    entry: &Applied,
    driver: &FaultDriver,
    undo: anyhow::Result<()>,
) -> Result<&'static str, String> {
    let Err(undo_error) = undo else {
        return Ok("its undo");
    };
    match driver.apply(&entry.catch_all).await {
        Ok(()) => Ok("the catch-all, after its undo failed"),
        Err(catch_all_error) => Err(format!(
            "undo {}: {undo_error:#}; catch-all {}: {catch_all_error:#}",
            describe(&entry.undo),
            describe(&entry.catch_all)
        )),
    }
}

/// `region-kill eu-west-1 (on)`, for people.
pub fn describe(action: &FaultAction) -> String {
    let json = serde_json::to_value(action).unwrap_or_default();
    let kind = json["kind"].as_str().unwrap_or("?");
    let target = action.target().map(|t| format!(" {t}")).unwrap_or_default();
    match json["on"].as_bool() {
        Some(true) => format!("{kind}{target} (on)"),
        Some(false) => format!("{kind}{target} (off)"),
        None => format!("{kind}{target}"),
    }
}

/// How long a rollback waits for every region: the controller's hold-down
/// (a restarted region is put back in DNS only after it) plus the probes
/// that prove it healthy, plus time for its processes to start. A setting
/// the drill does not know (a deployment known from its target file) is
/// taken as production's (k8s/); `chaos rollback --wait-s` overrides it.
pub fn restore_bound(info: &DeploymentInfo) -> Duration {
    let production = crate::controller_settings::ControllerSettings::production();
    let get = |key: &str| {
        info.controller
            .settings
            .iter()
            .chain(&production.settings)
            .find(|s| s.key == key)
            .map_or(0, |s| s.value)
    };
    let probes = get("probe.successes_to_up") + get("probe.failures_to_down") + 4;
    Duration::from_millis(
        get("decision.hold_down_base_ms") + probes * get("probe.interval_ms") + 10_000,
    )
}

/// Waits until every region serves and is in DNS, checking every 250 ms.
/// `Ok` is the time from `since` (the stop, or the rollback's start) to
/// the first check that found everything right; `Err` names what was still
/// wrong after `within`.
pub async fn wait_until_restored(
    info: &DeploymentInfo,
    since: Instant,
    within: Duration,
) -> Result<Duration, Vec<String>> {
    let deadline = since + within;
    loop {
        let wrong = problems(info).await;
        if wrong.is_empty() {
            return Ok(since.elapsed());
        }
        if Instant::now() >= deadline {
            return Err(wrong);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// What is wrong now, one sentence per region and problem; empty when every
/// region serves and is in DNS.
pub async fn problems(info: &DeploymentInfo) -> Vec<String> {
    let https = match info.instance_https(Some(Duration::from_secs(2))) {
        Ok(clients) => clients,
        Err(error) => return vec![format!("cannot build the HTTPS client: {error}")],
    };
    let instances = info.instance_addresses();
    let dns_servers: Vec<_> = info.regions.iter().map(|r| r.controller_dns).collect();
    let checks = info.regions.iter().map(|region| {
        let https = https.clone();
        let instances = &instances;
        let dns_servers = &dns_servers;
        async move {
            let mut wrong = Vec::new();
            for address in &region.instances {
                match https.get(*address, "/readyz").send().await {
                    Ok(response) if response.status().is_success() => {}
                    Ok(response) => wrong.push(format!(
                        "{}: instance {address} /readyz answered {}",
                        region.name,
                        response.status()
                    )),
                    Err(_) => wrong.push(format!(
                        "{}: instance {address} /readyz does not answer",
                        region.name
                    )),
                }
            }
            // As the drill's DNS watcher asks: from the region's client
            // address, so the controllers answer with its nearest serving
            // region, which is itself when it is in DNS. Every name server
            // is asked: each replica reads the shared state once a poll, so
            // one can still answer without a region the others have back,
            // and a resolver may ask any of them.
            let answers = join_all(dns_servers.iter().map(|server| async move {
                let resolver = crate::load::resolver(
                    std::slice::from_ref(server),
                    Some(region.client_address),
                    false,
                );
                (server, resolver.lookup_ip(info.service_name.as_str()).await)
            }))
            .await;
            for (server, answer) in answers {
                match answer {
                    Ok(answer) => {
                        let answered: Vec<String> = answer
                            .iter()
                            .filter_map(|ip| {
                                crate::load::region_of(instances, ip).map(str::to_owned)
                            })
                            .collect();
                        if !answered.contains(&region.name) {
                            wrong.push(format!(
                                "{}: not in DNS (the name server {server} sends its clients to {})",
                                region.name,
                                if answered.is_empty() {
                                    "no region".to_owned()
                                } else {
                                    answered.join(", ")
                                }
                            ));
                        }
                    }
                    Err(error) => wrong.push(format!(
                        "{}: the name server {server} does not answer its clients: {error}",
                        region.name
                    )),
                }
            }
            wrong
        }
    });
    join_all(checks).await.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_are_described_for_people() {
        assert_eq!(
            describe(&FaultAction::RegionKill {
                target: "eu-west-1".into(),
                on: true
            }),
            "region-kill eu-west-1 (on)"
        );
        assert_eq!(describe(&FaultAction::HealNetwork), "heal-network");
    }

    #[test]
    fn the_wait_covers_the_hold_down_and_the_probes() {
        let info: DeploymentInfo = serde_json::from_value(serde_json::json!({
            "regions": [], "instances_per_region": 2,
            "controller": crate::controller_settings::ControllerSettings::production(),
            "wan": null, "api_key": "", "service_name": "", "ca_pem": "",
            "database_url": "", "run_dir": "", "bin_dir": "", "postgres_version": "",
            "route53": null
        }))
        .unwrap();
        // Production: 10 s hold-down, 1 s probes, 3 up and 3 down.
        assert_eq!(restore_bound(&info), Duration::from_secs(10 + 10 + 10));
    }
}
