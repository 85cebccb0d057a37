//! API keys: `lk_<prefix>_<secret>`, the prefix to look the key up and
//! the secret stored only as its SHA-256.
//!
//! Every instance holds a snapshot of the unrevoked keys in memory
//! ([`KeyStore`]), re-read from the database every
//! `auth_api_key_refresh_ms`, so that authenticating a request never waits
//! for the database: a flood of wrong keys costs no query, and a wrong key
//! (unknown prefix, or right prefix and wrong secret) takes the same work
//! as a right one: one SHA-256 of the presented secret and one
//! constant-time comparison, against a dummy digest when the prefix is
//! unknown. Keys live in the database, so every region accepts them after
//! another region is lost.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, Row};
use subtle::ConstantTimeEq;

use super::{Principal, Scopes};

/// What every key starts with, so that scanners (and people) recognise one.
pub const KEY_PREFIX: &str = "lk_";
/// Hex characters of the lookup prefix (48 random bits: unique, not secret).
const PREFIX_HEX: usize = 12;
/// Hex characters of the secret (256 random bits).
const SECRET_HEX: usize = 64;

/// A new key, shown once to the operator who created it.
#[derive(Debug)]
pub struct NewApiKey {
    pub prefix: String,
    /// The whole key; only its secret's digest is stored.
    pub token: crate::config::SecretString,
}

/// One unrevoked key as the snapshot holds it.
#[derive(Debug, Clone)]
struct StoredKey {
    secret_sha256: [u8; 32],
    principal: Principal,
}

/// The keys by prefix, as one load of the `api_keys` table left them.
type Snapshot = Arc<HashMap<String, StoredKey>>;

/// The keys an instance accepts: a snapshot of the `api_keys` table.
#[derive(Debug, Clone, Default)]
pub struct KeyStore {
    snapshot: Arc<RwLock<Option<Snapshot>>>,
}

/// Why a presented key was refused. The reason is logged, never answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRefusal {
    Malformed,
    UnknownOrWrong,
    /// No snapshot was read yet (the database has not answered since start).
    NotLoaded,
}

impl KeyStore {
    /// Checks `token` against the snapshot.
    pub fn verify(&self, token: &str) -> Result<Principal, KeyRefusal> {
        let snapshot = self
            .snapshot
            .read()
            .expect("the key snapshot lock is never poisoned")
            .clone()
            .ok_or(KeyRefusal::NotLoaded)?;
        // The same work whatever is wrong with the key: split, hash what
        // stands for the secret, look the prefix up, compare in constant time.
        let (prefix, secret, well_formed) = match split(token) {
            Some((prefix, secret)) => (prefix, secret, true),
            None => ("", token, false),
        };
        let presented: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        let stored = snapshot.get(prefix);
        let expected = stored.map_or(&DUMMY_DIGEST, |key| &key.secret_sha256);
        let matches = bool::from(presented.ct_eq(expected));
        match stored {
            Some(key) if matches && well_formed => Ok(key.principal.clone()),
            _ if !well_formed => Err(KeyRefusal::Malformed),
            _ => Err(KeyRefusal::UnknownOrWrong),
        }
    }

    /// A store already loaded with `keys` (prefix, secret, principal),
    /// without a database: the auth benchmark (benches/auth.rs) and unit
    /// tests have no `api_keys` table to read. Hidden because the service
    /// itself loads keys only through [`KeyStore::refresh`].
    #[doc(hidden)]
    pub fn from_secrets<'a>(keys: impl IntoIterator<Item = (&'a str, &'a str, Principal)>) -> Self {
        let keys: HashMap<String, StoredKey> = keys
            .into_iter()
            .map(|(prefix, secret, principal)| {
                let secret_sha256 = Sha256::digest(secret.as_bytes()).into();
                (
                    prefix.to_owned(),
                    StoredKey {
                        secret_sha256,
                        principal,
                    },
                )
            })
            .collect();
        Self {
            snapshot: Arc::new(RwLock::new(Some(Arc::new(keys)))),
        }
    }

    /// True once a snapshot was read.
    pub fn is_loaded(&self) -> bool {
        self.snapshot
            .read()
            .expect("the key snapshot lock is never poisoned")
            .is_some()
    }

    /// Re-reads the unrevoked keys; on error the previous snapshot stays.
    pub async fn refresh(&self, pool: &crate::db::Pool) -> Result<usize, sqlx::Error> {
        let rows = pool
            .run(|connection| {
                Box::pin(
                    sqlx::query(
                        "SELECT prefix, secret_sha256, principal, scopes FROM api_keys \
                         WHERE revoked_at IS NULL",
                    )
                    .fetch_all(connection),
                )
            })
            .await?;
        let mut keys = HashMap::with_capacity(rows.len());
        for row in rows {
            let prefix: String = row.try_get("prefix")?;
            let digest: String = row.try_get("secret_sha256")?;
            let Some(secret_sha256) = hex::decode(&digest)
                .ok()
                .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            else {
                tracing::warn!(%prefix, "api key with a malformed digest ignored");
                continue;
            };
            let principal: String = row.try_get("principal")?;
            let scopes: String = row.try_get("scopes")?;
            keys.insert(
                prefix,
                StoredKey {
                    secret_sha256,
                    principal: Principal::new(&principal, Scopes::parse(&scopes)),
                },
            );
        }
        let count = keys.len();
        *self
            .snapshot
            .write()
            .expect("the key snapshot lock is never poisoned") = Some(Arc::new(keys));
        Ok(count)
    }
}

