//! The fault operations on a running deployment, and [`FaultAction`], the
//! one wire form that names them: the drill's fault driver sends it to the
//! in-process deployment or through `POST /faults` of `chaos up`'s control
//! API, and [`Deployment::apply`] is the only place that interprets it.

use std::time::Duration;

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};
use tokio::process::Command;

use super::setup::{replace_host, signal_child, signal_pid, spawn_logged};
use super::Deployment;
use crate::proxy::Mode;

/// One fault to apply (`on: true`) or undo (`on: false`), or a restore.
///
/// On the wire: `{"kind": "region-kill", "target": "eu-west-1", "on": true}`,
/// `{"kind": "latency", "target": "eu-west-1", "on": true, "delay_ms": 200}`,
/// `{"kind": "heal-network"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum FaultAction {
    /// SIGKILL every process of the region and refuse its addresses; undone
    /// by restarting them.
    RegionKill { target: String, on: bool },
    /// The region's addresses hang and its processes are stopped (SIGSTOP).
    RegionBlackhole { target: String, on: bool },
    /// SIGKILL the region's controller replica (the drill's leader-kill
    /// names the leader's region); undone by restarting it.
    ControllerKill { target: String, on: bool },
    /// The region's prober is cut off from every other region.
    ProberPartition { target: String, on: bool },
    /// Added delay on the region's service traffic.
    Latency {
        target: String,
        on: bool,
        #[serde(default)]
        delay_ms: Option<u64>,
    },
    /// The region's database connections hang.
    DbStall { target: String, on: bool },
    /// The database server is SIGKILLed; undone by restarting it.
    DbCrash { on: bool },
    /// A share of the commits on the region's service database path lose
    /// their answer.
    CommitReset {
        target: String,
        on: bool,
        #[serde(default)]
        share: Option<f64>,
    },
    /// The region's controller replica is cut off from the database.
    ControllerDbCut { target: String, on: bool },
    /// The Route53 API answers Throttling.
    Route53Throttle { on: bool },
    /// Writes to the rows homed in the (dead) region wait for `hold_ms`,
    /// as while CockroachDB moves the leases the region held; sent by the
    /// drill right after it kills or blackholes the region, when its
    /// `topology.wan.lease_transfer_s` is set. It ends by itself: nothing
    /// to undo or journal.
    LeaseTransfer { target: String, hold_ms: u64 },
    /// The region drained through the controllers' admin API (an
    /// actuator: the drill applies it itself, a deployment refuses it).
    Evacuate {
        target: String,
        on: bool,
        admin: crate::actuators::evacuate::AdminApi,
    },
    /// A fault started (`on`) by running `start` and stopped by running
    /// `stop`, argv lists without a shell (an actuator).
    Command {
        #[serde(default)]
        target: String,
        on: bool,
        start: Vec<String>,
        stop: Vec<String>,
        timeout_s: f64,
    },
    /// A fault started (`on`) by calling `start` and stopped by calling
    /// `stop` (an actuator); header values from the environment are named,
    /// never held.
    Http {
        #[serde(default)]
        target: String,
        on: bool,
        start: crate::actuators::http::HttpHook,
        stop: crate::actuators::http::HttpHook,
        timeout_s: f64,
    },
    /// Every proxy back to pass-through, every stopped process resumed.
    HealNetwork,
    /// Heal, resume and restart every killed process.
    RestoreAll,
}

impl FaultAction {
    /// The region the action is aimed at, if any.
    pub fn target(&self) -> Option<&str> {
        match self {
            Self::RegionKill { target, .. }
            | Self::RegionBlackhole { target, .. }
            | Self::ControllerKill { target, .. }
            | Self::ProberPartition { target, .. }
            | Self::Latency { target, .. }
            | Self::DbStall { target, .. }
            | Self::CommitReset { target, .. }
            | Self::ControllerDbCut { target, .. }
            | Self::LeaseTransfer { target, .. }
            | Self::Evacuate { target, .. } => Some(target),
            Self::Command { target, .. } | Self::Http { target, .. } if !target.is_empty() => {
                Some(target)
            }
            Self::Command { .. } | Self::Http { .. } => None,
            Self::HealNetwork
            | Self::RestoreAll
            | Self::DbCrash { .. }
            | Self::Route53Throttle { .. } => None,
        }
    }
}

impl Deployment {
    /// Applies or undoes one fault.
    /// Applies `action`, and for a lease transfer waits until the dead
    /// region's rows are locked: a transfer that cannot lock them fails
    /// here, so that the drill does not go on as if it had been applied.
    pub async fn apply_async(&mut self, action: &FaultAction) -> anyhow::Result<()> {
        if let FaultAction::LeaseTransfer { target, hold_ms } = action {
            self.region(target)?;
            return super::leases::start(
                self.database_url.clone(),
                target.clone(),
                Duration::from_millis(*hold_ms),
            )
            .await;
        }
        self.apply(action)
    }

