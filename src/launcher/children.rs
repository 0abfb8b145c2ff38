//! The launcher's child processes: spawning `bureau proxy` and `bureau sandbox run`, watching
//! them exit through pidfds, signalling them, and reading what they left behind (exit status
//! file, last output lines).
//!
//! Invariant: a process is addressed through its pidfd once it is known, never by a bare pid
//! that could have been reused — also for processes adopted from a previous launcher.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::OwnedFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

use rustix::process::{Pid, PidfdFlags, Signal};
use tokio::io::unix::AsyncFd;

/// How many lines of output an exit report carries.
pub const LAST_LINES: usize = 20;

/// The longest line kept in an exit report (longer lines are cut, marked with `…`).
const MAX_LINE_CHARS: usize = 400;

/// A process the launcher watches: our own child, or one adopted after a restart.
#[derive(Debug)]
pub struct Watched {
    /// Its pid (for reports; signals go through `pidfd`).
    pub pid: u32,
    pidfd: AsyncFd<OwnedFd>,
    /// Present when this launcher spawned it and has not reaped it yet.
    child: Mutex<Option<Child>>,
}

impl Watched {
    /// Watches a child just spawned; if it cannot be watched it is killed and reaped, so no
    /// process is ever left running untracked. `what` names it in the error.
    pub fn spawned_or_killed(mut child: Child, what: &str) -> Result<Self, String> {
        let pid = child.id();
        match open_pidfd(pid).and_then(register) {
            Ok(pidfd) => Ok(Self {
                pid,
                pidfd,
                child: Mutex::new(Some(child)),
            }),
            Err(error) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!("watching {what} (pid {pid}): {error}"))
            }
        }
    }

    /// Adopts a process a previous launcher spawned; `None` when it is gone or its start time
    /// no longer matches (the pid was reused).
    pub fn adopt(pid: u32, start_time: u64) -> Option<Self> {
        let pidfd = open_pidfd(pid).ok()?;
        // Checked after opening the pidfd: if the start time still matches now, the pidfd
        // refers to the process we recorded.
        if process_start_time(pid) != Some(start_time) {
            return None;
        }
        Some(Self {
            pid,
            pidfd: register(pidfd).ok()?,
            child: Mutex::new(None),
        })
    }

    /// Sends `signal`; a process that already exited is not an error.
    pub fn signal(&self, signal: Signal) -> std::io::Result<()> {
        match rustix::process::pidfd_send_signal(self.pidfd.get_ref(), signal) {
            Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
            Err(errno) => Err(errno.into()),
        }
    }

    /// Waits until the process exits and returns its status in the sandbox's convention (the
    /// code, or 128+n for signal n). For an adopted process, which cannot be reaped here, the
    /// status comes from `status_file` (255 when it has none). Call it from one place only:
    /// the first call reaps our child.
    pub async fn exited(&self, status_file: Option<&Path>) -> i32 {
        // A pidfd becomes readable when the process exits.
        if let Ok(mut guard) = self.pidfd.readable().await {
            guard.retain_ready();
        }
        let child = self
            .child
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        match child.map(|mut child| child.wait()) {
            Some(Ok(status)) => status
                .code()
                .or_else(|| status.signal().map(|signal| 128 + signal))
                .unwrap_or(255),
            _ => status_file.and_then(read_status_file).unwrap_or(255),
        }
    }
}

/// Registers a pidfd with the runtime for readability (which means "exited").
fn register(pidfd: OwnedFd) -> std::io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: the `OwnedFd` is moved into the `AsyncFd`, which owns it until dropped; its raw
    // descriptor stays open and unchanged for that whole time.
    unsafe { AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE) }
        .map_err(|error| std::io::Error::other(error.to_string()))
}

/// Whether the process has exited (is a zombie or gone).
pub fn has_exited(pid: u32) -> bool {
    stat_field(pid, 3).is_none_or(|state| state == "Z" || state == "X")
}

/// Field `number` (1-based, as in proc(5)) of `/proc/PID/stat`, from field 3 on; `None` when the
/// process is gone. The command name (field 2) may hold spaces and parentheses, so fields are
/// counted from its last `)`.
fn stat_field(pid: u32, number: usize) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name
        .split_whitespace()
        .nth(number.checked_sub(3)?)
        .map(str::to_owned)
}

fn open_pidfd(pid: u32) -> std::io::Result<OwnedFd> {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| std::io::Error::other(format!("pid {pid} is not a process ID")))?;
    Ok(rustix::process::pidfd_open(pid, PidfdFlags::NONBLOCK)?)
}

