//! `chaos up` as a child process of a test: started with a free control
//! port, read until it is up, and stopped with Ctrl-C (also when the test
//! fails, so that a failing test leaves nothing running).

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::bin_dir;

pub struct ChaosUp {
    child: Option<Child>,
    pub run_dir: PathBuf,
    /// What it printed up to "Ctrl-C stops everything".
    pub banner: String,
}

impl ChaosUp {
    /// Starts `chaos up` with three regions in `run_dir`, on `database_url`
    /// (a throwaway PostgreSQL when `None`), and waits until it is up.
    pub fn start(run_dir: &Path, database_url: Option<&str>) -> Self {
        let _ = std::fs::remove_dir_all(run_dir);
        // chaos up runs from the run directory's parent (see below).
        std::fs::create_dir_all(run_dir.parent().unwrap()).unwrap();
        let mut command = Command::new(bin_dir().join("chaos"));
        command
            .args([
                "up",
                "--regions",
                "us-east-1,eu-west-1,ap-southeast-1",
                "--control-address",
                "127.0.0.1:0",
                "--run-dir",
            ])
            // Relative, as a user types it (`--run-dir run`): unbound
            // refused to start on a relative run directory.
            .arg(run_dir.file_name().unwrap())
            .current_dir(run_dir.parent().unwrap())
            .env_remove("CHAOS_DATABASE_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(url) = database_url {
            command.args(["--database-url", url]);
        }
        let mut child = command.spawn().unwrap();
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut up = Self {
            child: Some(child),
            run_dir: run_dir.to_owned(),
            banner: String::new(),
        };
        let started = Instant::now();
        loop {
            let mut line = String::new();
            let read = stdout.read_line(&mut line).unwrap();
            assert!(read > 0, "chaos up exited before it was up: {}", up.banner);
            up.banner.push_str(&line);
            if line.contains("Ctrl-C stops everything") {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(120));
        }
        // Keep draining stdout so that chaos up never blocks on a full pipe.
        std::thread::spawn(move || for _ in stdout.lines() {});
        up
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn is_running(&mut self) -> bool {
        let child = self.child.as_mut().expect("running");
        child.try_wait().unwrap().is_none()
    }

    /// The state file: control URL and token.
    pub fn state(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.run_dir.join("deployment.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// Ctrl-C, then waits for it to exit.
    pub fn interrupt(mut self) -> ExitStatus {
        stop(self.child.take().expect("running"))
    }
}

impl Drop for ChaosUp {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            stop(child);
        }
    }
}

fn stop(mut child: Child) -> ExitStatus {
    let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGINT);
    child.wait().unwrap()
}