    pub fn apply(&mut self, action: &FaultAction) -> anyhow::Result<()> {
        match action {
            FaultAction::RegionKill { target, on: true } => self.kill_region(target),
            FaultAction::RegionKill { target, on: false }
            | FaultAction::ControllerKill { target, on: false } => self.start_region(target),
            FaultAction::RegionBlackhole { target, on } => self.blackhole_region(target, *on),
            FaultAction::LeaseTransfer { .. } => anyhow::bail!(
                "a lease transfer is applied with apply_async (it waits for its locks)"
            ),
            FaultAction::ControllerKill { target, on: true } => self.kill_controller(target),
            FaultAction::ProberPartition { target, on } => self.partition_prober(target, *on),
            FaultAction::Latency {
                target,
                on,
                delay_ms,
            } => {
                let delay = delay_ms.filter(|_| *on).map(Duration::from_millis);
                self.delay_region(target, delay)
            }
            FaultAction::DbStall { target, on } => self.stall_database(target, *on),
            FaultAction::DbCrash { on } => self.crash_database(*on),
            FaultAction::CommitReset { target, on, share } => {
                self.reset_commits(target, share.filter(|_| *on))
            }
            FaultAction::ControllerDbCut { target, on } => {
                self.cut_controller_database(target, *on)
            }
            FaultAction::Route53Throttle { on } => self.throttle_route53(*on),
            FaultAction::HealNetwork => self.heal_network(),
            FaultAction::RestoreAll => self.restore_all(),
            FaultAction::Evacuate { .. }
            | FaultAction::Command { .. }
            | FaultAction::Http { .. } => anyhow::bail!(
                "evacuate, command and http are actuators, which the drill carries out itself; a \
                 deployment does not apply them"
            ),
        }
    }

    /// Whether `name` is one of the deployment's regions.
    pub fn has_region(&self, name: &str) -> bool {
        self.regions.iter().any(|r| r.name == name)
    }

    /// Starts every process of `name` that is not running, proxies open.
    pub fn start_region(&mut self, name: &str) -> anyhow::Result<()> {
        let bin_dir = self.options.bin_dir.clone();
        let logs = self.options.run_dir.join("logs");
        let database_url = self.database_url.clone();
        let config = self.controller_config.clone();
        let token = self.admin_token.clone();
        let outage_env = self.controller_outage_env();
        let region = self.region_mut(name)?;
        let via_proxy = replace_host(&database_url, region.database_proxy.listen);
        let controller_via_proxy =
            replace_host(&database_url, region.controller_database_proxy.listen);
        region.database_proxy.heal();
        region.controller_database_proxy.heal();
        for instance in &mut region.instances {
            instance.proxy.heal();
            if instance.child.is_none() {
                // The service's production settings (its defaults, as k8s/
                // runs it): the pool of 16 (with 8, a region's write load
                // alone kept its pool nearly full, and any slower second
                // shed requests), the readiness timeout and the drain-flag
                // refresh. Only the drain period differs: it delays a
                // SIGTERM's exit, which the drills send only at teardown.
                let mut command = Command::new(bin_dir.join("service"));
                command
                    .env("SERVICE_REGION", &region.name)
                    .env("SERVICE_INSTANCE_ID", &instance.id)
                    .env("SERVICE_LISTEN_ADDRESS", instance.listen.to_string())
                    .env("SERVICE_ADMIN_ADDRESS", instance.admin.to_string())
                    .env("SERVICE_DATABASE_URL", &via_proxy)
                    .env("SERVICE_DRAIN_PERIOD_MS", "0");
                instance.child = Some(spawn_logged(command, &logs, &instance.id)?);
            }
        }
        if region.controller.is_none() {
            let mut command = Command::new(bin_dir.join("failover-controller"));
            command
                .arg("run")
                .env("FAILOVER_CONFIG", &config)
                .env("FAILOVER_REGION", &region.name)
                .env(
                    "FAILOVER_CONTROLLER_ID",
                    format!("controller-{}", region.name),
                )
                .env("FAILOVER_HTTP_LISTEN", region.controller_http.to_string())
                .env("FAILOVER_DNS_LISTEN", region.controller_dns.to_string())
                .env(
                    "FAILOVER_PROBE__LOCAL_ADDRESS",
                    region.controller_http.ip().to_string(),
                )
                .env("FAILOVER_DATABASE_URL", &controller_via_proxy)
                .env("FAILOVER_ADMIN_TOKEN", &token)
                .envs(outage_env);
            region.controller = Some(spawn_logged(
                command,
                &logs,
                &format!("controller-{}", region.name),
            )?);
        }
        Ok(())
    }

    /// SIGKILL every process of the region and close its addresses.
    pub fn kill_region(&mut self, name: &str) -> anyhow::Result<()> {
        let region = self.region_mut(name)?;
        for instance in &mut region.instances {
            instance.proxy.set_mode(Mode::Down);
            signal_child(instance.child.take(), Signal::SIGKILL);
        }
        signal_child(region.controller.take(), Signal::SIGKILL);
        Ok(())
    }

