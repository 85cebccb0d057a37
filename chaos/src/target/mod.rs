//! Target files: what `chaos check --target` and `chaos drill --target`
//! know of a deployment that exists (the local one of `chaos up`, or a real
//! one): its public name, the resolvers or name servers to ask, per region
//! the service endpoints and the controller's admin URL, where the secrets
//! come from (environment variables or files, never the file itself), the
//! optional ledger database and Prometheus, the vantage points, the blast
//! radius, and for a `chaos up` deployment its control API.
//!
//! Layout: this module is the format and its validation; `secret` the
//! secret references; `write` the YAML writer and what `chaos up` writes;
//! `preflight` the checks run before a drill; `guard` the blast-radius
//! guard.

pub mod deployment;
pub mod guard;
pub mod preflight;
pub mod secret;
mod write;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use self::secret::{Secret, SecretError, SecretRef};
pub use self::write::{local_target, write_target, TARGET_FILE};

/// A deployment to check and drill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// Shown in reports.
    pub name: String,
    pub service: ServiceTarget,
    pub dns: DnsTarget,
    /// By region name.
    pub regions: BTreeMap<String, RegionTarget>,
    pub controller: ControllerTarget,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ledger: Option<LedgerTarget>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusTarget>,
    /// Where the load comes from; empty: this machine, default source.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vantage_points: Vec<VantagePoint>,
    pub blast_radius: BlastRadius,
    /// Only for a `chaos up` deployment: its control API, for local faults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<LocalTarget>,
    /// The directory of the target file, where relative paths start.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceTarget {
    /// The name clients resolve (what the controllers serve).
    pub public_name: String,
    /// An extra CA for the endpoints' HTTPS (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// The API key the drill's load and checks present.
    pub api_key: SecretRef,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsTarget {
    /// Recursive resolvers, by the vantage point (region) whose clients
    /// use them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resolvers: BTreeMap<String, SocketAddr>,
    /// The zone's authoritative name servers (the controllers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<SocketAddr>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionTarget {
    /// Base URLs of the region's instances or its load balancer.
    pub endpoints: Vec<String>,
    /// The region's controller replica: `/status`, `/readyz`, admin API.
    pub controller_admin_url: String,
    /// The addresses DNS hands out for the region (default: the endpoints'
    /// hosts, when they are IP addresses).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_addresses: Vec<IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControllerTarget {
    pub admin_token: SecretRef,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerTarget {
    /// A read-only URL is enough: the checks only read.
    pub database_url: SecretRef,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusTarget {
    pub url: String,
    /// Share of the 30-day error budget already spent (1 = all of it);
    /// default: the SLO of monitoring/rules.yaml.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_spent_query: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VantagePoint {
    /// The region whose clients this vantage point stands for.
    pub region: String,
    /// Source address of its queries and requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_address: Option<IpAddr>,
    /// The recursive resolver its clients use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolver: Option<SocketAddr>,
    /// A load runner (`chaos runner`) that sends this region's load from
    /// where its clients are; without one, this machine sends it. The
    /// runner uses `source_address` and `resolver` when given; without a
    /// `resolver`, its machine's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner: Option<RunnerTarget>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunnerTarget {
    /// `chaos runner`'s URL: https:// unless the path to it is private.
    pub url: String,
    /// The runner's bearer token (`--token-file` of `chaos runner`).
    pub token: SecretRef,
    /// PEM of the CA of the runner's certificate; default: public roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlastRadius {
    /// Regions a drill may fault or drain.
    pub may_touch: Vec<String>,
    /// Regions that must keep serving throughout.
    pub min_serving_regions: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalTarget {
    /// `chaos up`'s control API.
    pub control_url: String,
    pub token: SecretRef,
}

/// Why a target file was refused.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("cannot read target file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid target file {}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

impl Target {
    /// Reads, parses and validates; relative paths in it are relative to
    /// the file's directory.
    pub fn load(path: &Path) -> Result<Self, TargetError> {
        let text = std::fs::read_to_string(path).map_err(|source| TargetError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut target = Self::parse(&text).map_err(|message| TargetError::Invalid {
            path: path.to_owned(),
            message,
        })?;
        target.base_dir = path
            .parent()
            .filter(|dir| !dir.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_owned();
        Ok(target)
    }

    /// Parses and validates; the error names the field.
    pub fn parse(text: &str) -> Result<Self, String> {
        let target: Target = crate::spec::parse_yaml(text)?;
        target.validate()?;
        Ok(target)
    }

    fn validate(&self) -> Result<(), String> {
        let bad = |field: &str, problem: &str| Err(format!("field `{field}`: {problem}"));
        if self.name.trim().is_empty() {
            return bad("name", "must not be empty");
        }
        if self.service.public_name.trim().is_empty() {
            return bad("service.public_name", "must not be empty");
        }
        if self.regions.is_empty() {
            return bad("regions", "must name at least one region");
        }
        for (name, region) in &self.regions {
            if region.endpoints.is_empty() {
                return bad(
                    &format!("regions.{name}.endpoints"),
                    "must list at least one endpoint URL",
                );
            }
            for (i, endpoint) in region.endpoints.iter().enumerate() {
                check_url(&format!("regions.{name}.endpoints[{i}]"), endpoint)?;
            }
            check_url(
                &format!("regions.{name}.controller_admin_url"),
                &region.controller_admin_url,
            )?;
        }
        if self.dns.resolvers.is_empty() && self.dns.nameservers.is_empty() {
            return bad(
                "dns",
                "needs `resolvers` (recursive resolvers by vantage point) or `nameservers` \
                 (the zone's authoritative servers)",
            );
        }
        if let Some(prometheus) = &self.prometheus {
            check_url("prometheus.url", &prometheus.url)?;
        }
        if let Some(local) = &self.local {
            check_url("local.control_url", &local.control_url)?;
        }
        for (i, vantage) in self.vantage_points.iter().enumerate() {
            if !self.regions.contains_key(&vantage.region) {
                return bad(
                    &format!("vantage_points[{i}].region"),
                    &format!("{:?} is not one of `regions`", vantage.region),
                );
            }
            if self.vantage_points[..i]
                .iter()
                .any(|other| other.region == vantage.region)
            {
                return bad(
                    &format!("vantage_points[{i}].region"),
                    &format!(
                        "{:?} has a vantage point already: one per region",
                        vantage.region
                    ),
                );
            }
            if let Some(runner) = &vantage.runner {
                check_url(&format!("vantage_points[{i}].runner.url"), &runner.url)?;
            }
        }
        let blast = &self.blast_radius;
        if let Some(unknown) = blast
            .may_touch
            .iter()
            .find(|r| !self.regions.contains_key(*r))
        {
            return bad(
                "blast_radius.may_touch",
                &format!("{unknown:?} is not one of `regions`"),
            );
        }
        if blast.min_serving_regions > self.regions.len() {
            return bad(
                "blast_radius.min_serving_regions",
                &format!(
                    "{} is more than the {} regions of the target",
                    blast.min_serving_regions,
                    self.regions.len()
                ),
            );
        }
        Ok(())
    }

    /// A path of the file, relative to its directory unless absolute.
    pub fn path(&self, path: &Path) -> PathBuf {
        self.base_dir.join(path)
    }

    /// The addresses DNS hands out for `region`: `dns_addresses`, or the
    /// endpoints' hosts that are IP addresses.
    pub fn dns_addresses(&self, region: &RegionTarget) -> Vec<IpAddr> {
        if !region.dns_addresses.is_empty() {
            return region.dns_addresses.clone();
        }
        region
            .endpoints
            .iter()
            .filter_map(|endpoint| url::Url::parse(endpoint).ok())
            .filter_map(|url| match url.host()? {
                url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
                url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
                url::Host::Domain(_) => None,
            })
            .collect()
    }
}

fn check_url(field: &str, text: &str) -> Result<(), String> {
    match url::Url::parse(text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(()),
        Ok(_) => Err(format!(
            "field `{field}`: {text:?} is not an http:// or https:// URL"
        )),
        Err(error) => Err(format!("field `{field}`: {text:?} is not a URL: {error}")),
    }
}

#[cfg(test)]
mod tests;
