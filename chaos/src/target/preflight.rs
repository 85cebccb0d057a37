//! Preflight: the checks `chaos check --target` runs, and `chaos drill
//! --target` before any fault, so that a drill never starts on a deployment
//! that is already hurt (or on a target file that is wrong): DNS answers
//! for the public name, every region healthy and in DNS, the controllers
//! agree and one holds the lease, the admin token is accepted, the ledger
//! answers, the error budget is not already spent.
//!
//! Every check reports what it expected and what it observed; a failing
//! one never stops the others. Secrets are resolved here, and a reference
//! that cannot be resolved fails the check that needs it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Target;

/// The exit code of `chaos check --target` and `chaos drill --target`
/// when a preflight check fails.
pub const PREFLIGHT_FAILED_EXIT_CODE: i32 = 3;

/// Default `prometheus.budget_spent_query`: the share of the 30-day error
/// budget of the 99.99% SLO (monitoring/rules.yaml) already spent.
pub const DEFAULT_BUDGET_SPENT_QUERY: &str = "(sum(increase(service_http_requests_total{route!~\"/livez|/readyz|/healthz/region|/healthz/instance|/metrics\",status=~\"5..\"}[30d])) / sum(increase(service_http_requests_total{route!~\"/livez|/readyz|/healthz/region|/healthz/instance|/metrics\"}[30d]))) / 0.0001";

/// The result of every check; goes into the drill's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preflight {
    /// The target's `name`.
    pub target: String,
    pub checked_at: DateTime<Utc>,
    /// No check failed (skipped ones do not count).
    pub passed: bool,
    pub checks: Vec<PreflightCheck>,
    /// The checks that failed on earlier passes of a drill's preflight,
    /// which checks again a few seconds later before it refuses to start
    /// (`run_for_drill`); empty when the first pass decided.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_earlier: Vec<PreflightCheck>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreflightCheck {
    pub name: String,
    pub outcome: Outcome,
    pub expected: String,
    pub observed: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    /// Not configured in the target.
    Skipped,
}

impl Preflight {
    /// One line per check, for people.
    pub fn render(&self) -> String {
        let mut text = format!("preflight of target {}:\n", self.target);
        for check in &self.checks {
            let mark = match check.outcome {
                Outcome::Pass => "pass",
                Outcome::Fail => "FAIL",
                Outcome::Skipped => "skip",
            };
            text.push_str(&format!(
                "  [{mark}] {}\n         expected {}\n         observed {}\n",
                check.name, check.expected, check.observed
            ));
        }
        let failed = self
            .checks
            .iter()
            .filter(|c| c.outcome == Outcome::Fail)
            .count();
        for check in &self.failed_earlier {
            text.push_str(&format!(
                "  [earlier pass FAILED] {}: observed {}\n",
                check.name, check.observed
            ));
        }
        text.push_str(&if failed == 0 {
            "preflight passed\n".to_owned()
        } else {
            format!(
                "preflight FAILED: {failed} of {} checks\n",
                self.checks.len()
            )
        });
        text
    }
}

/// Further readings of the controllers' views, a second apart, before
/// their disagreement fails preflight.
const AGREEMENT_READS: usize = 3;

/// Passes a drill's preflight makes before the drill refuses to start,
/// and the pause between them.
pub const DRILL_PASSES: usize = 3;
pub const DRILL_RECHECK_AFTER: Duration = Duration::from_secs(2);

/// A drill's preflight: `run`, and while it fails, again after
/// `DRILL_RECHECK_AFTER`, up to `DRILL_PASSES` passes. A deployment
/// between two polls of its own (a replica that has just restarted, a
/// health answer late on a busy machine) passes a few seconds later; one
/// that is not ready fails every pass and the drill does not start. Each
/// failed pass goes to `on_failed_pass` (pass number, result), and its
/// failed checks into the result's `failed_earlier`.
pub async fn run_for_drill(
    target: &Target,
    mut on_failed_pass: impl FnMut(usize, &Preflight),
) -> Preflight {
    let mut failed_earlier = Vec::new();
    for pass in 1.. {
        let mut result = run(target).await;
        if result.passed || pass == DRILL_PASSES {
            result.failed_earlier = failed_earlier;
            return result;
        }
        on_failed_pass(pass, &result);
        failed_earlier.extend(
            result
                .checks
                .into_iter()
                .filter(|c| c.outcome == Outcome::Fail),
        );
        tokio::time::sleep(DRILL_RECHECK_AFTER).await;
    }
    unreachable!("the loop returns on its last pass")
}