/// Compared with when the prefix is unknown, so that the comparison runs.
const DUMMY_DIGEST: [u8; 32] = [0x5a; 32];

fn split(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(KEY_PREFIX)?;
    let (prefix, secret) = rest.split_once('_')?;
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(prefix, PREFIX_HEX) && hex(secret, SECRET_HEX)).then_some((prefix, secret))
}

/// A principal name this service accepts: 1 to 200 visible ASCII
/// characters (JWT subjects such as `auth0|42` included).
pub fn is_principal_name(name: &str) -> bool {
    (1..=200).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_graphic())
}

/// Creates a key for `principal` and stores its digest (`service api-key create`).
pub async fn create(
    connection: &mut PgConnection,
    principal: &str,
    scopes: &Scopes,
    description: &str,
) -> anyhow::Result<NewApiKey> {
    anyhow::ensure!(
        is_principal_name(principal),
        "the principal must be 1 to 200 visible ASCII characters, got {principal:?}"
    );
    let mut random = [0u8; (PREFIX_HEX + SECRET_HEX) / 2];
    rand::rngs::OsRng.fill_bytes(&mut random);
    let prefix = hex::encode(&random[..PREFIX_HEX / 2]);
    let secret = hex::encode(&random[PREFIX_HEX / 2..]);
    let digest = hex::encode(Sha256::digest(secret.as_bytes()));
    sqlx::query(
        "INSERT INTO api_keys (prefix, secret_sha256, principal, scopes, description) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&prefix)
    .bind(&digest)
    .bind(principal)
    .bind(scopes.to_string())
    .bind(description)
    .execute(&mut *connection)
    .await?;
    Ok(NewApiKey {
        token: crate::config::SecretString::new(format!("{KEY_PREFIX}{prefix}_{secret}")),
        prefix,
    })
}

/// Revokes the key with `prefix` (`service api-key revoke`); false when
/// there is no such unrevoked key.
pub async fn revoke(connection: &mut PgConnection, prefix: &str) -> Result<bool, sqlx::Error> {
    let prefix = prefix
        .strip_prefix(KEY_PREFIX)
        .map_or(prefix, |rest| rest.split('_').next().unwrap_or(rest));
    let done = sqlx::query(
        "UPDATE api_keys SET revoked_at = now() WHERE prefix = $1 AND revoked_at IS NULL",
    )
    .bind(prefix)
    .execute(&mut *connection)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Every key, revoked ones included, without secrets (`service api-key list`).
pub async fn list(connection: &mut PgConnection) -> Result<Vec<String>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT prefix, principal, scopes, description, created_at::TEXT AS created, \
         COALESCE(revoked_at::TEXT, '') AS revoked FROM api_keys ORDER BY created_at",
    )
    .fetch_all(&mut *connection)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(format!(
                "{KEY_PREFIX}{}\tprincipal={}\tscopes={}\tcreated={}\trevoked={}\t{}",
                row.try_get::<String, _>("prefix")?,
                row.try_get::<String, _>("principal")?,
                row.try_get::<String, _>("scopes")?,
                row.try_get::<String, _>("created")?,
                row.try_get::<String, _>("revoked")?,
                row.try_get::<String, _>("description")?,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with(prefix: &str, secret: &str) -> KeyStore {
        KeyStore::from_secrets([(prefix, secret, Principal::new("alice", Scopes::default()))])
    }

    #[test]
    fn only_the_right_secret_of_a_known_prefix_is_accepted() {
        let (prefix, secret) = ("0123456789ab", "ab".repeat(32));
        let store = store_with(prefix, &secret);
        let principal = store.verify(&format!("lk_{prefix}_{secret}")).unwrap();
        assert_eq!(&*principal.name, "alice");
        let wrong = "cd".repeat(32);
        assert_eq!(
            store.verify(&format!("lk_{prefix}_{wrong}")).unwrap_err(),
            KeyRefusal::UnknownOrWrong
        );
        assert_eq!(
            store
                .verify(&format!("lk_ffffffffffff_{secret}"))
                .unwrap_err(),
            KeyRefusal::UnknownOrWrong
        );
        for malformed in [
            "",
            "lk_",
            "lk_0123456789ab",
            "Bearer x",
            &format!("lk_{prefix}_{}", &secret[1..]),
        ] {
            assert_eq!(
                store.verify(malformed).unwrap_err(),
                KeyRefusal::Malformed,
                "{malformed}"
            );
        }
    }

    #[test]
    fn nothing_is_accepted_before_the_first_snapshot() {
        let store = KeyStore::default();
        assert_eq!(store.verify("lk_x_y").unwrap_err(), KeyRefusal::NotLoaded);
    }
}
