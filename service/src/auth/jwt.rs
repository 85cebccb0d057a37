//! JWTs from an identity provider, verified against its JWKS (a file, or an
//! https:// URL fetched again every `auth_jwt_jwks_refresh_s` so that key
//! rotation needs no restart): signature by a key of the set (chosen by
//! `kid`), an asymmetric algorithm only (an `HS*` token signed with a
//! public key as its secret is the classic forgery), `iss`, `aud`, `exp`
//! (required) and `nbf`, with `auth_jwt_leeway_s` of clock skew. The
//! principal is `sub`; scopes come from `scope` (space separated, RFC 8693)
//! or `scp` (an array).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::{Principal, Scopes};
use crate::config::Settings;

/// Algorithms a token may be signed with: asymmetric ones only.
const ALLOWED: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Where the key set comes from.
#[derive(Debug, Clone)]
pub enum JwksSource {
    File(std::path::PathBuf),
    Url(String),
}

/// Why a JWKS could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("cannot read the JWKS file {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot fetch the JWKS from {url}: {source}")]
    Fetch { url: String, source: reqwest::Error },
    #[error("the JWKS is not a valid JSON Web Key Set: {0}")]
    Parse(serde_json::Error),
    #[error("JWKS key {kid:?} cannot be used: {source}")]
    Key {
        kid: String,
        source: jsonwebtoken::errors::Error,
    },
}

/// One usable key of the set.
struct VerificationKey {
    key: DecodingKey,
    /// The key's `alg`, when the set names one: a token must use it.
    algorithm: Option<Algorithm>,
}

/// Verifies JWTs against the current key set.
#[derive(Clone)]
pub struct JwtVerifier {
    source: JwksSource,
    keys: Arc<RwLock<Arc<HashMap<String, VerificationKey>>>>,
    issuer: String,
    audience: String,
    leeway_s: u64,
    refresh: Duration,
    http: reqwest::Client,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("source", &self.source)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    scp: Option<Vec<String>>,
}

impl JwtVerifier {
    /// `None` when JWTs are not configured (`auth_jwt_jwks` empty).
    pub fn from_settings(settings: &Settings) -> Option<Self> {
        let jwks = settings.auth_jwt_jwks.trim();
        if jwks.is_empty() {
            return None;
        }
        let source = if jwks.starts_with("https://") {
            JwksSource::Url(jwks.to_owned())
        } else {
            JwksSource::File(jwks.into())
        };
        Some(Self {
            source,
            keys: Arc::default(),
            issuer: settings.auth_jwt_issuer.clone(),
            audience: settings.auth_jwt_audience.clone(),
            leeway_s: settings.auth_jwt_leeway_s,
            refresh: Duration::from_secs(settings.auth_jwt_jwks_refresh_s),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("a plain HTTPS client builds"),
        })
    }

    /// How often [`JwtVerifier::load`] should run again.
    pub fn refresh_interval(&self) -> Duration {
        self.refresh
    }

    /// Reads the key set; on error the previous set stays in use.
    pub async fn load(&self) -> Result<usize, JwksError> {
        let text = match &self.source {
            JwksSource::File(path) => {
                tokio::fs::read_to_string(path)
                    .await
                    .map_err(|source| JwksError::Read {
                        path: path.clone(),
                        source,
                    })?
            }
            JwksSource::Url(url) => {
                let fetch = async {
                    self.http
                        .get(url)
                        .send()
                        .await?
                        .error_for_status()?
                        .text()
                        .await
                };
                fetch.await.map_err(|source| JwksError::Fetch {
                    url: url.clone(),
                    source,
                })?
            }
        };
        let set: JwkSet = serde_json::from_str(&text).map_err(JwksError::Parse)?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let kid = jwk.common.key_id.clone().unwrap_or_default();
            let key = DecodingKey::from_jwk(jwk).map_err(|source| JwksError::Key {
                kid: kid.clone(),
                source,
            })?;
            let algorithm = jwk
                .common
                .key_algorithm
                .and_then(|alg| alg.to_string().parse::<Algorithm>().ok());
            keys.insert(kid, VerificationKey { key, algorithm });
        }
        let count = keys.len();
        *self.keys.write().expect("the JWKS lock is never poisoned") = Arc::new(keys);
        Ok(count)
    }

    /// The principal of a valid token; the reason it is not otherwise
    /// (logged, never answered).
    pub fn verify(&self, token: &str) -> Result<Principal, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| format!("header: {e}"))?;
        if !ALLOWED.contains(&header.alg) {
            return Err(format!("algorithm {:?} is not accepted", header.alg));
        }
        let keys = self
            .keys
            .read()
            .expect("the JWKS lock is never poisoned")
            .clone();
        let kid = header.kid.clone().unwrap_or_default();
        let key = keys
            .get(&kid)
            .ok_or_else(|| format!("no key {kid:?} in the JWKS"))?;
        if key.algorithm.is_some_and(|alg| alg != header.alg) {
            return Err(format!("key {kid:?} is not for {:?}", header.alg));
        }
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = self.leeway_s;
        validation.validate_nbf = true;
        let data = jsonwebtoken::decode::<Claims>(token, &key.key, &validation)
            .map_err(|e| e.to_string())?;
        let claims = data.claims;
        if !super::api_keys::is_principal_name(&claims.sub) {
            return Err("`sub` is not a valid principal name".into());
        }
        let scopes = match (claims.scope, claims.scp) {
            (Some(scope), _) => Scopes::parse(&scope),
            (None, Some(scp)) => Scopes::parse(&scp.join(" ")),
            (None, None) => Scopes::default(),
        };
        Ok(Principal::new(&claims.sub, scopes))
    }
}
