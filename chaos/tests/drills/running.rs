//! Running `chaos drill` as a child process in the drill tests: its stderr
//! read line by line, waited for, and its report read back.

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use chaos::model::DrillReport;
use nix::unistd::Pid;

use super::bin_dir;

/// `chaos drill` as a child, its stderr read line by line.
pub struct RunningDrill {
    child: Child,
    lines: Receiver<String>,
    seen: String,
}

impl RunningDrill {
    /// Attached to the `chaos up` of `run_dir` (`--attach`).
    pub fn attached(drill: &Path, report_dir: &Path, run_dir: &Path) -> Self {
        Self::start(drill, report_dir, "--attach", run_dir)
    }

    /// On the deployment a target file describes (`--target`).
    pub fn on_target(drill: &Path, report_dir: &Path, target: &Path) -> Self {
        Self::start(drill, report_dir, "--target", target)
    }

    fn start(drill: &Path, report_dir: &Path, flag: &str, path: &Path) -> Self {
        let mut child = Command::new(bin_dir().join("chaos"))
            .arg("drill")
            .arg(drill)
            .arg("--report-dir")
            .arg(report_dir)
            .arg(flag)
            .arg(path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let (sender, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
        Self {
            child,
            lines,
            seen: String::new(),
        }
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    /// Reads stderr until a line contains `needle`.
    pub fn wait_for(&mut self, needle: &str) {
        loop {
            let line = match self.lines.recv_timeout(Duration::from_secs(120)) {
                Ok(line) => line,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("never printed {needle:?} in 120 s: {}", self.seen)
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().unwrap();
                    panic!(
                        "exited ({status}) without printing {needle:?}: {}",
                        self.seen
                    )
                }
            };
            self.seen.push_str(&line);
            self.seen.push('\n');
            if line.contains(needle) {
                return;
            }
        }
    }

    /// Waits for the exit (within `within`) and returns it with all stderr.
    pub fn finish(mut self, within: Duration) -> (ExitStatus, String) {
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > within {
                let _ = self.child.kill();
                panic!("the drill did not exit within {within:?}: {}", self.seen);
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(500)) {
            self.seen.push_str(&line);
            self.seen.push('\n');
        }
        (status, self.seen)
    }
}

/// The drill's report.json.
pub fn report(report_dir: &Path) -> DrillReport {
    let text = std::fs::read_to_string(report_dir.join("report.json"))
        .unwrap_or_else(|e| panic!("no report in {}: {e}", report_dir.display()));
    serde_json::from_str(&text).unwrap()
}

/// The drill's history.jsonl, every operation.
pub fn history(report_dir: &Path) -> Vec<chaos::load::Operation> {
    std::fs::read_to_string(report_dir.join("history.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// Waits (at most `within`) until the preflight of the target file passes,
/// as an SRE waits for `chaos check` before the next drill: a replica that
/// has just restarted, or a region just back, can hold a view the others
/// do not share for a poll or two after every region serves and is in DNS.
pub fn wait_for_preflight(runtime: &tokio::runtime::Runtime, target: &Path, within: Duration) {
    let target = chaos::target::Target::load(target).unwrap();
    let started = Instant::now();
    loop {
        let preflight = runtime.block_on(chaos::target::preflight::run(&target));
        if preflight.passed {
            return;
        }
        assert!(
            started.elapsed() < within,
            "preflight still fails {within:?} after the deployment was restored:\n{}",
            preflight.render()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}
