//! The target format: a round trip through what `chaos up` writes, and
//! the refusals, each naming its field.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::*;
use crate::controller_settings::ControllerSettings;
use crate::deployment::{DeploymentInfo, RegionInfo};

const VALID: &str = r#"
name: staging
service:
  public_name: api.gslb.example.com
  ca_file: tls/ca.pem
  api_key: {env: CHAOS_API_KEY}
dns:
  nameservers: ["10.0.0.53:53"]
regions:
  us-east-1:
    endpoints: ["https://10.0.1.10:443"]
    controller_admin_url: http://10.0.1.100:9190
  eu-west-1:
    endpoints: ["https://10.0.2.10:443"]
    controller_admin_url: http://10.0.2.100:9190
controller:
  admin_token: {file: secrets/admin-token}
blast_radius:
  may_touch: [eu-west-1]
  min_serving_regions: 1
"#;

fn refused(edit: impl Fn(&str) -> String) -> String {
    Target::parse(&edit(VALID)).expect_err("the edited target was accepted")
}

#[test]
fn a_valid_target_parses_with_its_secret_references() {
    let target = Target::parse(VALID).unwrap();
    assert_eq!(
        target.service.api_key,
        SecretRef::Env("CHAOS_API_KEY".into())
    );
    assert_eq!(
        target.controller.admin_token,
        SecretRef::File("secrets/admin-token".into())
    );
    assert_eq!(target.regions.len(), 2);
    assert_eq!(
        target.dns_addresses(&target.regions["us-east-1"]),
        vec!["10.0.1.10".parse::<std::net::IpAddr>().unwrap()]
    );
}

#[test]
fn bad_targets_are_refused_naming_the_field() {
    let cases: Vec<(String, &str)> = vec![
        (
            refused(|t| t.replace("{env: CHAOS_API_KEY}", "\"sk_live_123456\"")),
            "field `service.api_key`|a literal secret is not allowed",
        ),
        (
            refused(|t| t.replace("{file: secrets/admin-token}", "hunter2")),
            "field `controller.admin_token`|a literal secret is not allowed",
        ),
        (
            refused(|t| t.replace("{env: CHAOS_API_KEY}", "{vault: x}")),
            "unknown key `vault`",
        ),
        (
            refused(|t| t.replace("name: staging", "name: staging\ncolour: blue")),
            "unknown field `colour`",
        ),
        (
            refused(|t| {
                t.replace(
                    "    endpoints: [\"https://10.0.2.10:443\"]\n",
                    "    endpoints: []\n",
                )
            }),
            "field `regions.eu-west-1.endpoints`: must list at least one endpoint URL",
        ),
        (
            refused(|t| t.replace("    endpoints: [\"https://10.0.2.10:443\"]\n", "")),
            "missing field `endpoints`",
        ),
        (
            refused(|t| {
                t.replace("  nameservers: [\"10.0.0.53:53\"]\n", "  {}\n")
                    .replace("dns:\n  {}", "dns: {}")
            }),
            "field `dns`: needs `resolvers`",
        ),
        (
            refused(|t| t.replace("may_touch: [eu-west-1]", "may_touch: [eu-west-2]")),
            "field `blast_radius.may_touch`: \"eu-west-2\" is not one of `regions`",
        ),
        (
            refused(|t| t.replace("min_serving_regions: 1", "min_serving_regions: 3")),
            "field `blast_radius.min_serving_regions`: 3 is more than the 2 regions",
        ),
        (
            refused(|t| t.replace("http://10.0.2.100:9190", "10.0.2.100:9190")),
            "field `regions.eu-west-1.controller_admin_url`",
        ),
        (
            refused(|t| t.replace("\"10.0.0.53:53\"", "\"10.0.0.53\"")),
            "field `dns.nameservers[0]`",
        ),
        (
            refused(|t| {
                format!(
                    "{t}vantage_points:\n  - region: eu-west-1\n    runner: {{url: runner.example:7460, \
                     token: {{env: RUNNER_TOKEN}}}}\n"
                )
            }),
            "field `vantage_points[0].runner.url`: \"runner.example:7460\" is not an http",
        ),
        (
            refused(|t| {
                format!(
                    "{t}vantage_points:\n  - region: eu-west-1\n    runner: {{url: https://r.example, \
                     token: hunter2}}\n"
                )
            }),
            "field `vantage_points[0].runner.token`|a literal secret is not allowed",
        ),
        (
            refused(|t| {
                format!("{t}vantage_points:\n  - region: eu-west-1\n  - region: eu-west-1\n")
            }),
            "field `vantage_points[1].region`: \"eu-west-1\" has a vantage point already",
        ),
    ];
    for (error, wanted) in cases {
        for part in wanted.split('|') {
            assert!(error.contains(part), "{error:?} does not say {part:?}");
        }
        assert!(
            !error.contains("sk_live_123456") && !error.contains("hunter2"),
            "{error}"
        );
    }
}

