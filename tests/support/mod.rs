//! Shared harness of the sandbox integration tests (`mod support;`).
//!
//! - [`sandbox`] runs `bureau sandbox run ARGS` with stdin closed and a watchdog: a command that
//!   hangs is killed and the test fails (every test command must end by itself; use
//!   `timeout 5 …` inside the sandbox for anything that could block).
//! - **Another user**: with `BUREAU_TEST_SANDBOX_UID` and `BUREAU_TEST_SANDBOX_GID` set (the
//!   tests then run as root), bureau is spawned as that unprivileged user, so CI runs the whole
//!   battery a second time unprivileged. Host-side setup (listeners, files) stays in the test
//!   process; [`SharedDir`] makes temporary directories that user can use.
//! - [`py`] runs Python inside the sandbox with a ctypes prelude: `sc(label, nr, *args)` makes a
//!   raw syscall and prints `label OK <ret>` or `label <ERRNO>` (e.g. `ptrace EPERM`), and
//!   `attempt(label, fn, *args)` does the same for a Python call that raises `OSError`.

#![allow(dead_code)] // each test crate uses a part of the harness

use std::ffi::OsStr;
use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The binary under test.
pub const BUREAU: &str = env!("CARGO_BIN_EXE_bureau");

/// How long any one sandbox run may take before the watchdog kills it.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// The unprivileged user and group to run bureau as, from `BUREAU_TEST_SANDBOX_UID`/`_GID`.
pub fn sandbox_user() -> Option<(u32, u32)> {
    let read = |name: &str| {
        std::env::var(name).ok().map(|value| {
            value
                .trim()
                .parse::<u32>()
                .unwrap_or_else(|_| panic!("{name}={value:?} is not a numeric id"))
        })
    };
    match (
        read("BUREAU_TEST_SANDBOX_UID"),
        read("BUREAU_TEST_SANDBOX_GID"),
    ) {
        (Some(uid), Some(gid)) => {
            assert!(
                running_as_root(),
                "BUREAU_TEST_SANDBOX_UID/GID need the tests to run as root (to switch users)"
            );
            Some((uid, gid))
        }
        (None, None) => None,
        _ => panic!("set both BUREAU_TEST_SANDBOX_UID and BUREAU_TEST_SANDBOX_GID, or neither"),
    }
}

/// Whether bureau runs as another, unprivileged user (the second CI pass).
pub fn sandbox_runs_unprivileged() -> bool {
    sandbox_user().is_some()
}

/// Whether this test process is root.
pub fn running_as_root() -> bool {
    // SAFETY: geteuid cannot fail and touches no memory.
    unsafe { libc::geteuid() == 0 }
}

/// The host uid bureau runs as.
pub fn bureau_uid() -> u32 {
    match sandbox_user() {
        Some((uid, _)) => uid,
        // SAFETY: see `running_as_root`.
        None => unsafe { libc::geteuid() },
    }
}

/// Whether bureau itself runs as root (cgroup limits can then be set on this host).
pub fn bureau_is_root() -> bool {
    bureau_uid() == 0
}

/// `bureau sandbox run ARGS` as the configured user, stdin closed, `RUST_LOG` unset, from `/`.
/// For tests that need to adjust the command (stdin, extra environment, descriptors).
pub fn sandbox_command<S: AsRef<OsStr>>(args: &[S]) -> Command {
    let mut command = Command::new(BUREAU);
    command
        .arg("sandbox")
        .arg("run")
        .args(args)
        .stdin(Stdio::null())
        .env_remove("RUST_LOG")
        .current_dir("/");
    if let Some((uid, gid)) = sandbox_user() {
        // std drops the supplementary groups itself when root changes the uid (setgroups(0)
        // before setuid), which is what `groups(&[])` would do; that method is unstable.
        command.uid(uid).gid(gid);
    }
    command
}

/// Runs `bureau sandbox run ARGS` to completion (see the module doc).
pub fn sandbox<S: AsRef<OsStr>>(args: &[S]) -> Output {
    output_of(sandbox_command(args))
}

/// Runs `command` to completion with stdout and stderr captured, under the watchdog.
pub fn output_of(mut command: Command) -> Output {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = command
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start {command:?}: {error}"));
    let watchdog = Watchdog::arm(&child, DEADLINE);
    let output = child.wait_with_output().expect("wait for bureau");
    assert!(
        !watchdog.disarm(),
        "{command:?} did not finish within {DEADLINE:?} and was killed\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Kills a child (through a pidfd, so never a recycled pid) if it outlives a deadline.
pub struct Watchdog {
    done: mpsc::Sender<()>,
    thread: std::thread::JoinHandle<bool>,
}

impl Watchdog {
    pub fn arm(child: &Child, deadline: Duration) -> Self {
        let pidfd = pidfd_open(child.id());
        let (done, wait) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            if wait.recv_timeout(deadline) == Err(mpsc::RecvTimeoutError::Timeout) {
                pidfd_kill(&pidfd, libc::SIGKILL);
                true
            } else {
                false
            }
        });
        Self { done, thread }
    }

    /// Stops the watchdog; true if it had to kill the child.
    pub fn disarm(self) -> bool {
        drop(self.done);
        self.thread.join().expect("watchdog thread")
    }
}

