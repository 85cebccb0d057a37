//! Command hooks: a fault started and stopped by commands the drill runs
//! (`kubectl scale`, `aws fis start-experiment`, an SSH command). Each is an
//! argv list run without a shell (write `sh -c` to get one), with a
//! timeout; its exit status and the tail of its output are kept for the
//! report.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

/// The most of each output stream a run keeps: its last bytes.
pub const OUTPUT_LIMIT: usize = 64 * 1024;

/// One run of a hook command, as the report shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandRun {
    pub argv: Vec<String>,
    /// The exit code; `None` when killed by a signal or by the timeout.
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    pub elapsed_s: f64,
    /// The last [`OUTPUT_LIMIT`] bytes of each stream (lossy UTF-8).
    pub stdout: String,
    pub stderr: String,
}

impl CommandRun {
    pub fn succeeded(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out
    }

    /// `Ok` for a run that exited 0 in time, else an error that says how
    /// it ended, with the end of its stderr.
    pub fn into_result(self) -> anyhow::Result<Self> {
        if self.succeeded() {
            return Ok(self);
        }
        let tail: String = {
            let trimmed = self.stderr.trim_end();
            let start = trimmed
                .char_indices()
                .rev()
                .nth(299)
                .map_or(0, |(index, _)| index);
            trimmed[start..].to_owned()
        };
        let how = match (self.timed_out, self.exit_code) {
            (true, _) => format!("timed out after {:.1} s and was killed", self.elapsed_s),
            (false, Some(code)) => format!("exited with {code}"),
            (false, None) => "was killed by a signal".to_owned(),
        };
        bail!("command {:?} {how}; stderr: {tail:?}", self.argv)
    }
}

/// Runs `argv` (no shell) with `timeout`; a run past it is killed (with
/// its process group, so that a `sh -c` pipeline dies with it). An argv
/// that cannot be started is an error; one that fails is a `CommandRun`.
pub async fn run(argv: &[String], timeout: Duration) -> anyhow::Result<CommandRun> {
    let Some((program, args)) = argv.split_first() else {
        bail!("empty command");
    };
    let started = Instant::now();
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|error| anyhow::anyhow!("cannot start command {argv:?}: {error}"))?;
    let stdout = tail_of(child.stdout.take());
    let stderr = tail_of(child.stderr.take());
    // A run cut short (the drill stopped mid-hook: this future dropped)
    // takes its whole process group with it, not only the direct child.
    let mut group = GroupKiller(child.id());
    let (status, timed_out) = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(status) => {
            // Ended on its own: what it left running in the background is
            // its business (a start hook may leave a fault running).
            group.0 = None;
            (Some(status?), false)
        }
        Err(_) => {
            group.kill();
            let _ = child.kill().await;
            (None, true)
        }
    };
    // A grandchild that kept the pipes open must not hold the drill.
    let collect = async {
        (
            stdout.await.unwrap_or_default(),
            stderr.await.unwrap_or_default(),
        )
    };
    let (stdout, stderr) = tokio::time::timeout(Duration::from_secs(2), collect)
        .await
        .unwrap_or_default();
    Ok(CommandRun {
        argv: argv.to_vec(),
        exit_code: status.and_then(|s| s.code()),
        timed_out,
        elapsed_s: started.elapsed().as_secs_f64(),
        stdout,
        stderr,
    })
}

/// SIGKILLs the process group led by its pid when dropped or asked to.
struct GroupKiller(Option<u32>);

