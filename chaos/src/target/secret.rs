//! Secret references of a target file: `{env: NAME}` or `{file: path}`,
//! never the secret itself. A literal string where a secret belongs is
//! refused at parse time, and neither a resolved secret nor its reference's
//! contents are ever printed: errors name the variable or the file only.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

/// Where a secret comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretRef {
    /// An environment variable of the process that reads the target.
    Env(String),
    /// A file (relative paths are relative to the target file); its
    /// contents without the trailing newline.
    File(PathBuf),
}

/// A resolved secret; `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Why a secret reference could not be resolved; never contains the secret.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("field `{field}`: environment variable {name} is not set")]
    MissingVariable { field: String, name: String },
    #[error("field `{field}`: environment variable {name} is empty")]
    EmptyVariable { field: String, name: String },
    #[error("field `{field}`: cannot read secret file {}: {source}", path.display())]
    Unreadable {
        field: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("field `{field}`: secret file {} is empty", path.display())]
    EmptyFile { field: String, path: PathBuf },
}

impl SecretRef {
    /// Reads the secret; `field` names the reference in errors, `base` is
    /// the directory relative file paths start from.
    pub fn resolve(&self, field: &str, base: &Path) -> Result<Secret, SecretError> {
        match self {
            Self::Env(name) => {
                let value = std::env::var(name).map_err(|_| SecretError::MissingVariable {
                    field: field.to_owned(),
                    name: name.clone(),
                })?;
                if value.trim().is_empty() {
                    return Err(SecretError::EmptyVariable {
                        field: field.to_owned(),
                        name: name.clone(),
                    });
                }
                Ok(Secret(value))
            }
            Self::File(path) => {
                let path = base.join(path);
                let text =
                    std::fs::read_to_string(&path).map_err(|source| SecretError::Unreadable {
                        field: field.to_owned(),
                        path: path.clone(),
                        source,
                    })?;
                let value = text.trim_end_matches(['\n', '\r']);
                if value.trim().is_empty() {
                    return Err(SecretError::EmptyFile {
                        field: field.to_owned(),
                        path,
                    });
                }
                Ok(Secret(value.to_owned()))
            }
        }
    }
}

const EXPECTED: &str = "a secret reference, {env: NAME} or {file: path}";

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SecretRefVisitor)
    }
}

struct SecretRefVisitor;

impl<'de> Visitor<'de> for SecretRefVisitor {
    type Value = SecretRef;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXPECTED)
    }

    // The value is deliberately not echoed: it may be the secret.
    fn visit_str<E: de::Error>(self, _: &str) -> Result<SecretRef, E> {
        Err(E::custom(
            "a literal secret is not allowed in a target file: write {env: NAME} or \
             {file: path} and keep the secret there",
        ))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<SecretRef, E> {
        self.visit_str(&value.to_string())
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<SecretRef, E> {
        self.visit_str(&value.to_string())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SecretRef, A::Error> {
        let Some(key) = map.next_key::<String>()? else {
            return Err(de::Error::custom(format!(
                "empty mapping; expected {EXPECTED}"
            )));
        };
        let reference = match key.as_str() {
            "env" => SecretRef::Env(map.next_value()?),
            "file" => SecretRef::File(map.next_value()?),
            other => {
                return Err(de::Error::custom(format!(
                    "unknown key `{other}`; expected {EXPECTED}"
                )))
            }
        };
        if map.next_key::<String>()?.is_some() {
            return Err(de::Error::custom(format!(
                "more than one key; expected {EXPECTED}"
            )));
        }
        match &reference {
            SecretRef::Env(name) if name.trim().is_empty() => {
                Err(de::Error::custom("`env` names no variable"))
            }
            SecretRef::File(path) if path.as_os_str().is_empty() => {
                Err(de::Error::custom("`file` names no file"))
            }
            _ => Ok(reference),
        }
    }
}