/// `pidfd_open(pid, 0)`.
pub fn pidfd_open(pid: u32) -> OwnedFd {
    // SAFETY: pidfd_open only reads its integer arguments.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0u32) };
    assert!(
        fd >= 0,
        "pidfd_open({pid}): {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: the kernel just returned this new descriptor; nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

/// `pidfd_send_signal(pidfd, signal)`; errors (the process is gone) are ignored.
pub fn pidfd_kill(pidfd: &OwnedFd, signal: i32) {
    // SAFETY: a valid pidfd, a signal number, no siginfo, no flags.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0u32,
        )
    };
}

/// Waits until the process behind `pidfd` has exited (its pidfd becomes readable); false if it
/// is still running after `timeout`.
pub fn wait_for_exit(pidfd: &OwnedFd, timeout: Duration) -> bool {
    let mut poll = libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let millis = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: one valid pollfd; poll only writes its `revents`.
    let ready = unsafe { libc::poll(&mut poll, 1, millis) };
    ready > 0
}

/// The Python prelude of [`py`].
pub const PRELUDE: &str = r#"
import ctypes, errno, os, socket, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

def err_name(number):
    return errno.errorcode.get(number, str(number))

def _arg(value):
    if isinstance(value, int):
        return ctypes.c_long(value) if value < 0 else ctypes.c_ulong(value)
    return value

def sc(label, nr, *args):
    """A raw syscall: prints and returns `OK <ret>` or the errno's name."""
    ctypes.set_errno(0)
    ret = libc.syscall(ctypes.c_long(nr), *[_arg(a) for a in args])
    result = f"OK {ret}" if ret >= 0 else err_name(ctypes.get_errno())
    print(f"{label} {result}", flush=True)
    return result

def attempt(label, fn, *args):
    """A Python call: prints `label OK` or `label <ERRNO>` (OSError); returns its result."""
    try:
        value = fn(*args)
    except OSError as error:
        print(f"{label} {err_name(error.errno)}", flush=True)
        return None
    print(f"{label} OK", flush=True)
    return value
"#;

/// `["python3", "-c", PRELUDE + code]`: Python inside the sandbox, with the ctypes prelude.
pub fn py(code: &str) -> Vec<String> {
    vec![
        "python3".to_owned(),
        "-c".to_owned(),
        format!("{PRELUDE}\n{code}"),
    ]
}

/// `sandbox(options… -- py(code))`.
pub fn sandbox_py(options: &[&str], code: &str) -> Output {
    let mut args: Vec<String> = options.iter().map(|option| (*option).to_owned()).collect();
    args.push("--".to_owned());
    args.extend(py(code));
    sandbox(&args)
}

/// `sandbox(options… -- bash -c script)`.
pub fn sandbox_sh(options: &[&str], script: &str) -> Output {
    let mut args: Vec<&str> = options.to_vec();
    args.extend(["--", "/usr/bin/bash", "-c", script]);
    sandbox(&args)
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The exit code; panics (with the output) if bureau itself was killed by a signal.
pub fn code(output: &Output) -> i32 {
    output.status.code().unwrap_or_else(|| {
        panic!(
            "bureau was killed: {:?}\nstdout: {}\nstderr: {}",
            output.status,
            stdout(output),
            stderr(output)
        )
    })
}

/// Both streams, for assertion messages.
pub fn describe(output: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}--- stderr\n{}",
        output.status,
        stdout(output),
        stderr(output)
    )
}

/// Asserts that the sandbox ran and its command exited 0.
pub fn assert_success(output: &Output) {
    assert_eq!(code(output), 0, "{}", describe(output));
}

/// Asserts that stdout has the line `line` (exactly).
pub fn assert_line(output: &Output, line: &str) {
    assert!(
        stdout(output).lines().any(|candidate| candidate == line),
        "expected the line {line:?}\n{}",
        describe(output)
    );
}

/// A temporary host directory the sandbox's user can read and write (owned by it when bureau
/// runs as another user). Removed on drop.
pub struct SharedDir {
    dir: tempfile::TempDir,
}

impl Default for SharedDir {
    fn default() -> Self {
        Self::new()
    }
}

impl SharedDir {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("bureau-sandbox-test-")
            .tempdir()
            .expect("temp dir");
        let shared = Self { dir };
        shared.give(shared.path());
        shared
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The path as `&str` (temp paths are UTF-8 here).
    pub fn str(&self) -> &str {
        self.path().to_str().expect("utf-8 temp path")
    }

    /// `self/name` as a `String`.
    pub fn join(&self, name: &str) -> String {
        self.path()
            .join(name)
            .to_str()
            .expect("utf-8 temp path")
            .to_owned()
    }

    /// Writes a file the sandbox's user owns.
    pub fn file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.path().join(name);
        fs::write(&path, contents).expect("write test file");
        self.give(&path);
        path
    }

    /// Creates a directory the sandbox's user owns.
    pub fn dir(&self, name: &str) -> PathBuf {
        let path = self.path().join(name);
        fs::create_dir_all(&path).expect("create test dir");
        self.give(&path);
        path
    }

    /// Hands `path` to the sandbox's user (a no-op when bureau runs as this process's user).
    pub fn give(&self, path: &Path) {
        if let Some((uid, gid)) = sandbox_user() {
            std::os::unix::fs::lchown(path, Some(uid), Some(gid)).expect("chown to the test user");
        }
    }
}

/// Sets a path's permission bits.
pub fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

/// The host's hostname.
pub fn host_hostname() -> String {
    nix::unistd::gethostname()
        .expect("gethostname")
        .to_string_lossy()
        .into_owned()
}