impl GroupKiller {
    fn kill(&mut self) {
        if let Some(pid) = self.0.take() {
            let group = nix::unistd::Pid::from_raw(-(pid as i32));
            let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

impl Drop for GroupKiller {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads a stream to its end in a task, keeping its last [`OUTPUT_LIMIT`]
/// bytes.
fn tail_of<R: tokio::io::AsyncRead + Unpin + Send + 'static>(
    stream: Option<R>,
) -> tokio::task::JoinHandle<String> {
    tokio::spawn(async move {
        let Some(mut stream) = stream else {
            return String::new();
        };
        let mut kept: Vec<u8> = Vec::new();
        let mut buffer = [0u8; 8192];
        while let Ok(read) = stream.read(&mut buffer).await {
            if read == 0 {
                break;
            }
            kept.extend_from_slice(&buffer[..read]);
            if kept.len() > OUTPUT_LIMIT {
                kept.drain(..kept.len() - OUTPUT_LIMIT);
            }
        }
        String::from_utf8_lossy(&kept).into_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| (*w).to_owned()).collect()
    }

    #[tokio::test]
    async fn a_command_runs_without_a_shell_and_keeps_its_output() {
        let run = run(&argv(&["echo", "a; b", "$HOME"]), Duration::from_secs(5))
            .await
            .unwrap();
        assert!(run.succeeded());
        // No shell: the semicolon and the variable are plain words.
        assert_eq!(run.stdout, "a; b $HOME\n");
    }

    #[tokio::test]
    async fn a_failing_command_says_how_it_ended() {
        let failed = run(
            &argv(&["sh", "-c", "echo broken >&2; exit 3"]),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(failed.exit_code, Some(3));
        let error = failed.into_result().unwrap_err().to_string();
        assert!(
            error.contains("exited with 3") && error.contains("broken"),
            "{error}"
        );
        let missing = run(&argv(&["/no/such/program"]), Duration::from_secs(5))
            .await
            .unwrap_err()
            .to_string();
        assert!(missing.contains("cannot start command"), "{missing}");
    }

    #[tokio::test]
    async fn a_command_past_its_timeout_is_killed_at_the_timeout() {
        let started = Instant::now();
        let run = run(&argv(&["sh", "-c", "sleep 30"]), Duration::from_secs(1))
            .await
            .unwrap();
        assert!(run.timed_out);
        assert!(!run.succeeded());
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{:?}",
            started.elapsed()
        );
    }

    /// Whether `pid` still runs (a zombie waiting for its reaper does not).
    fn running(pid: i32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| stat.rsplit(')').next().map(|rest| rest.trim().to_owned()))
            .is_some_and(|rest| !rest.starts_with('Z') && !rest.starts_with('X'))
    }

    /// A drill stopped mid-hook drops the run: the hook's grandchildren
    /// (here a background sleep of `sh -c`) die with it; a hook that ended
    /// on its own keeps what it started in the background.
    #[tokio::test]
    async fn a_run_cut_short_kills_its_process_group_and_a_finished_one_does_not() {
        let dir = std::env::temp_dir().join(format!("chaos-hook-group-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pid_file = dir.join("cut.pid");
        let script = format!("sleep 60 & echo $! > {}; wait", pid_file.display());
        let cut = tokio::spawn(async move {
            run(&argv(&["sh", "-c", &script]), Duration::from_secs(30)).await
        });
        let started = Instant::now();
        while !pid_file.exists()
            || std::fs::read_to_string(&pid_file)
                .unwrap()
                .trim()
                .is_empty()
        {
            assert!(started.elapsed() < Duration::from_secs(10));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let grandchild: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(running(grandchild));
        cut.abort();
        let _ = cut.await;
        let started = Instant::now();
        while running(grandchild) {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "the hook's sleep survived its drill"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        let pid_file = dir.join("left.pid");
        let script = format!(
            "sleep 60 > /dev/null 2>&1 & echo $! > {}",
            pid_file.display()
        );
        let finished = run(&argv(&["sh", "-c", &script]), Duration::from_secs(10))
            .await
            .unwrap();
        assert!(finished.succeeded());
        let left: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(
            running(left),
            "a finished hook's background process was killed"
        );
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(left),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn only_the_tail_of_a_long_output_is_kept() {
        let run = run(
            &argv(&[
                "sh",
                "-c",
                "head -c 200000 /dev/zero | tr '\\0' x; echo END",
            ]),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        assert_eq!(run.stdout.len(), OUTPUT_LIMIT);
        assert!(run.stdout.ends_with("xEND\n"));
    }
}
