//! A throwaway PostgreSQL for the local deployment: installed from the OS
//! packages when missing, run as the `postgres` user (it refuses root) on a
//! free loopback port in a temporary directory, removed on drop. Throwaway,
//! yet durable while it runs (fsync and synchronous_commit on), so that a
//! drill can crash it (SIGKILL, as a machine loses its database process)
//! and restart it on the same data directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

#[derive(Debug)]
pub struct Postgres {
    bin: PathBuf,
    dir: PathBuf,
    pub port: u16,
    /// The server's command-line options, kept for a restart.
    options: String,
}

impl Postgres {
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with(&BTreeMap::new())
    }

    /// Starts a server with these settings over the durable defaults (a
    /// drill's fail-on-purpose version turns `synchronous_commit` off).
    pub fn start_with(settings: &BTreeMap<String, String>) -> anyhow::Result<Self> {
        let bin = match find_bin() {
            Some(bin) => bin,
            None => {
                install()?;
                find_bin().context("PostgreSQL binaries not found after installing the package")?
            }
        };
        let dir = std::env::temp_dir().join(format!("chaos-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        run(Command::new("chown").arg("postgres:").arg(&dir))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut server = Self {
            bin,
            dir,
            port,
            options: String::new(),
        };
        as_postgres(
            &server.bin.join("initdb"),
            &[
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
                "-D",
                &server.data().display().to_string(),
            ],
        )?;
        // Durable, as a production database is: an acknowledged write is in
        // the WAL on disk before the client hears of it (fsync,
        // synchronous_commit and full_page_writes at their defaults, said
        // out loud), so a drill's "no acknowledged write lost" survives a
        // crash of the server, not only of the service.
        let mut options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=500 -c fsync=on \
             -c synchronous_commit=on -c full_page_writes=on -c max_wal_size=256MB -c min_wal_size=64MB",
            server.dir.display()
        );
        for (name, value) in settings {
            options.push_str(&format!(" -c {name}={value}"));
        }
        server.options = options;
        server.pg_ctl_start()?;
        Ok(server)
    }

    fn pg_ctl_start(&self) -> anyhow::Result<()> {
        as_postgres(
            &self.bin.join("pg_ctl"),
            &[
                "-w",
                "-t",
                "60",
                "-o",
                &self.options,
                "-l",
                &self.dir.join("server.log").display().to_string(),
                "-D",
                &self.data().display().to_string(),
                "start",
            ],
        )
    }

    /// SIGKILLs the server, the postmaster first and then every process
    /// still working in its data directory (a backend forked meanwhile
    /// included), and waits until all are gone: what survives is what was
    /// on disk.
    pub fn crash(&self) -> anyhow::Result<()> {
        let data = std::fs::canonicalize(self.data()).unwrap_or_else(|_| self.data());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut victims = processes_in(&data);
            if victims.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the PostgreSQL processes {victims:?} outlived SIGKILL");
            }
            // The postmaster has the lowest pid of its server's processes.
            victims.sort_unstable();
            for pid in victims {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the server again on the same data directory and port: crash
    /// recovery replays the WAL, and pg_ctl waits until it accepts
    /// connections.
    pub fn restart(&self) -> anyhow::Result<()> {
        self.pg_ctl_start()
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// `PostgreSQL 15.x` as reported by the binaries.
    pub fn version(&self) -> String {
        Command::new(self.bin.join("postgres"))
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = as_postgres(
            &self.bin.join("pg_ctl"),
            &[
                "-m",
                "immediate",
                "-w",
                "stop",
                "-D",
                &self.data().display().to_string(),
            ],
        );
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The live processes whose working directory is `data` (a PostgreSQL
/// server's processes all work there), from /proc.
fn processes_in(data: &Path) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == data))
        .collect()
}

fn find_bin() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    found.sort();
    found.pop()
}

fn install() -> anyhow::Result<()> {
    install_package("postgresql")
}

/// Installs a Debian package (the drills' own dependencies: PostgreSQL,
/// unbound), so that nothing needs installing by hand.
pub fn install_package(package: &str) -> anyhow::Result<()> {
    eprintln!("chaos: installing {package} from the OS packages");
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends", package])
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

fn as_postgres(program: &Path, args: &[&str]) -> anyhow::Result<()> {
    run(Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(program)
        .args(args))
}

fn run(command: &mut Command) -> anyhow::Result<()> {
    let output = command
        .output()
        .with_context(|| format!("cannot run {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}
