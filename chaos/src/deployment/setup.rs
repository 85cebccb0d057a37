//! Setting the deployment up: the controllers' shared configuration, the
//! database and its URLs, and the child processes with their logs.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Stdio;

use anyhow::{bail, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use super::Deployment;

impl Deployment {
    /// The controllers' shared configuration file.
    pub(super) fn controller_toml(&self) -> String {
        let options = &self.options;
        // The instances sit behind TLS-terminating load balancers (the
        // proxies), whose certificate the deployment's CA signed.
        let mut toml = options.controller.toml_tables(&format!(
            "instance_scheme = \"https\"\nca_file = {:?}\n",
            self.tls.ca_file.display().to_string()
        ));
        // As production's configuration carries them: the round trips the
        // probe timeouts of far regions derive from, here the WAN's.
        if let Some(wan) = &options.wan {
            for (offset, from) in self.regions.iter().enumerate() {
                let row: Vec<String> = self.regions[offset + 1..]
                    .iter()
                    .filter_map(|to| {
                        let rtt = wan.rtt(&from.name, &to.name)?;
                        Some(format!(
                            "\"{}\" = {:.1}",
                            to.name,
                            rtt.as_secs_f64() * 1000.0
                        ))
                    })
                    .collect();
                if !row.is_empty() {
                    toml.push_str(&format!(
                        "[probe.round_trip_ms.\"{}\"]\n{}\n\n",
                        from.name,
                        row.join("\n")
                    ));
                }
            }
        }
        toml.push_str(&format!(
            "[dns]\nzone = \"svc.failover.test.\"\nrecord = \"api\"\nttl_seconds = {ttl}\nclient_subnets = [\n",
            ttl = options.controller.dns_ttl_s(),
        ));
        for region in &self.regions {
            toml.push_str(&format!(
                "  {{ cidr = \"127.{}.{}.0/24\", region = \"{}\" }},\n",
                super::loopback_net(),
                region.index,
                region.name
            ));
        }
        toml.push_str("]\n\n[dns.latency_ms]\n");
        // The WAN's round trips, or a synthetic matrix: regions further
        // apart in the list are further apart on the map.
        for from in &self.regions {
            let row: Vec<String> = self
                .regions
                .iter()
                .map(|to| {
                    let distance = u32::from(from.index.abs_diff(to.index));
                    let ms = options
                        .wan
                        .as_ref()
                        .and_then(|wan| wan.rtt(&from.name, &to.name))
                        .map(|rtt| rtt.as_millis() as u32)
                        .unwrap_or(1 + 40 * distance);
                    format!("\"{}\" = {}", to.name, ms)
                })
                .collect();
            toml.push_str(&format!("\"{}\" = {{ {} }}\n", from.name, row.join(", ")));
        }
        for region in &self.regions {
            let instances: Vec<String> = region
                .instances
                .iter()
                .map(|i| format!("\"{}\"", i.public))
                .collect();
            toml.push_str(&format!(
                "\n[[regions]]\nname = \"{}\"\ninstances = [{}]\naws_region = \"{}\"\nhealth_check_id = \"\"\n",
                region.name,
                instances.join(", "),
                region.name
            ));
        }
        toml
    }
}

pub(super) fn spawn_logged(mut command: Command, logs: &Path, name: &str) -> anyhow::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(logs.join(format!("{name}.log")))?;
    command
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // Its own process group: a Ctrl-C in the terminal reaches only
        // `chaos`, which rolls the faults back and then stops its children
        // in order, instead of every child dying at once mid-drill.
        .process_group(0)
        .kill_on_drop(true);
    command
        .spawn()
        .with_context(|| format!("cannot start {name}"))
}

pub(super) fn signal_child(child: Option<Child>, signal: Signal) {
    if let Some(mut child) = child {
        signal_pid(Some(&child), signal);
        // Reap in the background so no zombie is left.
        tokio::spawn(async move {
            let _ = child.wait().await;
        });
    }
}

pub(super) fn signal_pid(child: Option<&Child>, signal: Signal) {
    if let Some(pid) = child.and_then(Child::id) {
        let _ = kill(Pid::from_raw(pid as i32), signal);
    }
}

pub(super) async fn create_database(server_url: &str, name: &str) -> anyhow::Result<()> {
    let client = crate::database::connect(server_url)
        .await
        .context("creating the deployment's database")?;
    client
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .await?;
    Ok(())
}

/// `postgres://u@h:p/db?x` with another database name.
pub fn replace_database(url: &str, database: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut result = format!("{}/{}", &base[..path_start], database);
    if let Some(query) = query {
        result.push('?');
        result.push_str(query);
    }
    result
}

/// The same URL pointing at `proxy` instead of the server.
pub(super) fn replace_host(url: &str, proxy: SocketAddr) -> String {
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let authority_end = url[scheme_end..]
        .find('/')
        .map_or(url.len(), |i| scheme_end + i);
    let authority = &url[scheme_end..authority_end];
    let user = authority
        .rsplit_once('@')
        .map(|(user, _)| format!("{user}@"))
        .unwrap_or_default();
    format!(
        "{}{user}{proxy}{}",
        &url[..scheme_end],
        &url[authority_end..]
    )
}

pub(super) fn database_socket(url: &str) -> anyhow::Result<SocketAddr> {
    // Through `DatabaseUrl`: tokio-postgres alone refuses libpq's TLS
    // parameters (sslrootcert, verify-full).
    let config = crate::database::DatabaseUrl::parse(url)
        .context("invalid database URL")?
        .config;
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        _ => bail!("the database URL must name a TCP host"),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let ip: IpAddr = if host == "localhost" {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        host.parse()?
    };
    Ok(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_rewritten() {
        let url = "postgres://postgres@127.0.0.1:5555/postgres?sslmode=disable";
        assert_eq!(
            replace_database(url, "x"),
            "postgres://postgres@127.0.0.1:5555/x?sslmode=disable"
        );
        let proxy: SocketAddr = "127.0.2.250:5432".parse().unwrap();
        assert_eq!(
            replace_host(url, proxy),
            "postgres://postgres@127.0.2.250:5432/postgres?sslmode=disable"
        );
        assert_eq!(
            database_socket(url).unwrap(),
            "127.0.0.1:5555".parse().unwrap()
        );
    }
}
