//! The drills' credential for the service's API: one API key, created when
//! the deployment starts with the service binary's own `api-key create`
//! subcommand (so the drill exercises the operators' path), for a principal
//! with the admin scope (the ledger summary the verification reads). The
//! drill's accounts belong to that principal, so its transfers may debit
//! them.

use anyhow::{bail, Context};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};

/// The principal the drills act as.
pub const PRINCIPAL: &str = "chaos-drill";

/// Creates the key with `service api-key create` against `database_url`.
pub async fn create(
    service_binary: &std::path::Path,
    region: &str,
    database_url: &str,
) -> anyhow::Result<String> {
    let output = tokio::process::Command::new(service_binary)
        .args([
            "api-key",
            "create",
            "--principal",
            PRINCIPAL,
            "--scopes",
            "admin",
        ])
        .args(["--description", "chaos drills"])
        .env("SERVICE_REGION", region)
        .env("SERVICE_DATABASE_URL", database_url)
        .output()
        .await
        .context("cannot run service api-key create")?;
    if !output.status.success() {
        bail!(
            "service api-key create failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let key = String::from_utf8(output.stdout)
        .context("the API key is not UTF-8")?
        .trim()
        .to_owned();
    anyhow::ensure!(!key.is_empty(), "service api-key create printed no key");
    Ok(key)
}

/// `Authorization: Bearer <key>`, for a client's default headers (none
/// when `key` is empty: a deployment from before authentication).
pub fn headers(key: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Ok(mut value) = HeaderValue::from_str(&format!("Bearer {key}")) {
        value.set_sensitive(true);
        if !key.is_empty() {
            headers.insert(AUTHORIZATION, value);
        }
    }
    headers
}