    /// The region's addresses stop answering: connections hang. Its
    /// processes are stopped (SIGSTOP) so the controller's DNS hangs too.
    pub fn blackhole_region(&mut self, name: &str, on: bool) -> anyhow::Result<()> {
        let region = self.region_mut(name)?;
        let signal = if on { Signal::SIGSTOP } else { Signal::SIGCONT };
        for instance in &region.instances {
            instance
                .proxy
                .set_mode(if on { Mode::Hold } else { Mode::Pass });
            signal_pid(instance.child.as_ref(), signal);
        }
        signal_pid(region.controller.as_ref(), signal);
        Ok(())
    }

    /// Added delay on the region's service traffic.
    pub fn delay_region(&mut self, name: &str, delay: Option<Duration>) -> anyhow::Result<()> {
        for instance in &self.region(name)?.instances {
            instance
                .proxy
                .set_mode(delay.map_or(Mode::Pass, Mode::Delay));
        }
        Ok(())
    }

    /// Holds (or releases) the region's database connections, its
    /// instances' and its controller's.
    pub fn stall_database(&mut self, name: &str, on: bool) -> anyhow::Result<()> {
        let region = self.region(name)?;
        let mode = if on { Mode::Hold } else { Mode::Pass };
        region.database_proxy.set_mode(mode);
        region.controller_database_proxy.set_mode(mode);
        Ok(())
    }

    /// Cuts the prober of `name` off from every other region (and heals it).
    pub fn partition_prober(&mut self, name: &str, on: bool) -> anyhow::Result<()> {
        let source = self.region(name)?.controller_http.ip();
        for region in self.regions.iter().filter(|r| r.name != name) {
            for instance in &region.instances {
                if on {
                    instance.proxy.block_source(source);
                } else {
                    instance.proxy.heal();
                }
            }
        }
        Ok(())
    }

    /// SIGKILL the controller replica of `name`.
    pub fn kill_controller(&mut self, name: &str) -> anyhow::Result<()> {
        signal_child(self.region_mut(name)?.controller.take(), Signal::SIGKILL);
        Ok(())
    }

    /// The region whose controller holds the lease, asked over /status.
    pub async fn leader(&self) -> Option<String> {
        leader_among(
            self.regions
                .iter()
                .map(|r| (r.name.clone(), format!("http://{}", r.controller_http)))
                .collect(),
        )
        .await
    }

    /// Every proxy back to pass-through (no blackhole, delay, stall or
    /// partition) and every stopped process resumed.
    pub fn heal_network(&mut self) -> anyhow::Result<()> {
        for name in self.options.regions.clone() {
            self.blackhole_region(&name, false)?;
            self.partition_prober(&name, false)?;
            self.delay_region(&name, None)?;
            self.stall_database(&name, false)?;
            self.reset_commits(&name, None)?;
        }
        self.throttle_route53(false)?;
        Ok(())
    }

    /// Heals every proxy, resumes stopped processes, restarts killed ones.
    pub fn restore_all(&mut self) -> anyhow::Result<()> {
        self.restore_database()?;
        for name in self.options.regions.clone() {
            self.blackhole_region(&name, false)?;
            self.start_region(&name)?;
        }
        Ok(())
    }
}

/// The region whose controller says, on `<base url>/status`, that it holds
/// the lease; each `(region, base url)` asked in turn, 500 ms each.
pub async fn leader_among(controllers: Vec<(String, String)>) -> Option<String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .ok()?;
    for (region, base) in controllers {
        let url = format!("{}/status", base.trim_end_matches('/'));
        if let Ok(response) = client.get(url).send().await {
            if let Ok(status) = response.json::<serde_json::Value>().await {
                if status["lease"]["held"] == true {
                    return Some(region);
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_actions_have_a_readable_wire_form() {
        let action: FaultAction = serde_json::from_str(
            r#"{"kind": "latency", "target": "eu-west-1", "on": true, "delay_ms": 200}"#,
        )
        .unwrap();
        assert_eq!(
            action,
            FaultAction::Latency {
                target: "eu-west-1".into(),
                on: true,
                delay_ms: Some(200)
            }
        );
        assert_eq!(
            serde_json::to_value(FaultAction::RegionKill {
                target: "eu-west-1".into(),
                on: false
            })
            .unwrap(),
            serde_json::json!({"kind": "region-kill", "target": "eu-west-1", "on": false})
        );
        let heal: FaultAction = serde_json::from_str(r#"{"kind": "heal-network"}"#).unwrap();
        assert_eq!(heal.target(), None);
        for bad in [
            r#"{"kind": "region-melt", "target": "x", "on": true}"#,
            r#"{"kind": "region-kill", "target": "x"}"#,
            r#"{"kind": "region-kill", "target": "x", "on": true, "delay": 5}"#,
        ] {
            assert!(serde_json::from_str::<FaultAction>(bad).is_err(), "{bad}");
        }
    }
}
