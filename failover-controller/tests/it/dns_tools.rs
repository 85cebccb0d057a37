//! The DNS tools the conformance tests run as subprocesses (`dig` and
//! `drill`, `dnsviz`; `scripts/tools.sh` installs them), their output
//! parsed, and one controller shared by those tests.
//!
//! The shared controller runs on its own thread and runtime for the life of
//! the test binary, so that each check is a plain test of its own (and one
//! failing check does not hide the others). It serves three regions whose
//! instances nothing answers: its only vantage point sees every region
//! down, is discarded, and so never drains one. `region-2` has 120
//! instances, an answer too large for a 512 or 1232-byte UDP payload.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::OnceLock;

use failover_controller::app::Application;

use crate::helpers::{settings, test_db};

/// Instances of the large region: 120 A records, about 1,960 bytes.
pub const LARGE_REGION_INSTANCES: usize = 120;

/// Client addresses by region (the test subnets are 127.0.R.0/24).
pub const CLIENT_REGION_1: &str = "127.0.1.9";
pub const CLIENT_REGION_2: &str = "127.0.2.9";

/// The shared controller's DNS address (started on first use).
pub fn shared_dns() -> SocketAddr {
    static DNS: OnceLock<SocketAddr> = OnceLock::new();
    *DNS.get_or_init(|| {
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().expect("runtime");
            runtime.block_on(async move {
                let db = test_db().await;
                let app = Application::build(settings("region-1", &db.url, &regions_toml(), ""))
                    .await
                    .expect("controller");
                sender.send(app.dns_addr().expect("dns enabled")).unwrap();
                app.run_until_stopped(std::future::pending::<()>())
                    .await
                    .expect("controller run");
            });
        });
        receiver.recv().expect("shared controller started")
    })
}

/// Regions 1 and 3 with two instances, region 2 with many, on addresses
/// where nothing listens (port 9, discard).
fn regions_toml() -> String {
    let region = |n: usize, count: usize| {
        let instances: Vec<String> = (1..=count)
            .map(|i| format!("\"127.0.{}.{}:9\"", 20 + n, i))
            .collect();
        format!(
            "[[regions]]\nname = \"region-{n}\"\ninstances = [{}]\naws_region = \"us-east-1\"\n\n",
            instances.join(", ")
        )
    };
    [
        region(1, 2),
        region(2, LARGE_REGION_INSTANCES),
        region(3, 2),
    ]
    .concat()
}

/// The addresses of region `n` of the shared controller.
pub fn region_addresses(n: usize) -> Vec<String> {
    let count = if n == 2 { LARGE_REGION_INSTANCES } else { 2 };
    (1..=count)
        .map(|i| format!("127.0.{}.{i}", 20 + n))
        .collect()
}

/// Runs a tool, failing the test with a hint when it is not installed.
pub fn run_tool(program: &str, args: &[String]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} ({e}): install it with scripts/tools.sh"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}\n{stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// `dig @server -p port -b source <args>`, without retries, 2 s timeout;
/// the last response it printed (after a TC, dig asks again over TCP).
pub fn dig(server: SocketAddr, source: &str, args: &[&str]) -> Response {
    let mut argv = vec![
        format!("@{}", server.ip()),
        "-p".into(),
        server.port().to_string(),
        "-b".into(),
        source.into(),
        "+tries=1".into(),
        "+time=2".into(),
    ];
    argv.extend(args.iter().map(|a| a.to_string()));
    Response::parse(&run_tool("dig", &argv))
}

/// `drill -p port @server -I source <args>` (ldns's client).
pub fn drill(server: SocketAddr, source: &str, args: &[&str]) -> Response {
    let mut argv = vec![
        "-p".into(),
        server.port().to_string(),
        format!("@{}", server.ip()),
        "-I".into(),
        source.into(),
    ];
    argv.extend(args.iter().map(|a| a.to_string()));
    Response::parse(&run_tool("drill", &argv))
}

/// One resource record as the tools print it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rr {
    pub owner: String,
    pub ttl: u32,
    pub class: String,
    pub rtype: String,
    pub data: String,
}

