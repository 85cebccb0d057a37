//! Controller evacuation, the ARC Region switch case: a region is drained
//! through the controllers' admin API with a manual drain override (reason,
//! actor `chaos`, an expiry) and given back by removing that override.
//!
//! Invariant: the override always expires on its own (the fault's duration
//! plus [`EXPIRY_MARGIN_S`]), so a drill that dies and is never rolled back
//! cannot keep a region out of service for good.

use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use serde::{Deserialize, Serialize};

use crate::target::SecretRef;

/// The actor every override of a drill names.
pub const ACTOR: &str = "chaos";

/// What an evacuation's override outlives its fault by: long enough for
/// the drill to remove it itself, short enough that a dead drill's region
/// comes back on its own soon after.
pub const EXPIRY_MARGIN_S: u64 = 60;

/// How a drill reaches the controllers' admin API; journaled with the
/// action, so that `chaos rollback` can undo an evacuation without the
/// target file. Never the token itself: where it comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminApi {
    /// Every controller's admin base URL: the overrides live in the shared
    /// database, so any replica that answers will do.
    pub urls: Vec<String>,
    /// An environment variable or an absolute file path.
    pub token: SecretRef,
    /// The override's reason, "chaos drill <title>"; the undo removes only
    /// the drain overrides of the region with this reason and actor.
    pub reason: String,
    /// The override's expiry, seconds after it is created.
    pub ttl_s: u64,
    /// The target's `service.ca_file` (absolute), trusted beside the public
    /// roots for https:// admin URLs, as preflight trusts it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<std::path::PathBuf>,
}

/// The admin API's answer for one override (the fields the drill reads).
#[derive(Debug, Deserialize)]
struct Override {
    id: String,
    kind: String,
    #[serde(default)]
    region: Option<String>,
    reason: String,
    actor: String,
}

#[derive(Debug, Deserialize)]
struct OverrideList {
    overrides: Vec<Override>,
}

/// Drains `region` (`on`) or removes the drill's drain overrides of it.
/// Removing an override that is already gone (cleared, expired, never
/// created because the controller refused it) succeeds: the undo is
/// idempotent.
pub async fn apply(region: &str, on: bool, admin: &AdminApi) -> anyhow::Result<()> {
    let token = admin
        .token
        .resolve("controller.admin_token", std::path::Path::new("/"))
        .map_err(|error| anyhow!("{error}"))?;
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(Duration::from_secs(10));
    if let Some(ca_file) = &admin.ca_file {
        builder = crate::deployment::tls::trust_ca_file(builder, ca_file, "service.ca_file")?;
    }
    let http = builder.build().context("cannot build the HTTP client")?;
    let mut errors = Vec::new();
    // A replica that cannot be reached (its region may be the one in
    // trouble) is skipped; an answer from one that can is final.
    for url in &admin.urls {
        let base = url.trim_end_matches('/');
        let result = if on {
            drain(&http, base, token.expose(), region, admin).await
        } else {
            undrain(&http, base, token.expose(), region, admin).await
        };
        match result {
            Ok(()) => return Ok(()),
            Err(Failure::Answered(error)) => return Err(error),
            Err(Failure::Unreachable(error)) => errors.push(format!("{error:#}")),
        }
    }
    bail!(
        "no controller admin API answered: {}",
        if errors.is_empty() {
            "no admin URL".to_owned()
        } else {
            errors.join("; ")
        }
    )
}

/// Why one replica did not do it: unreachable (try the next) or answered
/// with a refusal (final, whatever the other replicas would say).
enum Failure {
    Unreachable(anyhow::Error),
    Answered(anyhow::Error),
}

