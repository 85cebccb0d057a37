//! Writing target files: the YAML writer (block style, every string
//! quoted, so that no value changes meaning on the way back), the atomic
//! write with the referenced secret files, and the target `chaos up`
//! writes for its own deployment.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{
    BlastRadius, ControllerTarget, DnsTarget, LedgerTarget, LocalTarget, RegionTarget, SecretRef,
    ServiceTarget, Target, VantagePoint,
};
use crate::deployment::DeploymentInfo;

/// Name of the file in `chaos up`'s run directory.
pub const TARGET_FILE: &str = "target.yaml";
/// Where the secret files go, relative to the target file.
const SECRETS_DIR: &str = "secrets";

/// The target of a running `chaos up` and its secrets (file name under
/// `secrets/`, contents): the admin token of the controllers, the control
/// API's token, the drills' API key and the ledger's database URL.
pub fn local_target(
    info: &DeploymentInfo,
    control_url: &str,
    admin_token: &str,
    control_token: &str,
) -> (Target, Vec<(&'static str, String)>) {
    let secret = |name: &str| SecretRef::File(Path::new(SECRETS_DIR).join(name));
    let regions: BTreeMap<String, RegionTarget> = info
        .regions
        .iter()
        .map(|region| {
            let endpoints = region
                .instances
                .iter()
                .map(|address| format!("https://{address}"))
                .collect();
            let target = RegionTarget {
                endpoints,
                controller_admin_url: format!("http://{}", region.controller_http),
                dns_addresses: Vec::new(),
            };
            (region.name.clone(), target)
        })
        .collect();
    let target = Target {
        name: "local".into(),
        service: ServiceTarget {
            public_name: info.service_name.clone(),
            ca_file: Some(PathBuf::from("tls/ca.pem")),
            api_key: secret("api-key"),
        },
        dns: DnsTarget {
            resolvers: info
                .regions
                .iter()
                .map(|r| (r.name.clone(), r.resolver))
                .collect(),
            nameservers: info.regions.iter().map(|r| r.controller_dns).collect(),
        },
        controller: ControllerTarget {
            admin_token: secret("admin-token"),
        },
        ledger: Some(LedgerTarget {
            database_url: secret("database-url"),
        }),
        prometheus: None,
        vantage_points: info
            .regions
            .iter()
            .map(|r| VantagePoint {
                region: r.name.clone(),
                source_address: Some(r.client_address),
                resolver: Some(r.resolver),
                runner: None,
            })
            .collect(),
        blast_radius: BlastRadius {
            may_touch: info.regions.iter().map(|r| r.name.clone()).collect(),
            min_serving_regions: regions.len().saturating_sub(1).max(1),
        },
        regions,
        local: Some(LocalTarget {
            control_url: control_url.to_owned(),
            token: secret("control-token"),
        }),
        base_dir: info.run_dir.clone(),
    };
    let secrets = vec![
        ("admin-token", admin_token.to_owned()),
        ("control-token", control_token.to_owned()),
        ("api-key", info.api_key.clone()),
        ("database-url", info.database_url.clone()),
    ];
    (target, secrets)
}

/// Writes `secrets` (0600, under `<dir>/secrets/`) and then `<dir>/
/// target.yaml`, each through a temporary file and a rename, so that a
/// reader never sees a half-written file. Returns the target file's path.
pub fn write_target(
    dir: &Path,
    target: &Target,
    secrets: &[(&str, String)],
) -> std::io::Result<PathBuf> {
    let secrets_dir = dir.join(SECRETS_DIR);
    std::fs::create_dir_all(&secrets_dir)?;
    for (name, value) in secrets {
        write_atomically(&secrets_dir.join(name), format!("{value}\n").as_bytes())?;
    }
    let path = dir.join(TARGET_FILE);
    let mut text = String::from(
        "# Written by `chaos up`: this deployment as a target of `chaos check --target`\n\
         # and `chaos drill --target` (format in docs/drills.md, \"Drilling a deployment\").\n",
    );
    let value = serde_json::to_value(target).map_err(std::io::Error::other)?;
    emit_mapping(&value, 0, &mut text);
    write_atomically(&path, text.as_bytes())?;
    Ok(path)
}

/// Owner-only, through a temporary sibling and a rename.
fn write_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or("file");
    let temporary = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&temporary);
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)?;
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

/// A mapping in block style; one-entry mappings of scalars (the secret
/// references) and lists of scalars in flow style.
fn emit_mapping(value: &Value, indent: usize, out: &mut String) {
    let Value::Object(map) = value else {
        return;
    };
    let pad = " ".repeat(indent);
    for (key, value) in map {
        let key = key_text(key);
        match value {
            Value::Null => {}
            Value::Object(inner) if inner.len() == 1 && inner.values().all(is_scalar) => {
                out.push_str(&format!("{pad}{key}: {}\n", flow(value)));
            }
            Value::Object(_) => {
                out.push_str(&format!("{pad}{key}:\n"));
                emit_mapping(value, indent + 2, out);
            }
            Value::Array(items) if items.iter().all(is_scalar) => {
                out.push_str(&format!("{pad}{key}: {}\n", flow(value)));
            }
            Value::Array(items) => {
                out.push_str(&format!("{pad}{key}:\n"));
                for item in items {
                    out.push_str(&format!("{pad}  - {}\n", flow(item)));
                }
            }
            scalar => out.push_str(&format!("{pad}{key}: {}\n", flow(scalar))),
        }
    }
}

fn is_scalar(value: &Value) -> bool {
    !matches!(value, Value::Object(_) | Value::Array(_))
}

/// Flow style; strings JSON-quoted (a JSON string is a YAML double-quoted
/// scalar).
fn flow(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let entries: Vec<String> = map
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| format!("{}: {}", key_text(k), flow(v)))
                .collect();
            format!("{{{}}}", entries.join(", "))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(flow).collect();
            format!("[{}]", items.join(", "))
        }
        other => other.to_string(),
    }
}

fn key_text(key: &str) -> String {
    let plain = !key.is_empty()
        && key.as_bytes()[0].is_ascii_alphabetic()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if plain {
        key.to_owned()
    } else {
        Value::String(key.to_owned()).to_string()
    }
}