#[test]
fn secrets_resolve_from_files_and_variables_and_errors_name_only_the_reference() {
    let dir = std::env::temp_dir().join(format!("chaos-target-secret-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("secrets")).unwrap();
    std::fs::write(dir.join("secrets/token"), "s3cret\n").unwrap();
    let file = SecretRef::File("secrets/token".into());
    assert_eq!(file.resolve("f", &dir).unwrap().expose(), "s3cret");
    assert_eq!(
        format!("{:?}", file.resolve("f", &dir).unwrap()),
        "Secret(<redacted>)"
    );
    let missing = SecretRef::File("secrets/nope".into()).resolve("controller.admin_token", &dir);
    let message = missing.unwrap_err().to_string();
    assert!(
        message.contains("controller.admin_token") && message.contains("secrets/nope"),
        "{message}"
    );
    let unset =
        SecretRef::Env("CHAOS_TEST_SURELY_UNSET_VARIABLE".into()).resolve("service.api_key", &dir);
    assert!(unset
        .unwrap_err()
        .to_string()
        .contains("CHAOS_TEST_SURELY_UNSET_VARIABLE is not set"));
    let _ = std::fs::remove_dir_all(&dir);
}

fn local_info(run_dir: PathBuf) -> DeploymentInfo {
    let address = |text: &str| text.parse::<SocketAddr>().unwrap();
    DeploymentInfo {
        regions: ["us-east-1", "eu-west-1", "ap-southeast-1"]
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let r = i + 1;
                RegionInfo {
                    name: (*name).to_owned(),
                    index: r as u8,
                    instances: vec![
                        address(&format!("127.30.{r}.11:8080")),
                        address(&format!("127.30.{r}.12:8080")),
                    ],
                    controller_http: address(&format!("127.30.{r}.100:9190")),
                    controller_dns: address(&format!("127.30.{r}.100:5353")),
                    client_address: format!("127.30.{r}.200").parse().unwrap(),
                    resolver: address(&format!("127.30.{r}.53:5300")),
                    host: None,
                }
            })
            .collect(),
        instances_per_region: 2,
        controller: ControllerSettings::production(),
        wan: None,
        service_name: "api.svc.failover.test.".into(),
        ca_pem: String::new(),
        database_url: "postgres://chaos:pa\"ss@127.0.0.1:5432/ledger_x".into(),
        run_dir,
        bin_dir: PathBuf::new(),
        postgres_version: String::new(),
        api_key: "key-123".into(),
        route53: None,
    }
}

#[test]
fn what_chaos_up_writes_reads_back_the_same_with_owner_only_secrets() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("chaos-target-write-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let info = local_info(dir.clone());
    let (target, secrets) = local_target(
        &info,
        "http://127.0.0.1:40000",
        "admin-s3cret",
        "control-s3cret",
    );
    let path = write_target(&dir, &target, &secrets).unwrap();
    assert_eq!(path, dir.join(TARGET_FILE));
    let text = std::fs::read_to_string(&path).unwrap();
    for secret in ["admin-s3cret", "control-s3cret", "key-123", "pa\\\"ss"] {
        assert!(
            !text.contains(secret),
            "{secret} is in the target file:\n{text}"
        );
    }
    let read = Target::load(&path).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(read, target, "{text}");
    assert_eq!(read.blast_radius.min_serving_regions, 2);
    let resolved = |r: &SecretRef| r.resolve("x", &read.base_dir).unwrap().expose().to_owned();
    assert_eq!(resolved(&read.controller.admin_token), "admin-s3cret");
    assert_eq!(
        resolved(&read.local.as_ref().unwrap().token),
        "control-s3cret"
    );
    assert_eq!(resolved(&read.service.api_key), "key-123");
    assert_eq!(
        resolved(&read.ledger.as_ref().unwrap().database_url),
        info.database_url
    );
    for name in ["admin-token", "control-token", "api-key", "database-url"] {
        let mode = std::fs::metadata(dir.join("secrets").join(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name}");
    }
    // No temporary file is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .chain(std::fs::read_dir(dir.join("secrets")).unwrap())
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The worked examples of docs/drill-examples.md are files the tool
/// accepts: every target file and every whole drill file in it parses and
/// validates, and the drills pass the blast-radius guard of the target
/// before them.
#[test]
fn the_worked_examples_in_the_docs_parse() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/drill-examples.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```yaml") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), line) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    let (mut targets, mut drills, mut additions) = (0, 0, 0);
    let mut last_target: Option<Target> = None;
    let mut last_text = String::new();
    for block in &blocks {
        if block.starts_with("name:") {
            last_target = Some(Target::parse(block).unwrap_or_else(|e| panic!("{e}\n{block}")));
            last_text = block.clone();
            targets += 1;
        } else if block.starts_with("vantage_points:") {
            // An addition to the target before it (its load runners).
            let whole = format!("{last_text}{block}");
            Target::parse(&whole).unwrap_or_else(|e| panic!("{e}\n{whole}"));
            additions += 1;
        } else if block.starts_with("title:") {
            let drill = crate::spec::Drill::parse(block).unwrap_or_else(|e| panic!("{e}\n{block}"));
            let target = last_target.as_ref().expect("a target before the drill");
            let regions: Vec<String> = target.regions.keys().cloned().collect();
            let verdict = super::guard::check(&drill, &regions, &target.blast_radius);
            assert!(verdict.allowed(), "{}", verdict.render());
            drills += 1;
        }
    }
    assert_eq!(
        (targets, drills, additions),
        (2, 1, 1),
        "the examples in {}",
        path.display()
    );
}
