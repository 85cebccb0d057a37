//! The loopback Route53 API of a deployment in Route53 mode: a moto server
//! (the Route53 API server the controller's own tests use) behind a proxy
//! that answers `Throttling` (HTTP 400, as AWS does) while the
//! `route53-throttle` fault lasts, and a reader of the latency records the
//! controllers keep there.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tokio::process::{Child, Command};

/// The zone the controllers' records live in, and their name.
pub const ZONE: &str = "svc.failover.test.";
pub const RECORD: &str = "api.svc.failover.test.";

/// A running loopback Route53 API; moto stops when this is dropped.
#[derive(Debug)]
pub struct LoopbackRoute53 {
    /// moto itself: what the drill reads the records from, never throttled.
    pub api_url: String,
    /// The throttling proxy in front of it: the controllers' endpoint.
    pub endpoint_url: String,
    pub zone_id: String,
    throttling: Arc<AtomicBool>,
    throttled: Arc<AtomicU64>,
    _moto: Child,
    _proxy: tokio::task::JoinHandle<()>,
}

impl LoopbackRoute53 {
    /// Starts moto on a free loopback port (its output in `logs`), the
    /// proxy in front of it, and creates the zone.
    pub async fn start(bin_dir: &Path, logs: &Path) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let log = std::fs::File::create(logs.join("route53-moto.log"))?;
        let moto = Command::new(moto_binary(bin_dir))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .context(
                "cannot start moto_server, the loopback Route53 API (source scripts/tools.sh; \
                 tools_install puts it in target/py/bin)",
            )?;
        let api_url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?;
        let mut zone = None;
        for _ in 0..150 {
            if let Ok(id) = create_zone(&http, &api_url).await {
                zone = Some(id);
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let zone_id = zone.context("moto_server did not answer within 30 s")?;
        let throttling = Arc::new(AtomicBool::new(false));
        let throttled = Arc::new(AtomicU64::new(0));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let proxy_address: SocketAddr = listener.local_addr()?;
        let app = proxy_app(api_url.clone(), throttling.clone(), throttled.clone());
        let proxy = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            api_url,
            endpoint_url: format!("http://{proxy_address}"),
            zone_id,
            throttling,
            throttled,
            _moto: moto,
            _proxy: proxy,
        })
    }

    /// Every call answered `Throttling` while on.
    pub fn set_throttling(&self, on: bool) {
        self.throttling.store(on, Ordering::SeqCst);
    }

    /// Calls answered `Throttling` so far.
    pub fn throttled_calls(&self) -> u64 {
        self.throttled.load(Ordering::Relaxed)
    }

    /// The controllers' environment for this API.
    pub fn controller_env(&self) -> Vec<(String, String)> {
        [
            ("FAILOVER_ROUTE53__ENABLED", "true"),
            ("FAILOVER_ROUTE53__HOSTED_ZONE_ID", self.zone_id.as_str()),
            ("FAILOVER_ROUTE53__RECORD_NAME", RECORD),
            ("FAILOVER_ROUTE53__RECORD_TTL", "1"),
            ("FAILOVER_ROUTE53__ENDPOINT_URL", self.endpoint_url.as_str()),
            // Records are created by the first pass; the local deployment
            // checks them every 2 s instead of every minute.
            ("FAILOVER_ROUTE53__DRIFT_CHECK_INTERVAL_MS", "2000"),
            // Nothing probes on one machine: the data-plane gate is the
            // service's /healthz/region, which the drill checks itself.
            (
                "FAILOVER_ROUTE53__ALLOW_RECORDS_WITHOUT_HEALTH_CHECK",
                "true",
            ),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }
}

/// moto tells the services it emulates apart by the credential scope of a
/// request's signature (and checks no signature): the drill's own requests
/// name Route53 there, as the SDK's would.
const MOTO_AUTHORIZATION: &str = "AWS4-HMAC-SHA256 \
    Credential=testing/20260101/us-east-1/route53/aws4_request, SignedHeaders=host, Signature=0";

/// The regions (SetIdentifiers) of the A latency records named [`RECORD`]
/// in the zone, read from moto directly.
pub async fn record_regions(
    http: &reqwest::Client,
    api_url: &str,
    zone_id: &str,
) -> anyhow::Result<BTreeSet<String>> {
    let response = http
        .get(format!("{api_url}/2013-04-01/hostedzone/{zone_id}/rrset"))
        .header("authorization", MOTO_AUTHORIZATION)
        .send()
        .await
        .context("cannot list the Route53 records")?;
    if !response.status().is_success() {
        bail!("listing the Route53 records: {}", response.status());
    }
    let xml = response.text().await?;
    Ok(regions_in(&xml))
}