/// The OPT pseudo-record of a response.
#[derive(Debug, Clone, PartialEq)]
pub struct Opt {
    pub version: u8,
    pub udp: u16,
    pub flags: String,
}

/// A response as dig or drill printed it.
#[derive(Debug, Clone, Default)]
pub struct Response {
    pub status: String,
    pub flags: Vec<String>,
    pub opt: Option<Opt>,
    pub question: Vec<String>,
    pub answer: Vec<Rr>,
    pub authority: Vec<Rr>,
    /// "UDP" or "TCP" (dig's SERVER line), empty for drill.
    pub transport: String,
    pub text: String,
}

impl Response {
    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    fn parse(output: &str) -> Self {
        let start = output.rfind(";; ->>HEADER<<-").unwrap_or_else(|| {
            panic!("no response in the tool's output:\n{output}");
        });
        let text = &output[start..];
        let mut response = Response {
            text: output.to_string(),
            ..Default::default()
        };
        let mut section = "";
        for line in text.lines() {
            let line = line.trim_end();
            if let Some(rest) = line.strip_prefix(";; ->>HEADER<<-") {
                response.status = field(rest, &["status:", "rcode:"]).to_string();
            } else if let Some(rest) = line.strip_prefix(";; flags:") {
                let flags = rest.split(';').next().unwrap_or_default();
                response.flags = flags.split_whitespace().map(str::to_string).collect();
            } else if let Some(rest) = line
                .strip_prefix("; EDNS:")
                .or_else(|| line.strip_prefix(";; EDNS:"))
            {
                response.opt = Some(parse_opt(rest));
            } else if let Some(rest) = line.strip_prefix(";; SERVER:") {
                response.transport = rest
                    .rsplit_once('(')
                    .map(|(_, t)| t.trim_end_matches(')').to_string())
                    .unwrap_or_default();
            } else if let Some(name) = line
                .strip_prefix(";; ")
                .and_then(|l| l.strip_suffix(" SECTION:"))
            {
                section = if name.contains("QUESTION") {
                    "question"
                } else {
                    name_to_section(name)
                };
            } else if line.is_empty() || (line.starts_with(';') && section != "question") {
                continue;
            } else if section == "question" {
                response
                    .question
                    .push(line.trim_start_matches(';').trim().to_string());
            } else if let Some(rr) = parse_rr(line) {
                match section {
                    "answer" => response.answer.push(rr),
                    "authority" => response.authority.push(rr),
                    _ => {}
                }
            }
        }
        response
    }
}

fn name_to_section(name: &str) -> &'static str {
    match name {
        "ANSWER" => "answer",
        "AUTHORITY" => "authority",
        _ => "other",
    }
}

/// The value after the first of `keys` in a "key: value, key: value" line.
fn field<'a>(line: &'a str, keys: &[&str]) -> &'a str {
    keys.iter()
        .find_map(|key| line.split_once(key))
        .map(|(_, rest)| {
            rest.trim()
                .split([',', ';'])
                .next()
                .unwrap_or_default()
                .trim()
        })
        .unwrap_or_default()
}

/// dig: "version: 0, flags: do; udp: 1232"; drill: "version 0; flags: ; udp: 1232".
fn parse_opt(rest: &str) -> Opt {
    let number = |key: &str| -> String {
        rest.split_once(key)
            .map(|(_, r)| r.trim_start_matches(':').trim())
            .map(|r| r.chars().take_while(char::is_ascii_digit).collect())
            .unwrap_or_default()
    };
    Opt {
        version: number("version").parse().expect("EDNS version"),
        udp: number("udp").parse().expect("EDNS udp"),
        flags: field(rest, &["flags:"]).to_string(),
    }
}

fn parse_rr(line: &str) -> Option<Rr> {
    let mut parts = line.split_whitespace();
    Some(Rr {
        owner: parts.next()?.to_string(),
        ttl: parts.next()?.parse().ok()?,
        class: parts.next()?.to_string(),
        rtype: parts.next()?.to_string(),
        data: parts.collect::<Vec<_>>().join(" "),
    })
}