async fn drain(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    region: &str,
    admin: &AdminApi,
) -> Result<(), Failure> {
    let body = serde_json::json!({
        "kind": "drain",
        "region": region,
        "reason": admin.reason,
        "actor": ACTOR,
        "ttl_seconds": admin.ttl_s,
    });
    // A replica that has not read the votes since it started answers 503
    // with Retry-After: 1; it is asked again a few times.
    for _ in 0..5 {
        let response = http
            .post(format!("{base}/v1/admin/overrides"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("cannot reach the controller admin API at {base}"))
            .map_err(Failure::Unreachable)?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text = response.text().await.unwrap_or_default();
        if status == reqwest::StatusCode::SERVICE_UNAVAILABLE {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        return Err(Failure::Answered(anyhow!(
            "the controller at {base} refused to drain {region}: {status}: {}",
            problem_detail(&text)
        )));
    }
    Err(Failure::Unreachable(anyhow!(
        "the controller at {base} stayed not ready (503)"
    )))
}

async fn undrain(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    region: &str,
    admin: &AdminApi,
) -> Result<(), Failure> {
    let response = http
        .get(format!("{base}/v1/admin/overrides"))
        .bearer_auth(token)
        .send()
        .await
        .with_context(|| format!("cannot reach the controller admin API at {base}"))
        .map_err(Failure::Unreachable)?;
    let status = response.status();
    if !status.is_success() {
        let text = response.text().await.unwrap_or_default();
        return Err(Failure::Answered(anyhow!(
            "the controller at {base} answered {status} to the list of overrides: {}",
            problem_detail(&text)
        )));
    }
    let list: OverrideList = response
        .json()
        .await
        .with_context(|| format!("invalid list of overrides from {base}"))
        .map_err(Failure::Answered)?;
    for found in list.overrides.iter().filter(|o| ours(o, region, admin)) {
        let response = http
            .delete(format!("{base}/v1/admin/overrides/{}", found.id))
            .bearer_auth(token)
            .header("x-actor", ACTOR)
            .send()
            .await
            .with_context(|| format!("cannot reach the controller admin API at {base}"))
            .map_err(Failure::Unreachable)?;
        let status = response.status();
        // 404: cleared or expired meanwhile, which is what was wanted.
        if !status.is_success() && status != reqwest::StatusCode::NOT_FOUND {
            let text = response.text().await.unwrap_or_default();
            return Err(Failure::Answered(anyhow!(
                "the controller at {base} answered {status} to removing override {}: {}",
                found.id,
                problem_detail(&text)
            )));
        }
    }
    Ok(())
}

/// A drain override of `region` that this drill's evacuation created.
fn ours(found: &Override, region: &str, admin: &AdminApi) -> bool {
    found.kind == "drain"
        && found.region.as_deref() == Some(region)
        && found.actor == ACTOR
        && found.reason == admin.reason
}

/// The `detail` of an RFC 9457 problem document, else the body itself.
fn problem_detail(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["detail"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.chars().take(500).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admin() -> AdminApi {
        AdminApi {
            urls: vec!["http://127.0.0.1:1".into()],
            token: SecretRef::Env("ADMIN".into()),
            reason: "chaos drill Evacuate".into(),
            ttl_s: 100,
            ca_file: None,
        }
    }

    #[test]
    fn only_the_drills_own_drain_of_the_region_is_removed() {
        let found = |kind: &str, region: &str, actor: &str, reason: &str| Override {
            id: "x".into(),
            kind: kind.into(),
            region: Some(region.into()),
            reason: reason.into(),
            actor: actor.into(),
        };
        let admin = admin();
        assert!(ours(
            &found("drain", "eu-west-1", "chaos", "chaos drill Evacuate"),
            "eu-west-1",
            &admin
        ));
        for other in [
            found("undrain", "eu-west-1", "chaos", "chaos drill Evacuate"),
            found("drain", "us-east-1", "chaos", "chaos drill Evacuate"),
            found("drain", "eu-west-1", "oncall", "chaos drill Evacuate"),
            found("drain", "eu-west-1", "chaos", "maintenance"),
        ] {
            assert!(!ours(&other, "eu-west-1", &admin), "{other:?}");
        }
    }

    #[test]
    fn a_problem_document_gives_its_detail() {
        let body = r#"{"type":"/problems/refused-by-safety-rule","title":"Refused","status":409,"detail":"refused by min_healthy_regions: 2 would stay"}"#;
        assert_eq!(
            problem_detail(body),
            "refused by min_healthy_regions: 2 would stay"
        );
        assert_eq!(problem_detail("plain"), "plain");
    }

    /// An https:// admin API whose certificate a private CA signed (the
    /// target's `service.ca_file`): the undo reaches it with the CA, and
    /// fails naming the URL without it.
    #[tokio::test]
    async fn an_https_admin_api_is_trusted_through_the_targets_ca_file() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let dir = std::env::temp_dir().join(format!("chaos-evacuate-tls-{}", std::process::id()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let tls =
            crate::deployment::tls::DeploymentTls::create(&dir, "admin.test.", &[address]).unwrap();
        let acceptor = tls.acceptor.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let mut buffer = [0u8; 4096];
                    let _ = stream.read(&mut buffer).await;
                    let body = r#"{"overrides":[]}"#;
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(answer.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        std::env::set_var("CHAOS_EVACUATE_TLS_TEST_TOKEN", "t");
        let mut admin = AdminApi {
            urls: vec![format!("https://{address}")],
            token: SecretRef::Env("CHAOS_EVACUATE_TLS_TEST_TOKEN".into()),
            ..admin()
        };
        let refused = apply("eu-west-1", false, &admin).await.unwrap_err();
        assert!(
            format!("{refused:#}").contains(&format!("https://{address}")),
            "{refused:#}"
        );
        admin.ca_file = Some(tls.ca_file.clone());
        apply("eu-west-1", false, &admin).await.unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