fn regions_in(xml: &str) -> BTreeSet<String> {
    xml.split("<ResourceRecordSet>")
        .skip(1)
        .filter(|set| {
            element(set, "Name")
                .is_some_and(|name| name.trim_end_matches('.') == RECORD.trim_end_matches('.'))
                && element(set, "Type") == Some("A")
        })
        .filter_map(|set| element(set, "SetIdentifier").map(str::to_owned))
        .collect()
}

/// The text of the first `<name>` element of `xml`.
fn element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(&xml[start..end])
}

async fn create_zone(http: &reqwest::Client, api_url: &str) -> anyhow::Result<String> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <CreateHostedZoneRequest xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\">\
         <Name>{ZONE}</Name><CallerReference>chaos-{}</CallerReference>\
         </CreateHostedZoneRequest>",
        uuid::Uuid::new_v4()
    );
    let response = http
        .post(format!("{api_url}/2013-04-01/hostedzone"))
        .header("content-type", "text/xml")
        .header("authorization", MOTO_AUTHORIZATION)
        .body(body)
        .send()
        .await?;
    let status = response.status();
    let xml = response.text().await?;
    if !status.is_success() {
        bail!("creating the zone: {status}: {xml}");
    }
    let id = element(&xml, "Id").context("no zone id in CreateHostedZone's answer")?;
    Ok(id.trim_start_matches("/hostedzone/").to_owned())
}

/// moto_server from the workspace's tool environment (`target/py`, next to
/// the binaries' `target/<profile>`), else from PATH.
fn moto_binary(bin_dir: &Path) -> PathBuf {
    let local = bin_dir.join("../py/bin/moto_server");
    if local.exists() {
        return local;
    }
    PathBuf::from("moto_server")
}

fn proxy_app(
    upstream: String,
    throttling: Arc<AtomicBool>,
    throttled: Arc<AtomicU64>,
) -> axum::Router {
    let http = reqwest::Client::new();
    axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let (http, upstream, throttling, throttled) = (
                http.clone(),
                upstream.clone(),
                throttling.clone(),
                throttled.clone(),
            );
            async move {
                if throttling.load(Ordering::SeqCst) {
                    throttled.fetch_add(1, Ordering::Relaxed);
                    return throttling_error();
                }
                forward(&http, &upstream, method, &uri, &headers, body).await
            }
        },
    )
}

/// What AWS answers a caller over its Route53 API rate.
fn throttling_error() -> Response {
    let xml = "<?xml version=\"1.0\"?><ErrorResponse xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\">\
               <Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error>\
               <RequestId>chaos-route53-throttle</RequestId></ErrorResponse>";
    (StatusCode::BAD_REQUEST, [("content-type", "text/xml")], xml).into_response()
}

async fn forward(
    http: &reqwest::Client,
    upstream: &str,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let url = format!(
        "{upstream}{}",
        uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
    );
    let mut request = http.request(method, url).body(body);
    for (name, value) in headers {
        if name != "host" && name != "content-length" {
            request = request.header(name, value);
        }
    }
    let response = match request.send().await {
        Ok(response) => response,
        Err(error) => {
            return (StatusCode::BAD_GATEWAY, format!("moto: {error}")).into_response();
        }
    };
    let status = response.status();
    let content_type = response.headers().get("content-type").cloned();
    let bytes = response.bytes().await.unwrap_or_default();
    let mut out = (status, bytes).into_response();
    if let Some(content_type) = content_type {
        out.headers_mut().insert("content-type", content_type);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_latency_records_are_read() {
        let xml = "<ListResourceRecordSetsResponse><ResourceRecordSets>\
            <ResourceRecordSet><Name>api.svc.failover.test.</Name><Type>A</Type>\
            <SetIdentifier>us-east-1</SetIdentifier></ResourceRecordSet>\
            <ResourceRecordSet><Name>api.svc.failover.test.</Name><Type>TXT</Type>\
            <SetIdentifier>eu-west-1</SetIdentifier></ResourceRecordSet>\
            <ResourceRecordSet><Name>svc.failover.test.</Name><Type>NS</Type></ResourceRecordSet>\
            <ResourceRecordSet><Name>api.svc.failover.test</Name><Type>A</Type>\
            <SetIdentifier>ap-southeast-1</SetIdentifier></ResourceRecordSet>\
            </ResourceRecordSets></ListResourceRecordSetsResponse>";
        let regions: Vec<String> = regions_in(xml).into_iter().collect();
        assert_eq!(regions, ["ap-southeast-1", "us-east-1"]);
    }
}
