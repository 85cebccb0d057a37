//! JWTs from an identity provider, verified against its JWKS (a file, or an
//! https:// URL fetched again every `auth_jwt_jwks_refresh_s` so that key
//! rotation needs no restart): signature by a key of the set (chosen by
//! `kid`), an asymmetric algorithm only (an `HS*` token signed with a
//! public key as its secret is the classic forgery), `iss`, `aud`, `exp`
//! (required) and `nbf`, with `auth_jwt_leeway_s` of clock skew. The
//! principal is `sub`; scopes come from `scope` (space separated, RFC 8693)
//! or `scp` (an array).
//!
//! A token verified once is remembered by its SHA-256 (at most
//! `auth_jwt_cache_size` of them) until its `exp` (plus the leeway) or the
//! next read of the JWKS, whichever comes first: a client presenting the
//! same token pays a hash, not a signature check (ES256 costs about 0.3 ms
//! of CPU). Only tokens that passed every check are remembered, so the
//! cache holds no more than the valid tokens in use; its `nbf` and `exp`
//! are checked again at every hit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use sha2::Digest;

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
    cache: Arc<Mutex<HashMap<[u8; 32], Verified>>>,
    cache_size: usize,
}

/// A token that passed every check, and the window it stays valid in.
#[derive(Clone)]
struct Verified {
    principal: Principal,
    not_before: Option<u64>,
    expires: u64,
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
    exp: u64,
    #[serde(default)]
    nbf: Option<u64>,
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
            cache: Arc::default(),
            cache_size: settings.auth_jwt_cache_size,
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
        // A key may have been withdrawn: what it verified is forgotten.
        self.cache
            .lock()
            .expect("the cache lock is never poisoned")
            .clear();
        Ok(count)
    }

    /// The principal of a valid token; the reason it is not otherwise
    /// (logged, never answered).
    pub fn verify(&self, token: &str) -> Result<Principal, String> {
        if self.cache_size == 0 {
            return self.verify_fully(token).map(|verified| verified.principal);
        }
        let digest: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        let now = now_s();
        {
            let mut cache = self.cache.lock().expect("the cache lock is never poisoned");
            if let Some(verified) = cache.get(&digest) {
                if self.in_window(verified, now) {
                    return Ok(verified.principal.clone());
                }
                cache.remove(&digest);
            }
        }
        let verified = self.verify_fully(token)?;
        let principal = verified.principal.clone();
        let mut cache = self.cache.lock().expect("the cache lock is never poisoned");
        if cache.len() >= self.cache_size {
            // Only valid tokens get here; a full cache starts again rather
            // than keep an eviction order on every hit.
            cache.clear();
        }
        cache.insert(digest, verified);
        Ok(principal)
    }

    /// Whether a remembered token is still within `nbf` and `exp`.
    fn in_window(&self, verified: &Verified, now: u64) -> bool {
        now <= verified.expires.saturating_add(self.leeway_s)
            && verified
                .not_before
                .is_none_or(|nbf| now.saturating_add(self.leeway_s) >= nbf)
    }

    fn verify_fully(&self, token: &str) -> Result<Verified, String> {
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
        Ok(Verified {
            principal: Principal::new(&claims.sub, scopes),
            not_before: claims.nbf,
            expires: claims.exp,
        })
    }
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    use super::*;
    use crate::config::{Overrides, DEFAULTS_TOML};

    struct Fixture {
        signing: rcgen::KeyPair,
        jwks_path: std::path::PathBuf,
        jwks: String,
        verifier: JwtVerifier,
    }

    async fn fixture(leeway_s: u64) -> Fixture {
        let signing = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let point = signing.public_key_raw();
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256",
            "x": b64(&point[1..33]), "y": b64(&point[33..65])}]})
        .to_string();
        let jwks_path = std::env::temp_dir().join(format!(
            "jwt-cache-{}-{}.json",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::write(&jwks_path, &jwks).unwrap();
        let overrides = Overrides {
            region: Some("us-east-1".into()),
            database_url: Some("postgres://test@localhost/unused".into()),
            auth_jwt_jwks: Some(jwks_path.display().to_string()),
            auth_jwt_issuer: Some("https://idp.example".into()),
            auth_jwt_audience: Some("ledger".into()),
            auth_jwt_leeway_s: Some(leeway_s),
            ..Overrides::default()
        };
        let settings = Settings::from_layers(DEFAULTS_TOML.parse().unwrap(), &overrides).unwrap();
        let verifier = JwtVerifier::from_settings(&settings).unwrap();
        verifier.load().await.unwrap();
        Fixture {
            signing,
            jwks_path,
            jwks,
            verifier,
        }
    }

    fn token(key: &rcgen::KeyPair, exp: u64) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some("k1".into());
        let claims =
            json!({"sub": "jwt-user", "iss": "https://idp.example", "aud": "ledger", "exp": exp});
        let key = EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).unwrap();
        encode(&header, &claims, &key).unwrap()
    }

    #[tokio::test]
    async fn a_remembered_token_is_forgotten_when_the_jwks_is_read_again_without_its_key() {
        let f = fixture(5).await;
        let token = token(&f.signing, now_s() + 600);
        assert_eq!(&*f.verifier.verify(&token).unwrap().name, "jwt-user");
        // A hit.
        assert!(f.verifier.verify(&token).is_ok());
        std::fs::write(&f.jwks_path, f.jwks.replace("\"k1\"", "\"k2\"")).unwrap();
        f.verifier.load().await.unwrap();
        let refused = f.verifier.verify(&token).unwrap_err();
        assert!(refused.contains("no key \"k1\""), "{refused}");
        let _ = std::fs::remove_file(&f.jwks_path);
    }

    #[tokio::test]
    async fn a_remembered_token_is_refused_once_it_expires() {
        let f = fixture(0).await;
        let token = token(&f.signing, now_s() + 1);
        assert!(f.verifier.verify(&token).is_ok());
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let refused = f.verifier.verify(&token).unwrap_err();
        assert!(refused.contains("Expired"), "{refused}");
        let _ = std::fs::remove_file(&f.jwks_path);
    }
}