/// Runs every check against `target`.
pub async fn run(target: &Target) -> Preflight {
    let mut checks = Vec::new();
    let http = match http_client(target) {
        Ok(client) => client,
        Err(error) => {
            checks.push(fail(
                "HTTPS client with the target's CA",
                "service.ca_file readable PEM",
                format!("{error:#}"),
            ));
            reqwest::Client::new()
        }
    };
    let answers = dns::answers(target).await;
    checks.extend(dns::answer_checks(target, &answers));
    for (name, region) in &target.regions {
        checks.push(health::region_healthy(&http, name, region).await);
        checks.push(dns::region_in_dns(target, name, region, &answers));
    }
    // Each replica reads the shared state once a poll: one that has just
    // restarted, or read it a moment before the others, can differ for a
    // poll or two. A disagreement that outlasts a few seconds is real.
    let mut statuses = controllers::statuses(&http, target).await;
    let mut agreement = controllers::agree(&statuses);
    for _ in 0..AGREEMENT_READS {
        if agreement.outcome != Outcome::Fail {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        statuses = controllers::statuses(&http, target).await;
        agreement = controllers::agree(&statuses);
    }
    checks.push(agreement);
    checks.push(controllers::leader(&statuses));
    checks.push(controllers::admin_token_accepted(&http, target).await);
    checks.extend(runners(target).await);
    checks.push(health::ledger(target).await);
    checks.push(health::error_budget(&http, target).await);
    Preflight {
        target: target.name.clone(),
        checked_at: Utc::now(),
        passed: checks.iter().all(|c| c.outcome != Outcome::Fail),
        checks,
        failed_earlier: Vec::new(),
    }
}

/// Each vantage point's load runner answers with its clock, the token
/// accepted.
async fn runners(target: &Target) -> Vec<PreflightCheck> {
    let mut checks = Vec::new();
    for (i, vantage) in target.vantage_points.iter().enumerate() {
        let Some(runner) = &vantage.runner else {
            continue;
        };
        let name = format!("load runner of {} answers", vantage.region);
        let expected = format!("{} accepts the token and gives its clock", runner.url);
        checks.push(
            match crate::runner::client::RemoteRunner::connect(target, i).await {
                Ok(connected) => {
                    let clock = connected.clock;
                    check(
                        name,
                        true,
                        expected,
                        format!(
                            "round trip {:.1} ms, its clock {:+.1} ms from this machine's",
                            clock.rtt_ms, clock.offset_ms
                        ),
                    )
                }
                Err(error) => fail(name, expected, format!("{error:#}")),
            },
        );
    }
    checks
}

fn check(
    name: impl Into<String>,
    passed: bool,
    expected: impl Into<String>,
    observed: impl Into<String>,
) -> PreflightCheck {
    PreflightCheck {
        name: name.into(),
        outcome: if passed { Outcome::Pass } else { Outcome::Fail },
        expected: expected.into(),
        observed: observed.into(),
    }
}

fn fail(
    name: impl Into<String>,
    expected: impl Into<String>,
    observed: impl Into<String>,
) -> PreflightCheck {
    check(name, false, expected, observed)
}

/// HTTPS trusting the target's CA (besides the public roots) when it
/// names one; short timeouts: a preflight that hangs helps nobody.
fn http_client(target: &Target) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(Duration::from_secs(3));
    if let Some(ca_file) = &target.service.ca_file {
        let path = target.path(ca_file);
        builder = crate::deployment::tls::trust_ca_file(builder, &path, "service.ca_file")?;
    }
    builder.build().map_err(Into::into)
}