/// The process's start time in clock ticks since boot (`/proc/PID/stat` field 22): with the
/// pid, it identifies a process across pid reuse.
pub fn process_start_time(pid: u32) -> Option<u64> {
    stat_field(pid, 22)?.parse().ok()
}

/// Reads the exit status `bureau sandbox run --status-file` wrote.
pub fn read_status_file(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The last [`LAST_LINES`] non-empty lines of a log file (at most its last 64 KiB are read).
///
/// Example: a log ending `"…\nTraceback…\nValueError: bad task\n"` →
/// `[…, "Traceback…", "ValueError: bad task"]`.
pub fn last_lines(path: &Path) -> Vec<String> {
    const WINDOW: u64 = 64 * 1024;
    let Ok(mut file) = File::open(path) else {
        return Vec::new();
    };
    let length = file.metadata().map(|metadata| metadata.len()).unwrap_or(0);
    let start = length.saturating_sub(WINDOW);
    if file.seek(SeekFrom::Start(start)).is_err() {
        return Vec::new();
    }
    let mut bytes = Vec::new();
    if file.read_to_end(&mut bytes).is_err() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<&str> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    // A window that starts mid-file starts mid-line: drop the fragment.
    if start > 0 && !lines.is_empty() {
        lines.remove(0);
    }
    let skip = lines.len().saturating_sub(LAST_LINES);
    lines[skip..]
        .iter()
        .map(|line| {
            if line.chars().count() > MAX_LINE_CHARS {
                let cut: String = line.chars().take(MAX_LINE_CHARS).collect();
                format!("{cut}…")
            } else {
                (*line).to_owned()
            }
        })
        .collect()
}

/// A command for one of our own applets (`bureau APPLET …`), detached from the launcher's
/// process group (a Ctrl-C meant for the launcher does not reach it) with stdin from
/// `/dev/null` unless the caller pipes it, and stdout and stderr appended to `log`.
pub fn applet_command(bureau: &Path, applet: &str, log: &Path) -> std::io::Result<Command> {
    let output = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let mut command = Command::new(bureau);
    command
        .arg(applet)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(output.try_clone()?)
        .stderr(output)
        .process_group(0);
    Ok(command)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_lines_keeps_the_tail_without_blank_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("output.log");
        let mut text = String::new();
        for index in 0..50 {
            text.push_str(&format!("line {index}\n\n"));
        }
        text.push_str(&"x".repeat(1000));
        std::fs::write(&log, text).unwrap();
        let lines = last_lines(&log);
        assert_eq!(lines.len(), LAST_LINES);
        assert_eq!(lines[0], "line 31");
        assert!(lines[LAST_LINES - 1].ends_with('…'));
        assert!(last_lines(&dir.path().join("missing")).is_empty());
    }

    #[test]
    fn start_time_identifies_this_process() {
        let pid = std::process::id();
        assert!(process_start_time(pid).is_some());
        assert!(process_start_time(u32::MAX).is_none());
        assert!(!has_exited(pid), "this process runs");
        assert!(has_exited(u32::MAX), "no such process counts as exited");
        // Field 22 (start time) is no earlier than this process's parent's.
        let parent = std::os::unix::process::parent_id();
        let start_of = |pid| process_start_time(pid).expect("a running process has a stat");
        assert!(start_of(parent) <= start_of(pid));
    }

    #[tokio::test]
    async fn exit_status_of_a_child_and_of_an_adopted_process() {
        let child = Command::new("/bin/sh")
            .args(["-c", "exit 3"])
            .spawn()
            .unwrap();
        let watched = Watched::spawned_or_killed(child, "a test child").unwrap();
        assert_eq!(watched.exited(None).await, 3);

        let child = Command::new("/bin/sleep").arg("30").spawn().unwrap();
        let watched = Watched::spawned_or_killed(child, "a test child").unwrap();
        watched.signal(Signal::KILL).unwrap();
        assert_eq!(watched.exited(None).await, 137);

        let dir = tempfile::tempdir().unwrap();
        let status = dir.path().join("status");
        std::fs::write(&status, "7\n").unwrap();
        let mut sleeper = Command::new("/bin/sleep").arg("30").spawn().unwrap();
        let start = process_start_time(sleeper.id()).unwrap();
        assert!(Watched::adopt(sleeper.id(), start + 1).is_none());
        let adopted = Watched::adopt(sleeper.id(), start).unwrap();
        adopted.signal(Signal::KILL).unwrap();
        sleeper.wait().unwrap();
        assert_eq!(adopted.exited(Some(&status)).await, 7);
    }
}
