//! Configuration layers: embedded defaults, the file, `FAILOVER_*`
//! environment variables, then command-line flags.

use std::path::Path;

use toml::Value;

use super::Settings;

/// The embedded lowest layer.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// Why the configuration could not be loaded; each names the culprit.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {message}")]
    Parse { path: String, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Values given as flags (the highest layer), as dotted keys and values.
#[derive(Debug, Default, Clone)]
pub struct Overrides(pub Vec<(String, Value)>);

/// Loads and validates the settings from all layers.
pub fn load(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
    flags: &Overrides,
) -> Result<Settings, ConfigError> {
    let mut merged: Value = DEFAULT_TOML
        .parse::<toml::Table>()
        .map(Value::Table)
        .map_err(|e| ConfigError::Parse {
            path: "<embedded default.toml>".into(),
            message: e.to_string(),
        })?;
    if let Some(path) = file {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        let table = text
            .parse::<toml::Table>()
            .map_err(|e| ConfigError::Parse {
                path: shown,
                message: e.to_string(),
            })?;
        merge(&mut merged, Value::Table(table));
    }
    for (key, raw) in env {
        let Some(rest) = key.strip_prefix("FAILOVER_") else {
            continue;
        };
        if rest == "CONFIG" || rest.is_empty() {
            continue;
        }
        let dotted = rest.to_ascii_lowercase().replace("__", ".");
        set_dotted(&mut merged, &dotted, parse_scalar(&raw));
    }
    for (key, value) in &flags.0 {
        set_dotted(&mut merged, key, value.clone());
    }
    let settings: Settings = merged
        .try_into()
        .map_err(|e: toml::de::Error| ConfigError::Invalid(e.message().to_string()))?;
    settings.validate().map_err(ConfigError::Invalid)?;
    Ok(settings)
}

/// Environment values are TOML scalars or arrays when they parse as such
/// (`250`, `true`, `["a"]`), and plain strings otherwise.
fn parse_scalar(raw: &str) -> Value {
    match format!("v = {raw}").parse::<toml::Table>() {
        Ok(mut table) => table.remove("v").unwrap_or(Value::String(raw.into())),
        Err(_) => Value::String(raw.to_string()),
    }
}

fn set_dotted(root: &mut Value, dotted: &str, value: Value) {
    let mut node = root;
    let parts: Vec<&str> = dotted.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let Value::Table(table) = node else { return };
        if i + 1 == parts.len() {
            // A string setting given a number-looking value stays a string.
            let value = match (table.get(*part), value) {
                (Some(Value::String(_)), Value::Integer(n)) => Value::String(n.to_string()),
                (Some(Value::String(_)), Value::Float(n)) => Value::String(n.to_string()),
                (Some(Value::String(_)), Value::Boolean(b)) => Value::String(b.to_string()),
                (Some(Value::Float(_)), Value::Integer(n)) => Value::Float(n as f64),
                (_, value) => value,
            };
            table.insert((*part).to_string(), value);
            return;
        }
        node = table
            .entry((*part).to_string())
            .or_insert_with(|| Value::Table(Default::default()));
    }
}