fn list<T: ToString>(items: impl IntoIterator<Item = T>) -> String {
    let items: Vec<String> = items.into_iter().map(|i| i.to_string()).collect();
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

mod dns {
    //! DNS answers for the public name, and which regions they send to.
    use super::*;

    /// One server's answer as seen from one source.
    pub struct Answer {
        /// "resolver us-east-1 (127.0.1.53:5300)" or "name server ... from ...".
        pub via: String,
        pub authoritative: bool,
        pub result: Result<BTreeSet<IpAddr>, String>,
    }

    /// Asks every resolver (the `dns.resolvers` and the vantage points'),
    /// and every name server from every vantage point's source address
    /// (the controllers answer by client region).
    pub async fn answers(target: &Target) -> Vec<Answer> {
        let name = &target.service.public_name;
        let mut resolvers: BTreeMap<SocketAddr, String> = BTreeMap::new();
        for (vantage, address) in &target.dns.resolvers {
            resolvers.entry(*address).or_insert_with(|| vantage.clone());
        }
        for vantage in &target.vantage_points {
            if let Some(address) = vantage.resolver {
                resolvers
                    .entry(address)
                    .or_insert_with(|| vantage.region.clone());
            }
        }
        let mut answers = Vec::new();
        for (address, vantage) in resolvers {
            answers.push(Answer {
                via: format!("resolver of {vantage} ({address})"),
                authoritative: false,
                result: lookup(address, None, name).await,
            });
        }
        let mut sources: Vec<Option<IpAddr>> = target
            .vantage_points
            .iter()
            .filter_map(|v| v.source_address)
            .map(Some)
            .collect();
        if sources.is_empty() {
            sources.push(None);
        }
        for server in &target.dns.nameservers {
            for source in &sources {
                let from = source.map_or("the default address".to_owned(), |s| s.to_string());
                answers.push(Answer {
                    via: format!("name server {server} asked from {from}"),
                    authoritative: true,
                    result: lookup(*server, *source, name).await,
                });
            }
        }
        answers
    }

    async fn lookup(
        server: SocketAddr,
        source: Option<IpAddr>,
        name: &str,
    ) -> Result<BTreeSet<IpAddr>, String> {
        let resolver = crate::load::resolver(&[server], source, false);
        match resolver.lookup_ip(name).await {
            Ok(found) => Ok(found.iter().collect()),
            Err(error) => Err(error.to_string()),
        }
    }

    /// One check per server: it answers with at least one address.
    pub fn answer_checks(target: &Target, answers: &[Answer]) -> Vec<PreflightCheck> {
        let name = &target.service.public_name;
        answers
            .iter()
            .map(|answer| {
                let (passed, observed) = match &answer.result {
                    Ok(addresses) if !addresses.is_empty() => (true, list(addresses)),
                    Ok(_) => (false, "an empty answer".to_owned()),
                    Err(error) => (false, error.clone()),
                };
                check(
                    format!("DNS answers for {name} via {}", answer.via),
                    passed,
                    "at least one address",
                    observed,
                )
            })
            .collect()
    }

    /// The region's addresses are in an answer: the authoritative ones
    /// when the target names name servers (resolvers cache for the TTL),
    /// otherwise the resolvers'.
    pub fn region_in_dns(
        target: &Target,
        name: &str,
        region: &crate::target::RegionTarget,
        answers: &[Answer],
    ) -> PreflightCheck {
        let addresses: BTreeSet<IpAddr> = target.dns_addresses(region).into_iter().collect();
        let check_name = format!("region {name} in DNS");
        if addresses.is_empty() {
            return fail(
                check_name,
                "the region's addresses in an answer",
                format!("no address known for it: set regions.{name}.dns_addresses"),
            );
        }
        let authoritative = answers.iter().any(|a| a.authoritative);
        let considered: Vec<&Answer> = answers
            .iter()
            .filter(|a| a.authoritative == authoritative)
            .collect();
        let expected = format!(
            "one of {} in an answer of the {}",
            list(&addresses),
            if authoritative {
                "name servers"
            } else {
                "resolvers"
            }
        );
        let found = considered.iter().find(|a| {
            a.result
                .as_ref()
                .is_ok_and(|got| !got.is_disjoint(&addresses))
        });
        match found {
            Some(answer) => check(
                check_name,
                true,
                expected,
                format!("in the answer of {}", answer.via),
            ),
            None => {
                let seen: BTreeSet<IpAddr> = considered
                    .iter()
                    .filter_map(|a| a.result.as_ref().ok())
                    .flatten()
                    .copied()
                    .collect();
                fail(
                    check_name,
                    expected,
                    format!("in no answer; the answers held {}", list(seen)),
                )
            }
        }
    }
}

mod health {
    //! The regions' endpoints, the ledger and the error budget.
    use super::*;

    /// Every endpoint answers `/readyz` with 200.
    pub async fn region_healthy(
        http: &reqwest::Client,
        name: &str,
        region: &crate::target::RegionTarget,
    ) -> PreflightCheck {
        let mut observed = Vec::new();
        let mut healthy = true;
        for endpoint in &region.endpoints {
            let url = format!("{}/readyz", endpoint.trim_end_matches('/'));
            let status = match http.get(&url).send().await {
                Ok(response) => response.status().as_u16().to_string(),
                Err(error) => format!("unreachable ({})", describe(error)),
            };
            healthy &= status == "200";
            observed.push(format!("{endpoint}: {status}"));
        }
        check(
            format!("region {name} healthy"),
            healthy,
            "every endpoint's /readyz answers 200",
            observed.join("; "),
        )
    }

    /// A read-only query on the ledger's database.
    pub async fn ledger(target: &Target) -> PreflightCheck {
        let name = "ledger reachable";
        let Some(ledger) = &target.ledger else {
            return skipped(name, "not configured (ledger.database_url)");
        };
        let expected = "a read-only query on accounts answers";
        let url = match ledger
            .database_url
            .resolve("ledger.database_url", &target.base_dir)
        {
            Ok(url) => url,
            Err(error) => return fail(name, expected, error.to_string()),
        };
        let query = async {
            let client = crate::database::connect(url.expose()).await?;
            let row = client
                .query_one("SELECT count(*) FROM accounts", &[])
                .await?;
            anyhow::Ok(row.get::<_, i64>(0))
        };
        match tokio::time::timeout(Duration::from_secs(5), query).await {
            Ok(Ok(accounts)) => check(name, true, expected, format!("{accounts} accounts")),
            Ok(Err(error)) => fail(name, expected, format!("{error:#}")),
            Err(_) => fail(name, expected, "no answer within 5 s"),
        }
    }

    /// The share of the 30-day error budget already spent is below 1.
    pub async fn error_budget(http: &reqwest::Client, target: &Target) -> PreflightCheck {
        let name = "error budget not already spent";
        let Some(prometheus) = &target.prometheus else {
            return skipped(name, "not configured (prometheus.url)");
        };
        let query = prometheus
            .budget_spent_query
            .as_deref()
            .unwrap_or(DEFAULT_BUDGET_SPENT_QUERY);
        let expected = "less than 100% of the 30-day budget spent";
        let url = format!("{}/api/v1/query", prometheus.url.trim_end_matches('/'));
        let answer = async {
            let response = http.get(&url).query(&[("query", query)]).send().await?;
            anyhow::Ok(
                response
                    .error_for_status()?
                    .json::<serde_json::Value>()
                    .await?,
            )
        };
        match answer.await {
            Ok(body) => match budget_spent(&body) {
                Ok(spent) => check(
                    name,
                    spent < 1.0,
                    expected,
                    format!("{:.1}% spent", spent * 100.0),
                ),
                Err(why) => fail(name, expected, why),
            },
            Err(error) => fail(name, expected, format!("cannot query {url}: {error:#}")),
        }
    }

    fn skipped(name: &str, why: &str) -> PreflightCheck {
        PreflightCheck {
            name: name.into(),
            outcome: Outcome::Skipped,
            expected: "-".into(),
            observed: why.into(),
        }
    }

    /// Prometheus' `{"data": {"result": [{"value": [t, "0.25"]}]}}`.
    pub fn budget_spent(body: &serde_json::Value) -> Result<f64, String> {
        let value = &body["data"]["result"][0]["value"][1];
        value
            .as_str()
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| !v.is_nan())
            .ok_or_else(|| format!("no number in the query's answer: {}", body["data"]))
    }
}

