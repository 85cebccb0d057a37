//! Route53 through the real aws-sdk-route53 client against the moto server
//! on loopback: records created with their health checks, drained,
//! restored, drift repaired (a lost health check included), records we do
//! not own untouched; throttling and 5xx injected by a proxy between the
//! client and the server are retried and end well.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_route53::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, HealthCheckConfig, HealthCheckType, ResourceRecord,
    ResourceRecordSet, RrType,
};
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use failover_controller::actions::route53::{LeaseCheck, Route53Error, Route53Records};
use failover_controller::app::Application;
use failover_controller::metrics::Metrics;
use serde_json::json;

use crate::helpers::{accepted_drain, settings, test_db, wait_for, Regions, Running};

/// A moto server on a free loopback port, killed on drop.
pub struct Moto {
    child: Child,
    pub url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn moto_binary() -> String {
    let local = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/py/bin/moto_server");
    if std::path::Path::new(local).exists() {
        return local.to_string();
    }
    "moto_server".to_string()
}

pub async fn start_moto() -> Moto {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(moto_binary())
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server on PATH (pip install 'moto[server]'; scripts/test.sh provides it)");
    let url = format!("http://127.0.0.1:{port}");
    let up = wait_for(Duration::from_secs(30), || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
            .map(|_| ())
    })
    .await;
    assert!(up.is_some(), "moto_server did not start");
    Moto { child, url }
}

pub fn credentials() -> Credentials {
    Credentials::new("testing", "testing", None, None, "static-test")
}

pub async fn raw_client(endpoint: &str) -> aws_sdk_route53::Client {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(credentials())
        .load()
        .await;
    aws_sdk_route53::Client::new(&config)
}