fn merge(base: &mut Value, top: Value) {
    match (base, top) {
        (Value::Table(base), Value::Table(top)) => {
            for (key, value) in top {
                match base.get_mut(&key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, top) => *base = top,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const THREE: &str = include_str!("../../config/example-3-regions.toml");
    const CERT: &str = "probe.client_cert_file";
    const KEY: &str = "probe.client_key_file";

    fn example_file() -> tempfile_path::TempToml {
        tempfile_path::TempToml::new(THREE)
    }

    mod tempfile_path {
        pub struct TempToml(pub std::path::PathBuf);
        impl TempToml {
            pub fn new(text: &str) -> Self {
                let path =
                    std::env::temp_dir().join(format!("fc-config-{}.toml", uuid::Uuid::new_v4()));
                std::fs::write(&path, text).unwrap();
                Self(path)
            }
        }
        impl Drop for TempToml {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    #[test]
    fn example_loads_with_env_and_flags_on_top() {
        let file = example_file();
        let env = vec![
            ("FAILOVER_REGION".to_string(), "region-2".to_string()),
            ("FAILOVER_PROBE__INTERVAL_MS".to_string(), "250".to_string()),
            ("FAILOVER_PROBE__TIMEOUT_MS".to_string(), "200".to_string()),
            ("FAILOVER_ADMIN_TOKEN".to_string(), "12345".to_string()),
            ("HOME".to_string(), "/root".to_string()),
        ];
        let flags = Overrides(vec![("dry_run".into(), Value::Boolean(true))]);
        let settings = load(Some(&file.0), env, &flags).unwrap();
        assert_eq!(settings.region, "region-2");
        assert_eq!(settings.probe.interval_ms, 250);
        assert_eq!(settings.admin_token.expose(), "12345");
        assert!(settings.dry_run);
        assert_eq!(settings.regions.len(), 3);
        assert_eq!(settings.http_listen.port(), 9190);
        assert_eq!(settings.dns_listen.port(), 5353);
    }

    #[test]
    fn errors_name_the_field() {
        let file = example_file();
        let env = vec![
            ("FAILOVER_REGION".to_string(), "region-1".to_string()),
            ("FAILOVER_PROBE__TIMEOUT_MS".to_string(), "900".to_string()),
        ];
        let err = load(Some(&file.0), env, &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("probe.timeout_ms"), "{err}");

        let env = vec![("FAILOVER_REGION".to_string(), "nowhere".to_string())];
        let err = load(Some(&file.0), env, &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("region"), "{err}");

        let env = vec![
            ("FAILOVER_REGION".to_string(), "region-1".to_string()),
            ("FAILOVER_PROBE__BOGUS".to_string(), "1".to_string()),
        ];
        let err = load(Some(&file.0), env, &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("bogus"), "{err}");

        let env = vec![
            ("FAILOVER_REGION".to_string(), "region-1".to_string()),
            (
                "FAILOVER_DECISION__MAX_VIEW_AGE_MS".to_string(),
                "500".to_string(),
            ),
        ];
        let err = load(Some(&file.0), env, &Overrides::default()).unwrap_err();
        assert!(
            err.to_string().contains("decision.max_view_age_ms"),
            "{err}"
        );
    }

    #[test]
    fn ca_file_is_read_and_checked_at_start_up() {
        let load_with = |ca_file: &str| {
            let flags = Overrides(vec![(
                "probe.ca_file".into(),
                Value::String(ca_file.into()),
            )]);
            let env = vec![("FAILOVER_REGION".to_string(), "region-1".to_string())];
            load(Some(&example_file().0), env, &flags).map_err(|e| e.to_string())
        };
        let missing = std::env::temp_dir().join("fc-no-such-ca.pem");
        let err = load_with(&missing.display().to_string()).unwrap_err();
        assert!(err.contains("probe.ca_file: cannot read"), "{err}");
        let no_certificate = tempfile_path::TempToml::new("just text\n");
        let err = load_with(&no_certificate.0.display().to_string()).unwrap_err();
        assert!(
            err.contains("probe.ca_file:") && err.contains("no PEM certificate"),
            "{err}"
        );

        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let bundle = tempfile_path::TempToml::new(&params.self_signed(&key).unwrap().pem());
        let settings = load_with(&bundle.0.display().to_string()).unwrap();
        assert_eq!(settings.probe.ca_file, bundle.0.display().to_string());
        // Empty (the default): the public roots only, nothing to read.
        assert!(load_with("").unwrap().probe.ca_file.is_empty());
    }

    #[test]
    fn client_identity_is_both_or_neither_and_checked_at_start_up() {
        // Through the environment, as FAILOVER_PROBE__CLIENT_CERT_FILE would.
        let load_with = |cert: &str, key: &str| {
            let env = [
                ("FAILOVER_REGION", "region-1"),
                ("FAILOVER_PROBE__CLIENT_CERT_FILE", cert),
                ("FAILOVER_PROBE__CLIENT_KEY_FILE", key),
            ]
            .map(|(name, value)| (name.to_string(), value.to_string()));
            load(Some(&example_file().0), env, &Overrides::default()).map_err(|e| e.to_string())
        };
        let key_pair = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["probe.example".to_string()]).unwrap();
        let cert_file = tempfile_path::TempToml::new(&params.self_signed(&key_pair).unwrap().pem());
        let key_file = tempfile_path::TempToml::new(&key_pair.serialize_pem());
        let other_key = rcgen::KeyPair::generate().unwrap().serialize_pem();
        let other_key_file = tempfile_path::TempToml::new(&other_key);
        let path = |file: &tempfile_path::TempToml| file.0.display().to_string();
        let (cert, key, other_key) = (path(&cert_file), path(&key_file), path(&other_key_file));
        let missing = std::env::temp_dir().join("fc-no-such-client.pem");
        let missing = missing.display().to_string();

        // (client_cert_file, client_key_file, the field named, the reason)
        let cases: &[(&str, &str, &str, &str)] = &[
            (&cert, "", KEY, "required with probe.client_cert_file"),
            ("", &key, CERT, "required with probe.client_key_file"),
            (&missing, &key, CERT, "cannot read"),
            (&cert, &missing, KEY, "cannot read"),
            (&key, &key, CERT, "holds no PEM certificate"),
            (&cert, &cert, KEY, "holds no PEM private key"),
            (&cert, &other_key, KEY, "does not match the certificate"),
        ];
        for (cert, key, field, reason) in cases {
            let err = load_with(cert, key).unwrap_err();
            assert!(
                err.starts_with(&format!("invalid configuration: {field}: "))
                    && err.contains(reason),
                "expected {field} ... {reason} for ({cert:?}, {key:?}): {err}"
            );
        }

        let settings = load_with(&cert, &key).unwrap();
        assert_eq!(settings.probe.client_cert_file, cert);
        assert_eq!(settings.probe.client_key_file, key);
        // Neither (the default): no client certificate, nothing to read.
        assert!(load_with("", "").is_ok());
    }

    /// Loads `regions` (TOML) over a minimal file; returns the error text.
    fn load_regions(regions: &str, extra: &str) -> Result<Settings, String> {
        let file = tempfile_path::TempToml::new(&format!("{extra}\n{regions}"));
        let env = vec![("FAILOVER_REGION".to_string(), "a".to_string())];
        load(Some(&file.0), env, &Overrides::default()).map_err(|e| e.to_string())
    }

    const AWS_REGION_A: &str = r#"
[[regions]]
name = "a"
aws_region = "us-east-1"
health_urls = ["https://api-a.example.com/healthz/instance"]
alias_dns_name = "geo-a-api-1.us-east-1.elb.amazonaws.com"
alias_hosted_zone_id = "Z35SXDOTRQ7X7K"
evaluate_target_health = true
health_check_id = "0b6c6f1e-1111-4a8e-9d3b-0123456789ab"
"#;

    #[test]
    fn regions_with_health_urls_and_alias_targets_load() {
        let route53 = "[route53]\nenabled = true\nhosted_zone_id = \"Z1\"\nrecord_name = \"api.example.com.\"\n";
        let settings = load_regions(AWS_REGION_A, route53).unwrap();
        let region = &settings.regions[0];
        assert!(region.instances.is_empty() && region.has_alias());
        assert_eq!(
            region.probe_urls("http", "/healthz/instance"),
            vec!["https://api-a.example.com/healthz/instance".to_string()]
        );
        // Instances and URLs together: both probed, instances first.
        let mixed = "[[regions]]\nname = \"a\"\ninstances = [\"127.0.0.1:8080\"]\nhealth_urls = [\"http://localhost:8080/h\"]\n";
        let settings = load_regions(mixed, "").unwrap();
        assert_eq!(
            settings.regions[0].probe_urls("http", "/healthz/instance"),
            vec![
                "http://127.0.0.1:8080/healthz/instance".to_string(),
                "http://localhost:8080/h".to_string()
            ]
        );
    }

    #[test]
    fn bad_endpoint_settings_name_the_field() {
        let cases: &[(&str, &str, &str)] = &[
            ("[[regions]]\nname = \"a\"\n", "", "regions[0].instances"),
            (
                "[[regions]]\nname = \"a\"\nhealth_urls = [\"ftp://x/y\"]\n",
                "",
                "regions[0].health_urls[0]",
            ),
            (
                "[[regions]]\nname = \"a\"\nhealth_urls = [\"not a url\"]\n",
                "",
                "regions[0].health_urls[0]",
            ),
            (
                "[[regions]]\nname = \"a\"\nhealth_urls = [\"https://x/h\"]\nalias_dns_name = \"lb.example.com\"\n",
                "",
                "regions[0].alias_hosted_zone_id",
            ),
            (
                "[[regions]]\nname = \"a\"\nhealth_urls = [\"https://x/h\"]\nalias_hosted_zone_id = \"Z1\"\n",
                "",
                "regions[0].alias_dns_name",
            ),
            (
                "[[regions]]\nname = \"a\"\nhealth_urls = [\"https://x/h\"]\nalias_dns_name = \"bad name!\"\nalias_hosted_zone_id = \"Z1\"\n",
                "",
                "regions[0].alias_dns_name",
            ),
            (
                "[[regions]]\nname = \"a\"\ninstances = [\"127.0.0.1:1\"]\nevaluate_target_health = true\n",
                "",
                "regions[0].evaluate_target_health",
            ),
            (
                "[[regions]]\nname = \"a\"\ninstances = [\"127.0.0.1:1\"]\nroute53_values = [\"192.0.2.1\"]\nalias_dns_name = \"lb.example.com\"\nalias_hosted_zone_id = \"Z1\"\n",
                "",
                "regions[0].route53_values",
            ),
            // Authoritative DNS needs ip instances or an alias to answer with.
            (
                "[[regions]]\nname = \"a\"\nhealth_urls = [\"https://x/h\"]\n",
                "",
                "regions[0].instances: authoritative DNS",
            ),
            // Probing the admission endpoint would keep a drained region out
            // forever: the probes must read health apart from the drain flag.
            (
                "[[regions]]\nname = \"a\"\ninstances = [\"127.0.0.1:1\"]\n",
                "[probe]\npath = \"/healthz/region\"\n",
                "probe.path: /healthz/region answers 503 for a region the controller drained",
            ),
            (
                "[[regions]]\nname = \"a\"\ninstances = [\"127.0.0.1:1\"]\n",
                "[probe]\ninstance_scheme = \"ftp\"\n",
                "probe.instance_scheme: must be \"http\" or \"https\"",
            ),
            (
                "[[regions]]\nname = \"a\"\ninstances = [\"127.0.0.1:1\"]\nhealth_urls = [\"https://x/healthz/region/\"]\n",
                "",
                "regions[0].health_urls[0]: /healthz/region",
            ),
            // Route53 needs a target for the record.
            (
                "[[regions]]\nname = \"a\"\naws_region = \"us-east-1\"\nhealth_urls = [\"https://x/h\"]\n",
                "[dns]\nenabled = false\n[route53]\nenabled = true\nhosted_zone_id = \"Z1\"\nrecord_name = \"api.example.com.\"\n",
                "regions[0].alias_dns_name",
            ),
        ];
        for (regions, extra, field) in cases {
            let err = load_regions(regions, extra).unwrap_err();
            assert!(err.contains(field), "expected {field:?} in: {err}");
        }
        // Without authoritative DNS or Route53, health URLs alone are enough.
        load_regions(
            "[[regions]]\nname = \"a\"\nhealth_urls = [\"https://x/h\"]\n",
            "[dns]\nenabled = false\n",
        )
        .unwrap();
    }
}
