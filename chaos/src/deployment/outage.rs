//! The faults of the drills that travel a whole outage, on a running
//! deployment: the database crashed and restarted, commits whose answer is
//! lost, a controller replica cut off from the database, and the Route53
//! API throttling; and what the deployment needs for them (a database
//! server of its own, the controllers' own database paths, the loopback
//! Route53 API).

use std::time::Duration;

use anyhow::{bail, Context};

use super::Deployment;
use crate::outage::route53::{self, LoopbackRoute53};
use crate::proxy::Mode;
use crate::spec::Overrides;

/// What a deployment needs for the outage drills.
#[derive(Debug, Clone, Default)]
pub struct OutageOptions {
    /// Start a PostgreSQL of its own even when given a server: a drill that
    /// crashes the database must never crash the server others share.
    pub own_database: bool,
    /// Also keep Route53 latency records, on a loopback Route53 API.
    pub route53: bool,
    pub overrides: Overrides,
}

/// Where a deployment in Route53 mode keeps its records, for drills.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Route53Info {
    /// The API itself (never throttled), to read the records.
    pub api_url: String,
    pub zone_id: String,
}

impl Deployment {
    /// Starts the loopback Route53 API when the deployment is in Route53
    /// mode (before the controllers, whose environment names it).
    pub(super) async fn start_route53(&mut self) -> anyhow::Result<()> {
        if !self.options.outage.route53 {
            return Ok(());
        }
        let api = LoopbackRoute53::start(&self.options.bin_dir, &self.options.run_dir.join("logs"))
            .await?;
        self.route53 = Some(api);
        Ok(())
    }

    /// In Route53 mode, waits until the leader has created every region's
    /// record, so that a drill starts from a converged zone.
    pub(super) async fn wait_route53_records(&self, within: Duration) -> anyhow::Result<()> {
        let Some(api) = &self.route53 else {
            return Ok(());
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let started = std::time::Instant::now();
        let mut present = Default::default();
        while started.elapsed() < within {
            present = route53::record_regions(&http, &api.api_url, &api.zone_id)
                .await
                .unwrap_or_default();
            if self.options.regions.iter().all(|r| present.contains(r)) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        bail!(
            "the controllers did not create every region's Route53 record within {within:?} \
             (present: {present:?}; logs in {})",
            self.options.run_dir.join("logs").display()
        )
    }

    pub fn route53_info(&self) -> Option<Route53Info> {
        self.route53.as_ref().map(|api| Route53Info {
            api_url: api.api_url.clone(),
            zone_id: api.zone_id.clone(),
        })
    }

    /// The controllers' environment beside their configuration file: in
    /// Route53 mode, the loopback API.
    pub(super) fn controller_outage_env(&self) -> Vec<(String, String)> {
        self.route53
            .as_ref()
            .map(LoopbackRoute53::controller_env)
            .unwrap_or_default()
    }

    /// SIGKILLs the database server (`on`) or restarts it on the same data
    /// directory. Only a server the deployment started can be crashed.
    pub fn crash_database(&mut self, on: bool) -> anyhow::Result<()> {
        let postgres = self.postgres.as_ref().context(
            "the deployment uses an external PostgreSQL server, which a drill never crashes",
        )?;
        // pg_ctl waits for crash recovery; the drill's other tasks run on
        // the runtime's other threads meanwhile.
        tokio::task::block_in_place(|| {
            if on {
                postgres.crash()
            } else {
                postgres.restart()
            }
        })?;
        self.database_crashed = on;
        Ok(())
    }

    /// Restarts a crashed database (a rollback).
    pub(super) fn restore_database(&mut self) -> anyhow::Result<()> {
        if self.database_crashed {
            self.crash_database(false)?;
        }
        Ok(())
    }

    /// Cuts the answer of `share` of the commits on the region's service
    /// database path (`None`: none).
    pub fn reset_commits(&mut self, name: &str, share: Option<f64>) -> anyhow::Result<()> {
        self.region(name)?
            .database_proxy
            .set_commit_reset(share.unwrap_or(0.0));
        Ok(())
    }

    /// Commits cut on every region's database path so far.
    pub fn commits_cut(&self) -> u64 {
        self.regions
            .iter()
            .map(|r| r.database_proxy.commits_cut())
            .sum()
    }

    /// Holds (or releases) the database connections of the region's
    /// controller replica only; its service instances keep theirs.
    pub fn cut_controller_database(&mut self, name: &str, on: bool) -> anyhow::Result<()> {
        self.region(name)?
            .controller_database_proxy
            .set_mode(if on { Mode::Hold } else { Mode::Pass });
        Ok(())
    }

    /// The loopback Route53 API answers Throttling to every call while on.
    pub fn throttle_route53(&mut self, on: bool) -> anyhow::Result<()> {
        match &self.route53 {
            Some(api) => {
                api.set_throttling(on);
                Ok(())
            }
            None if !on => Ok(()),
            None => bail!("the deployment is not in Route53 mode (topology.route53)"),
        }
    }
}