/// Creates the zone and two records the controller does not own.
pub async fn zone_with_foreign_records(client: &aws_sdk_route53::Client) -> String {
    let zone = client
        .create_hosted_zone()
        .name("svc.example.com.")
        .caller_reference(uuid::Uuid::new_v4().to_string())
        .send()
        .await
        .unwrap();
    let id = zone
        .hosted_zone()
        .unwrap()
        .id()
        .trim_start_matches("/hostedzone/")
        .to_string();
    let foreign_latency = ResourceRecordSet::builder()
        .name("api.svc.example.com.")
        .r#type(RrType::A)
        .set_identifier("someone-else")
        .region("us-west-2".into())
        .ttl(60)
        .resource_records(
            ResourceRecord::builder()
                .value("198.51.100.7")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let foreign_simple = ResourceRecordSet::builder()
        .name("www.svc.example.com.")
        .r#type(RrType::A)
        .ttl(60)
        .resource_records(
            ResourceRecord::builder()
                .value("198.51.100.8")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    upsert(client, &id, vec![foreign_latency, foreign_simple]).await;
    id
}

/// Creates one Route53 health check per region (`count`), in moto.
pub async fn health_checks(client: &aws_sdk_route53::Client, count: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for n in 1..=count {
        let config = HealthCheckConfig::builder()
            .r#type(HealthCheckType::Http)
            .ip_address(format!("192.0.2.{n}"))
            .port(80)
            .resource_path("/healthz/region")
            .build()
            .unwrap();
        let created = client
            .create_health_check()
            .caller_reference(uuid::Uuid::new_v4().to_string())
            .health_check_config(config)
            .send()
            .await
            .unwrap();
        ids.push(created.health_check().unwrap().id().to_string());
    }
    ids
}

/// `[[regions]]` TOML with `health_check_id = ids[N-1]` for `region-N`.
pub fn with_health_checks(regions_toml: &str, ids: &[String]) -> String {
    let mut out = String::new();
    for line in regions_toml.lines() {
        out.push_str(line);
        out.push('\n');
        if let Some(n) = line
            .strip_prefix("name = \"region-")
            .and_then(|rest| rest.trim_end_matches('"').parse::<usize>().ok())
        {
            out.push_str(&format!("health_check_id = \"{}\"\n", ids[n - 1]));
        }
    }
    out
}

/// Our records as (region, values, health check), sorted.
pub async fn owned_records(
    client: &aws_sdk_route53::Client,
    zone: &str,
) -> Vec<(String, Vec<String>, Option<String>)> {
    let out = client
        .list_resource_record_sets()
        .hosted_zone_id(zone)
        .send()
        .await
        .unwrap();
    let mut found: Vec<_> = out
        .resource_record_sets()
        .iter()
        .filter(|s| *s.r#type() == RrType::A)
        .filter_map(|s| {
            let id = s.set_identifier()?;
            id.starts_with("region-").then(|| {
                let values = s
                    .resource_records()
                    .iter()
                    .map(|r| r.value().to_string())
                    .collect();
                (
                    id.to_string(),
                    values,
                    s.health_check_id().map(str::to_string),
                )
            })
        })
        .collect();
    found.sort();
    found
}

/// A lease that is always held: for calling the records directly.
pub struct AlwaysLeading;

#[async_trait::async_trait]
impl LeaseCheck for AlwaysLeading {
    async fn confirm(&self) -> Result<tokio::time::Instant, String> {
        Ok(tokio::time::Instant::now() + Duration::from_secs(3600))
    }
}

pub async fn upsert(client: &aws_sdk_route53::Client, zone: &str, sets: Vec<ResourceRecordSet>) {
    let changes = sets
        .into_iter()
        .map(|s| {
            Change::builder()
                .action(ChangeAction::Upsert)
                .resource_record_set(s)
                .build()
                .unwrap()
        })
        .collect();
    client
        .change_resource_record_sets()
        .hosted_zone_id(zone)
        .change_batch(
            ChangeBatch::builder()
                .set_changes(Some(changes))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
}

async fn all_records(
    client: &aws_sdk_route53::Client,
    zone: &str,
) -> Vec<(String, Option<String>, Vec<String>)> {
    let out = client
        .list_resource_record_sets()
        .hosted_zone_id(zone)
        .send()
        .await
        .unwrap();
    out.resource_record_sets()
        .iter()
        .filter(|s| *s.r#type() == RrType::A)
        .map(|s| {
            (
                s.name().to_string(),
                s.set_identifier().map(str::to_string),
                s.resource_records()
                    .iter()
                    .map(|r| r.value().to_string())
                    .collect(),
            )
        })
        .collect()
}

pub fn route53_toml(endpoint: &str, zone: &str) -> String {
    format!(
        "[route53]\nenabled = true\nhosted_zone_id = \"{zone}\"\nrecord_name = \"api.svc.example.com.\"\n\
         endpoint_url = \"{endpoint}\"\nmax_requests_per_second = 4.0\ndrift_check_interval_ms = 1000\n"
    )
}

/// Injects throttling, PriorRequestNotComplete and 503 before forwarding.
async fn start_faulty_proxy(upstream: String, counter: Arc<AtomicUsize>) -> SocketAddr {
    let client = reqwest::Client::new();
    let app = axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
        let (client, upstream, counter) = (client.clone(), upstream.clone(), Arc::clone(&counter));
        async move {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let error = |status: StatusCode, code: &str| -> Response {
                let xml = format!(
                    "<?xml version=\"1.0\"?><ErrorResponse xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\">\
                     <Error><Type>Sender</Type><Code>{code}</Code><Message>injected</Message></Error>\
                     <RequestId>injected-{n}</RequestId></ErrorResponse>"
                );
                (status, [("content-type", "text/xml")], xml).into_response()
            };
            match n % 4 {
                0 => return error(StatusCode::BAD_REQUEST, "Throttling"),
                1 => return error(StatusCode::BAD_REQUEST, "PriorRequestNotComplete"),
                2 => return error(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable"),
                _ => {}
            }
            let url = format!("{upstream}{}", uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"));
            let mut request = client.request(method, url).body(body);
            for (name, value) in headers.iter() {
                if name != "host" && name != "content-length" {
                    request = request.header(name, value);
                }
            }
            let response = request.send().await.unwrap();
            let status = response.status();
            let content_type = response.headers().get("content-type").cloned();
            let bytes = response.bytes().await.unwrap();
            let mut out = (status, bytes).into_response();
            if let Some(ct) = content_type {
                out.headers_mut().insert("content-type", ct);
            }
            out
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tokio::test]
async fn records_are_drained_restored_and_repaired_without_touching_others() {
    let moto = start_moto().await;
    let raw = raw_client(&moto.url).await;
    let zone = zone_with_foreign_records(&raw).await;
    let checks = health_checks(&raw, 3).await;
    let db = test_db().await;
    let regions = Regions::start(3).await;
    let extra = route53_toml(&moto.url, &zone);
    let regions_toml = with_health_checks(&regions.toml(), &checks);
    let app = Application::build_with(
        settings("region-1", &db.url, &regions_toml, &extra),
        Some(credentials()),
    )
    .await
    .unwrap();
    let base = format!("http://{}", app.http_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    // The other two replicas: a region returns only when a majority of the
    // three configured vantage points sees it up (whichever leads syncs).
    let mut others = Vec::new();
    for region in ["region-2", "region-3"] {
        let settings = settings(region, &db.url, &regions_toml, &extra);
        let app = Application::build_with(settings, Some(credentials())).await;
        others.push(Running::start(app.unwrap()));
    }
    let owned = |records: &[(String, Option<String>, Vec<String>)]| -> Vec<String> {
        let mut ids: Vec<String> = records
            .iter()
            .filter_map(|(_, id, _)| id.clone().filter(|i| i.starts_with("region-")))
            .collect();
        ids.sort();
        ids
    };
    let created = wait_for(Duration::from_secs(15), || async {
        let records = all_records(&raw, &zone).await;
        (owned(&records).len() == 3).then_some(records)
    })
    .await
    .expect("the three latency records were created");
    let region1 = created
        .iter()
        .find(|(_, id, _)| id.as_deref() == Some("region-1"))
        .unwrap();
    assert_eq!(
        region1.2,
        vec!["127.0.1.1".to_string(), "127.0.1.2".to_string()]
    );
    let records = owned_records(&raw, &zone).await;
    for (i, (region, _, check)) in records.iter().enumerate() {
        assert_eq!(
            check.as_ref(),
            Some(&checks[i]),
            "{region} without its health check"
        );
    }

    // Drain region-2 by hand: its record goes, the foreign ones stay.
    let body = json!({"kind": "drain", "region": "region-2", "reason": "route53 test", "actor": "tester", "ttl_seconds": 60});
    let response = accepted_drain(&base, &body)
        .await
        .expect("the drain accepted");
    let id = response.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_for(Duration::from_secs(15), || async {
        (owned(&all_records(&raw, &zone).await) == ["region-1", "region-3"]).then_some(())
    })
    .await
    .expect("region-2's record removed");

    // Drift: someone edits region-1's record; the controller puts it back.
    let drifted = ResourceRecordSet::builder()
        .name("api.svc.example.com.")
        .r#type(RrType::A)
        .set_identifier("region-1")
        .region("us-east-1".into())
        .ttl(60)
        .resource_records(
            ResourceRecord::builder()
                .value("203.0.113.99")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    upsert(&raw, &zone, vec![drifted]).await;
    let drift = wait_for(Duration::from_secs(15), || async {
        let records = all_records(&raw, &zone).await;
        let r1 = records
            .iter()
            .find(|(_, id, _)| id.as_deref() == Some("region-1"))?;
        (r1.2 == ["127.0.1.1", "127.0.1.2"]).then_some(())
    })
    .await;
    if drift.is_none() {
        let audit: Vec<(String, String, String)> =
            sqlx::query_as("SELECT name, outcome, detail FROM failover_audit ORDER BY at")
                .fetch_all(&db.pool)
                .await
                .unwrap();
        panic!(
            "drift not repaired: {:?}\naudit: {audit:#?}",
            all_records(&raw, &zone).await
        );
    }
    // Drift: the same values without the health check (someone rewrote the
    // record by hand): it is drift too, and the check comes back.
    let without_check = ResourceRecordSet::builder()
        .name("api.svc.example.com.")
        .r#type(RrType::A)
        .set_identifier("region-3")
        .region("ap-southeast-1".into())
        .ttl(60)
        .resource_records(
            ResourceRecord::builder()
                .value("127.0.3.1")
                .build()
                .unwrap(),
        )
        .resource_records(
            ResourceRecord::builder()
                .value("127.0.3.2")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    upsert(&raw, &zone, vec![without_check]).await;
    wait_for(Duration::from_secs(15), || async {
        let records = owned_records(&raw, &zone).await;
        let region3 = records.iter().find(|r| r.0 == "region-3")?;
        (region3.2.as_ref() == Some(&checks[2])).then_some(())
    })
    .await
    .expect("region-3's health check put back");

    // Lift the override: region-2 returns after its hold-down.
    let response = reqwest::Client::new()
        .delete(format!("{base}/v1/admin/overrides/{id}"))
        .bearer_auth("test-admin-token")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let restored = wait_for(Duration::from_secs(20), || async {
        (owned(&all_records(&raw, &zone).await).len() == 3).then_some(())
    })
    .await;
    if restored.is_none() {
        let audit: Vec<(String, String, String)> =
            sqlx::query_as("SELECT name, outcome, detail FROM failover_audit ORDER BY at")
                .fetch_all(&db.pool)
                .await
                .unwrap();
        panic!(
            "region-2 not restored: {:?}\naudit: {audit:#?}",
            all_records(&raw, &zone).await
        );
    }

    let owned = owned_records(&raw, &zone).await;
    assert!(
        owned
            .iter()
            .zip(&checks)
            .all(|(r, check)| r.2.as_ref() == Some(check)),
        "a record lost its health check: {owned:?}"
    );
    let records = all_records(&raw, &zone).await;
    assert!(records.iter().any(|(n, id, v)| n == "api.svc.example.com."
        && id.as_deref() == Some("someone-else")
        && v == &["198.51.100.7"]));
    assert!(records
        .iter()
        .any(|(n, id, v)| n == "www.svc.example.com." && id.is_none() && v == &["198.51.100.8"]));
    let audit: Vec<(String, String)> =
        sqlx::query_as("SELECT name, outcome FROM failover_audit WHERE name LIKE 'route53%'")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert!(
        audit
            .iter()
            .any(|(n, o)| n == "route53_remove" && o == "ok"),
        "{audit:?}"
    );
    assert!(
        audit.iter().any(|(n, _)| n.ends_with("drift_repair")),
        "{audit:?}"
    );
    for other in others {
        other.stop().await;
    }
    stop.send(()).unwrap();
    run.await.unwrap().unwrap();
}

#[tokio::test]
async fn throttling_and_5xx_are_retried_and_the_last_record_is_kept() {
    let moto = start_moto().await;
    let raw = raw_client(&moto.url).await;
    let zone = zone_with_foreign_records(&raw).await;
    let counter = Arc::new(AtomicUsize::new(0));
    let proxy = start_faulty_proxy(moto.url.clone(), Arc::clone(&counter)).await;
    let regions = Regions::start(3).await;
    let regions_toml = with_health_checks(&regions.toml(), &health_checks(&raw, 3).await);
    let extra = route53_toml(&format!("http://{proxy}"), &zone);
    let settings = settings(
        "region-1",
        "postgres://unused@127.0.0.1:1/x",
        &regions_toml,
        &extra,
    );
    let metrics = Metrics::new();
    let records = Route53Records::new(&settings, metrics.clone(), Some(credentials())).await;
    records
        .restore("region-1", &AlwaysLeading)
        .await
        .expect("restore despite injected faults");
    records
        .restore("region-2", &AlwaysLeading)
        .await
        .expect("restore despite injected faults");
    assert_eq!(records.list_owned().await.unwrap().len(), 2);
    records
        .remove("region-1", &AlwaysLeading)
        .await
        .expect("remove despite injected faults");
    // region-3 never had a record: region-2 is the last serving one.
    match records.remove("region-2", &AlwaysLeading).await {
        Err(Route53Error::LastServing { region }) => assert_eq!(region, "region-2"),
        other => panic!("removed the last serving record: {other:?}"),
    }
    assert_eq!(owned_ids(&records).await, vec!["region-2".to_string()]);
    let text = metrics.render();
    assert!(text.contains(r#"failover_route53_calls_total{operation="ChangeResourceRecordSets",outcome="throttled"}"#), "{text}");
    assert!(text.contains(r#"outcome="error""#));
    assert!(counter.load(Ordering::SeqCst) >= 12, "faults were injected");
    let all = all_records(&raw, &zone).await;
    assert!(all
        .iter()
        .any(|(_, id, _)| id.as_deref() == Some("someone-else")));
}

async fn owned_ids(records: &Route53Records) -> Vec<String> {
    records.list_owned().await.unwrap().into_keys().collect()
}

/// With `route53.allow_records_without_health_check` and no configured
/// health check, drift repair keeps the health check a live record carries
/// (someone attached one by hand) instead of stripping it.
#[tokio::test]
async fn a_waived_region_keeps_the_health_check_of_its_live_record() {
    let moto = start_moto().await;
    let raw = raw_client(&moto.url).await;
    let zone = zone_with_foreign_records(&raw).await;
    let attached = health_checks(&raw, 1).await.remove(0);
    let drifted = ResourceRecordSet::builder()
        .name("api.svc.example.com.")
        .r#type(RrType::A)
        .set_identifier("region-1")
        .region("us-east-1".into())
        .ttl(60)
        .health_check_id(&attached)
        .resource_records(
            ResourceRecord::builder()
                .value("203.0.113.99")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    upsert(&raw, &zone, vec![drifted]).await;
    let db = test_db().await;
    let regions = Regions::start(3).await;
    let extra = format!(
        "{}allow_records_without_health_check = true\n",
        route53_toml(&moto.url, &zone)
    );
    let app = Application::build_with(
        settings("region-1", &db.url, &regions.toml(), &extra),
        Some(credentials()),
    )
    .await
    .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    let repaired = wait_for(Duration::from_secs(15), || async {
        let records = owned_records(&raw, &zone).await;
        let region1 = records.iter().find(|r| r.0 == "region-1")?.clone();
        (records.len() == 3 && region1.1 == ["127.0.1.1", "127.0.1.2"]).then_some(region1)
    })
    .await
    .expect("region-1's values repaired");
    assert_eq!(
        repaired.2,
        Some(attached),
        "the live record's health check was stripped"
    );
    stop.send(()).unwrap();
    run.await.unwrap().unwrap();
}