mod controllers {
    //! The controllers' `/status` and admin API.
    use super::*;

    pub struct Status {
        pub region: String,
        pub result: Result<serde_json::Value, String>,
    }

    pub async fn statuses(http: &reqwest::Client, target: &Target) -> Vec<Status> {
        let mut statuses = Vec::new();
        for (region, settings) in &target.regions {
            let url = format!(
                "{}/status",
                settings.controller_admin_url.trim_end_matches('/')
            );
            let result = async {
                let response = http.get(&url).send().await.map_err(describe)?;
                let response = response.error_for_status().map_err(describe)?;
                response.json::<serde_json::Value>().await.map_err(describe)
            }
            .await;
            statuses.push(Status {
                region: region.clone(),
                result,
            });
        }
        statuses
    }

    /// What every replica must agree on: the lease holder, the drained
    /// regions, the freeze.
    fn view(status: &serde_json::Value) -> String {
        let drained: Vec<&str> = status["regions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["drain_flag"] == true)
            .filter_map(|r| r["region"].as_str())
            .collect();
        format!(
            "leader {}, drained [{}], frozen {}",
            status["lease"]["holder"].as_str().unwrap_or("none"),
            drained.join(", "),
            status["frozen"]
        )
    }

    pub fn agree(statuses: &[Status]) -> PreflightCheck {
        let name = "controllers agree";
        let expected =
            "every controller's /status answers with one view of leader and drained regions";
        let mut views: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        let mut unreachable = Vec::new();
        for status in statuses {
            match &status.result {
                Ok(body) => views.entry(view(body)).or_default().push(&status.region),
                Err(error) => unreachable.push(format!("{}: {error}", status.region)),
            }
        }
        let observed: Vec<String> = views
            .iter()
            .map(|(view, regions)| format!("{} say {view}", regions.join(", ")))
            .chain(unreachable.iter().map(|u| format!("unreachable {u}")))
            .collect();
        check(
            name,
            unreachable.is_empty() && views.len() == 1,
            expected,
            observed.join("; "),
        )
    }

    pub fn leader(statuses: &[Status]) -> PreflightCheck {
        let holders: Vec<String> = statuses
            .iter()
            .filter_map(|s| s.result.as_ref().ok())
            .filter(|body| body["lease"]["held"] == true)
            .map(|body| {
                format!(
                    "{} (epoch {})",
                    body["controller_id"].as_str().unwrap_or("?"),
                    body["lease"]["epoch"]
                )
            })
            .collect();
        let observed = if holders.is_empty() {
            "no controller holds it".to_owned()
        } else {
            format!("held by {}", holders.join(", "))
        };
        check(
            "a leader holds the lease",
            holders.len() == 1,
            "exactly one controller holds it",
            observed,
        )
    }

    /// An authenticated `GET /v1/admin/overrides` on every controller.
    pub async fn admin_token_accepted(http: &reqwest::Client, target: &Target) -> PreflightCheck {
        let name = "admin token accepted";
        let expected = "GET /v1/admin/overrides with the token answers 200 on every controller";
        let token = match target
            .controller
            .admin_token
            .resolve("controller.admin_token", &target.base_dir)
        {
            Ok(token) => token,
            Err(error) => return fail(name, expected, error.to_string()),
        };
        let mut observed = Vec::new();
        let mut accepted = true;
        for (region, settings) in &target.regions {
            let url = format!(
                "{}/v1/admin/overrides",
                settings.controller_admin_url.trim_end_matches('/')
            );
            let status = match http.get(&url).bearer_auth(token.expose()).send().await {
                Ok(response) => match response.status().as_u16() {
                    401 => "401 (token refused)".to_owned(),
                    code => code.to_string(),
                },
                Err(error) => format!("unreachable ({})", describe(error)),
            };
            accepted &= status == "200";
            observed.push(format!("{region}: {status}"));
        }
        check(name, accepted, expected, observed.join("; "))
    }
}

/// A reqwest error without the URL's query (which could hold a secret),
/// with its cause.
fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::health::budget_spent;

    #[test]
    fn the_budget_spent_is_read_from_a_prometheus_answer() {
        let answer = serde_json::json!({"status": "success", "data": {"resultType": "vector",
            "result": [{"metric": {}, "value": [1733500000.0, "0.25"]}]}});
        assert_eq!(budget_spent(&answer), Ok(0.25));
        let empty = serde_json::json!({"status": "success", "data": {"resultType": "vector", "result": []}});
        assert!(budget_spent(&empty).unwrap_err().contains("no number"));
    }
}
