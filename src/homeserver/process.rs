//! Small process and text helpers: liveness by `/proc`, signals to a process group, log tails.

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::process::Output;

use rustix::process::{Pid, Signal};

/// The last `lines` lines of `text`, trimmed.
pub(crate) fn tail_lines(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.trim_end().lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The exit status of a finished command and the end of what it printed.
pub(crate) fn output_detail(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let text = if stderr.trim().is_empty() {
        String::from_utf8_lossy(&output.stdout).into_owned()
    } else {
        stderr.into_owned()
    };
    format!("{}\n{}", output.status, tail_lines(&text, 30))
}

/// The last `lines` lines of the file at `path` (reads at most its last 64 KiB), or a note that
/// it cannot be read.
pub(crate) fn file_tail(path: &Path, lines: usize) -> String {
    let read = || -> std::io::Result<String> {
        let mut file = fs::File::open(path)?;
        let length = file.metadata()?.len();
        file.seek(SeekFrom::Start(length.saturating_sub(64 * 1024)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    match read() {
        Ok(text) if text.trim().is_empty() => "(empty)".to_owned(),
        Ok(text) => tail_lines(&text, lines),
        Err(error) => format!("(cannot read {}: {error})", path.display()),
    }
}

/// Whether `pid` exists and has not exited (a zombie, not yet reaped by its parent, counts as
/// exited).
pub(crate) fn is_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name, which may itself contain ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| !matches!(state, 'Z' | 'X')),
        Err(_) => false,
    }
}

/// Whether `pid` is alive and is the Synapse started with `config` (not a reused pid).
pub(crate) fn runs_config(pid: u32, config: &Path) -> bool {
    if !is_alive(pid) {
        return false;
    }
    let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let config = config.as_os_str().as_encoded_bytes();
    cmdline.split(|&byte| byte == 0).any(|arg| arg == config)
}

/// Sends `signal` to the process group led by `pid` (Synapse runs in its own group).
pub(crate) fn signal_group(pid: u32, signal: Signal) -> std::io::Result<()> {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| std::io::Error::other(format!("{pid} is not a process id")))?;
    rustix::process::kill_process_group(pid, signal).map_err(Into::into)
}
