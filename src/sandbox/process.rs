//! The clone → exec path.
//!
//! ```text
//! bureau-sandbox (supervisor, host)          sandbox init (pid 1 inside)          command (pid 2)
//!   open bind sources (no symlinks), build seccomp, create cgroup leaf
//!   block forwarded signals
//!   clone(NEWUSER|NEWNS|NEWPID|…) ──────────▶ wait on the sync pipe
//!   write uid/gid maps, join cgroup
//!   release the child ─────────────────────▶ apply the plan: ids, mounts,
//!   run the network helper (vfork-style):
//!     join the init's user ns, unshare net,
//!     raise lo, exit
//!   reap it, send the ns ──────────────────▶ join the network namespace,
//!                                            pivot_root, hostname, landlock,
//!                                            caps, seccomp
//!                                            posix_spawn (vfork-style) ───────▶ exec, mask restored
//!   read the report pipe: EOF = exec done ◀── (CLOEXEC: closed by exec, or an error record)
//!   forward signals ───────────────────────▶ forward signals ──────────────────▶
//!   exit with init's status ◀──────────────── reap everything; exit with the command's status
//! ```
//!
//! Invariants: the process is single-threaded from `clone` to `exec` (the sandbox applet starts
//! no runtime), so the child may allocate; every descriptor we open is CLOEXEC and the child
//! closes those the caller left open, so the command inherits only stdin, stdout and stderr; the
//! init is not dumpable, so the command cannot read the caller's environment out of it; a
//! failure anywhere in the child is reported through the CLOEXEC report pipe as (step, path,
//! errno, detail) and the sandbox does not start.
//!
//! pid 1 is our own minimal init rather than the command: a command running as pid 1 would not
//! get default signal actions (SIGTERM would be ignored unless it installs a handler) and would
//! have to reap orphans it knows nothing about. The init stays inside every restriction too
//! (landlock, no capabilities, seccomp) and only waits, reaps and forwards.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::cgroup::{Cgroup, CgroupError, HostCgroups};
use super::kernel::{LinuxKernel, apply_all};
use super::landlock;
use super::network;
use super::plan::{self, DEV_NODES, HostFacts, NETWORK_STEP, OpenedSource, flags};
use super::seccomp::{self, SeccompError};
use super::spec::{Mount, SandboxSpec, SeccompProfile, SpecError};

/// Exit status when the sandbox could not be set up (the command never ran).
pub const EXIT_SETUP_FAILED: u8 = 125;
/// Exit status when the command exists but could not be executed.
pub const EXIT_CANNOT_EXECUTE: u8 = 126;
/// Exit status when the command was not found inside the sandbox.
pub const EXIT_NOT_FOUND: u8 = 127;

/// Signals the supervisor and the init pass on to the sandbox.
const FORWARDED: [Signal; 8] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCONT,
];

/// Why a sandbox did not start.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("invalid sandbox spec: {0}")]
    Spec(#[from] SpecError),
    #[error(
        "bind source {path} is or passes through a symlink: refused (a symlink could be swapped \
         to redirect the bind)\nHint: bind the symlink's target ({resolved}) instead"
    )]
    SymlinkedSource { path: PathBuf, resolved: String },
    #[error(
        "bind source {path} is outside the allowed roots ({roots})\nHint: move it under one of \
         them, or add its parent to allowed_bind_roots"
    )]
    SourceOutsideRoots { path: PathBuf, roots: String },
    #[error("bind source {path}: {source}\nHint: check that it exists and is readable")]
    Source {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "only root may map the sandbox to another host user (host_uid {requested}, you are \
         {caller})\nHint: drop identity.host_uid/host_gid, or run as root"
    )]
    HostIdNotAllowed { requested: u32, caller: u32 },
    #[error("landlock: {0}")]
    Landlock(#[from] landlock::LandlockError),
    #[error("seccomp: {0}")]
    Seccomp(#[from] SeccompError),
    #[error("cgroup: {0}")]
    Cgroup(#[from] CgroupError),
    #[error("{step}: {message}")]
    Host { step: &'static str, message: String },
    /// A step inside the new namespaces failed.
    #[error("{0}")]
    Setup(SetupFailure),
}

impl SandboxError {
    /// The exit status this error stands for: 127 when the command was not found inside the
    /// sandbox, 126 when it was found but could not be executed, 125 for everything else (the
    /// sandbox could not be built).
    pub fn exit_code(&self) -> u8 {
        match self {
            SandboxError::Setup(failure) if failure.step == EXEC_STEP => {
                exec_exit_code(failure.errno)
            }
            _ => EXIT_SETUP_FAILED,
        }
    }
}

/// The exit status for a command the init could not exec with `errno`, as a shell gives it.
fn exec_exit_code(errno: i32) -> u8 {
    if errno == libc::ENOENT {
        EXIT_NOT_FOUND
    } else {
        EXIT_CANNOT_EXECUTE
    }
}

/// The step name of a failed `execve` of the command (see [`SandboxError::exit_code`]).
const EXEC_STEP: &str = "exec";

/// A failure reported by the sandbox's init or command before exec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupFailure {
    pub step: String,
    pub path: Option<String>,
    pub errno: i32,
    pub detail: String,
}

impl std::fmt::Display for SetupFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sandbox setup failed at step \"{}\"", self.step)?;
        if let Some(path) = &self.path {
            write!(f, " on {path}")?;
        }
        if self.errno != 0 {
            write!(f, ": {}", std::io::Error::from_raw_os_error(self.errno))?;
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        if let Some(hint) = hint_for(&self.step, self.errno) {
            write!(f, "\nHint: {hint}")?;
        }
        Ok(())
    }
}

fn hint_for(step: &str, errno: i32) -> Option<&'static str> {
    Some(match (step, errno) {
        (EXEC_STEP, libc::ENOENT) => {
            "the command is not inside the sandbox: bind its directory (e.g. --ro /opt/tool) or \
             give a path under /usr"
        }
        (EXEC_STEP, libc::EACCES) => "the command is not executable, or its mount is noexec",
        ("mount /proc", _) => {
            "the host masks /proc (typical inside a container runtime); run on the host, or see \
             `bureau-sandbox probe`"
        }
        ("create mount point" | "create directory", libc::EROFS) => {
            "a mount's destination lies inside an earlier read-only bind: reorder the mounts or \
             choose another destination"
        }
        ("landlock", _) => "see `bureau-sandbox probe` for this kernel's landlock ABI",
        (NETWORK_STEP, libc::ENOSPC | libc::EPERM) => {
            "network namespaces are limited or refused here (user.max_net_namespaces, or a \
             restriction on user namespaces); see `bureau-sandbox probe`, or use --net host"
        }
        ("set user and group IDs" | "setgroups", _) => {
            "the uid/gid maps were not accepted: check /etc/subuid or run as root"
        }
        _ => return None,
    })
}

/// The caller's identity and the one the sandbox gets.
struct Identity {
    host_uid: u32,
    host_gid: u32,
    inner_uid: u32,
    inner_gid: u32,
    privileged: bool,
}

fn resolve_identity(spec: &SandboxSpec) -> Result<Identity, SandboxError> {
    let caller_uid = nix::unistd::getuid().as_raw();
    let caller_gid = nix::unistd::getgid().as_raw();
    let privileged = nix::unistd::geteuid().is_root();
    let host_uid = spec.identity.host_uid.unwrap_or(caller_uid);
    let host_gid = spec.identity.host_gid.unwrap_or(caller_gid);
    if !privileged && (host_uid != caller_uid || host_gid != caller_gid) {
        return Err(SandboxError::HostIdNotAllowed {
            requested: host_uid,
            caller: caller_uid,
        });
    }
    Ok(Identity {
        host_uid,
        host_gid,
        inner_uid: spec.identity.inner_uid.unwrap_or(caller_uid),
        inner_gid: spec.identity.inner_gid.unwrap_or(caller_gid),
        privileged,
    })
}

/// `ST_*` bits of statvfs that a remount inside a user namespace must keep (they are locked).
fn locked_mount_flags(statvfs_flags: u64) -> u64 {
    const ST_RDONLY: u64 = 1;
    const ST_NOSUID: u64 = 2;
    const ST_NODEV: u64 = 4;
    const ST_NOEXEC: u64 = 8;
    const ST_NOATIME: u64 = 1024;
    const ST_NODIRATIME: u64 = 2048;
    const ST_RELATIME: u64 = 4096;
    [
        (ST_RDONLY, flags::RDONLY),
        (ST_NOSUID, flags::NOSUID),
        (ST_NODEV, flags::NODEV),
        (ST_NOEXEC, flags::NOEXEC),
        (ST_NOATIME, flags::NOATIME),
        (ST_NODIRATIME, flags::NODIRATIME),
        (ST_RELATIME, flags::RELATIME),
    ]
    .iter()
    .filter(|(st, _)| statvfs_flags & st != 0)
    .fold(0, |acc, (_, ms)| acc | ms)
}

/// Opens a bind source with `RESOLVE_NO_SYMLINKS`: a symlink anywhere in the path is refused.
/// The parent's check; the child opens the source again the same way in its own mount
/// namespace (see `plan`), so this is for an early, clear error and the mount flags.
fn open_source(path: &Path, roots: &[PathBuf]) -> Result<(OwnedFd, OpenedSource), SandboxError> {
    if !roots.is_empty() && !roots.iter().any(|root| path.starts_with(root)) {
        return Err(SandboxError::SourceOutsideRoots {
            path: path.to_owned(),
            roots: roots
                .iter()
                .map(|root| root.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let fd = rustix::fs::openat2(
        rustix::fs::CWD,
        path,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::NO_SYMLINKS,
    )
    .map_err(|errno| {
        if errno == rustix::io::Errno::LOOP {
            SandboxError::SymlinkedSource {
                path: path.to_owned(),
                resolved: std::fs::canonicalize(path)
                    .map(|resolved| resolved.display().to_string())
                    .unwrap_or_else(|_| "unresolvable".to_owned()),
            }
        } else {
            SandboxError::Source {
                path: path.to_owned(),
                source: errno.into(),
            }
        }
    })?;
    let source_error = |errno: rustix::io::Errno| SandboxError::Source {
        path: path.to_owned(),
        source: errno.into(),
    };
    let stat = rustix::fs::fstat(&fd).map_err(source_error)?;
    let statvfs = rustix::fs::fstatvfs(&fd).map_err(source_error)?;
    let opened = OpenedSource {
        host_path: path.to_owned(),
        is_dir: rustix::fs::FileType::from_raw_mode(stat.st_mode).is_dir(),
        locked_flags: locked_mount_flags(statvfs.f_flag.bits()),
    };
    Ok((fd, opened))
}

/// Everything the child needs, prepared before `clone` so the child mostly just acts.
struct Prepared {
    ops: Vec<plan::Op>,
    seccomp: Option<seccomp::SeccompProgram>,
    argv: Vec<CString>,
    envp: Vec<CString>,
    /// Candidate paths for `argv[0]` (one when it contains `/`, else one per `PATH` entry).
    candidates: Vec<CString>,
    new_session: bool,
    die_with_parent: bool,
}

fn c_string(bytes: &[u8]) -> Result<CString, SandboxError> {
    CString::new(bytes).map_err(|_| SandboxError::Spec(SpecError::EmptyCommand))
}

fn prepare(spec: &SandboxSpec, identity: &Identity) -> Result<Prepared, SandboxError> {
    let mut bind_sources = Vec::new();
    let mut dev_nodes = Vec::new();
    let mut wants_dev = false;
    for mount in &spec.filesystem {
        match mount {
            Mount::RoBind { source, .. } | Mount::RwBind { source, .. } => {
                let (_fd, opened) = open_source(source, &spec.allowed_bind_roots)?;
                bind_sources.push(opened);
            }
            Mount::Dev { .. } => wants_dev = true,
            _ => {}
        }
    }
    if wants_dev {
        for node in DEV_NODES {
            let (_fd, opened) = open_source(&Path::new("/dev").join(node), &[])?;
            dev_nodes.push(opened);
        }
    }
    if spec.landlock.enabled {
        let kernel_abi = landlock::kernel_abi();
        let floor = spec.effective_landlock_floor();
        if kernel_abi < i32::from(floor) {
            return Err(landlock::LandlockError::BelowFloor { kernel_abi, floor }.into());
        }
    }
    let seccomp = match spec.seccomp {
        SeccompProfile::Default => Some(seccomp::default_program()?),
        SeccompProfile::Disabled => None,
    };
    let facts = HostFacts {
        bind_sources,
        dev_nodes,
        can_setgroups: identity.privileged,
        inner_uid: identity.inner_uid,
        inner_gid: identity.inner_gid,
    };
    let ops = plan::plan(spec, &facts);

    let argv = spec
        .command
        .iter()
        .map(|arg| c_string(arg.as_bytes()))
        .collect::<Result<Vec<_>, _>>()?;
    let envp = spec
        .environment
        .iter()
        .map(|(name, value)| c_string(format!("{name}={value}").as_bytes()))
        .collect::<Result<Vec<_>, _>>()?;
    let program = &spec.command[0];
    let candidates = if program.contains('/') {
        vec![c_string(program.as_bytes())?]
    } else {
        let search_path = spec
            .environment
            .get("PATH")
            .map(String::as_str)
            .unwrap_or("/usr/local/bin:/usr/bin:/bin");
        search_path
            .split(':')
            .filter(|dir| !dir.is_empty())
            .map(|dir| c_string(Path::new(dir).join(program).as_os_str().as_bytes()))
            .collect::<Result<Vec<_>, _>>()?
    };
    Ok(Prepared {
        ops,
        seccomp,
        argv,
        envp,
        candidates,
        new_session: spec.security.new_session,
        die_with_parent: spec.security.die_with_parent,
    })
}

/// The namespaces `clone` makes. Not the network namespace: a helper makes that one beside the
/// init (see [`network`]).
fn clone_flags(spec: &SandboxSpec) -> libc::c_ulong {
    let namespaces = &spec.namespaces;
    let mut flags = libc::SIGCHLD as libc::c_ulong;
    for (wanted, flag) in [
        (namespaces.user, libc::CLONE_NEWUSER),
        (namespaces.mount, libc::CLONE_NEWNS),
        (namespaces.pid, libc::CLONE_NEWPID),
        (namespaces.ipc, libc::CLONE_NEWIPC),
        (namespaces.uts, libc::CLONE_NEWUTS),
        (namespaces.cgroup, libc::CLONE_NEWCGROUP),
    ] {
        if wanted {
            flags |= flag as libc::c_ulong;
        }
    }
    flags
}

fn host_error(step: &'static str) -> impl Fn(std::io::Error) -> SandboxError {
    move |error| SandboxError::Host {
        step,
        message: error.to_string(),
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd), SandboxError> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|errno| SandboxError::Host {
        step: "create pipe",
        message: errno.desc().to_owned(),
    })
}

fn forwarded_set() -> SigSet {
    let mut set = SigSet::empty();
    for signal in FORWARDED {
        set.add(signal);
    }
    set.add(Signal::SIGCHLD);
    set
}

/// Runs the sandbox to completion and returns the exit status to exit with: the command's own,
/// 128 + n when it was killed by signal n.
pub fn run(spec: &SandboxSpec) -> Result<u8, SandboxError> {
    spec.validate()?;
    let identity = resolve_identity(spec)?;
    if spec.security.die_with_parent && !spec.security.outlive_caller {
        let parent = nix::unistd::getppid();
        rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
            .map_err(|errno| host_error("die with parent")(errno.into()))?;
        if nix::unistd::getppid() != parent {
            return Err(SandboxError::Host {
                step: "die with parent",
                message: "the parent exited before the sandbox started".to_owned(),
            });
        }
    }
    let prepared = prepare(spec, &identity)?;
    let mut cgroup = if spec.resources.any() {
        let hierarchy = HostCgroups::detect().choose(&spec.resources)?;
        let name = format!("bureau-sandbox-{}", std::process::id());
        Some(Cgroup::create(&hierarchy, &name, &spec.resources)?)
    } else {
        None
    };
    let result = run_prepared(spec, &identity, &prepared, cgroup.as_ref());
    if let Some(cgroup) = cgroup.as_mut() {
        cgroup.remove();
    }
    result
}

fn run_prepared(
    spec: &SandboxSpec,
    identity: &Identity,
    prepared: &Prepared,
    cgroup: Option<&Cgroup>,
) -> Result<u8, SandboxError> {
    let signals = forwarded_set();
    let mut previous_mask = SigSet::empty();
    sigprocmask(
        SigmaskHow::SIG_BLOCK,
        Some(&signals),
        Some(&mut previous_mask),
    )
    .map_err(|errno| SandboxError::Host {
        step: "block signals",
        message: errno.desc().to_owned(),
    })?;
    let (sync_read, sync_write) = pipe()?;
    let (report_read, report_write) = pipe()?;
    let network_channel = if spec.namespaces.net {
        Some(network::channel().map_err(host_error("create the network namespace socket"))?)
    } else {
        None
    };

    // SAFETY: a raw clone with a NULL stack behaves like fork: the child gets a copy-on-write
    // copy of this single-threaded process (the sandbox applet starts no threads), so every
    // lock and allocation in the copy is in a consistent state.
    let pid = unsafe { libc::syscall(libc::SYS_clone, clone_flags(spec), 0, 0, 0, 0) };
    if pid < 0 {
        let error = std::io::Error::last_os_error();
        let hint = if error.raw_os_error() == Some(libc::EPERM)
            || error.raw_os_error() == Some(libc::ENOSPC)
        {
            "\nHint: user namespaces may be disabled (kernel.unprivileged_userns_clone, \
             user.max_user_namespaces or an AppArmor restriction); see `bureau-sandbox probe`"
        } else {
            ""
        };
        return Err(SandboxError::Host {
            step: "clone namespaces",
            message: format!("{error}{hint}"),
        });
    }
    if pid == 0 {
        drop(sync_write);
        drop(report_read);
        let network_receiver = network_channel.map(|(receiver, _sender)| receiver);
        child_main(
            prepared,
            sync_read,
            report_write,
            network_receiver,
            &previous_mask,
        );
    }
    let child = Pid::from_raw(pid as i32);
    drop(sync_read);
    drop(report_write);
    let network_sender = network_channel.map(|(_receiver, sender)| sender);

    // The init's user namespace, for the network helper to join: opened while the init still
    // waits on the sync pipe with the credentials it was cloned with.
    let user_namespace = match network_sender {
        Some(_) if spec.namespaces.user => File::open(format!("/proc/{child}/ns/user"))
            .map(|file| Some(OwnedFd::from(file)))
            .map_err(host_error("open the sandbox's user namespace")),
        _ => Ok(None),
    };
    let setup = user_namespace.and_then(|user_namespace| {
        write_id_maps(child, identity)?;
        if let Some(cgroup) = cgroup {
            cgroup.add_process(child.as_raw())?;
        }
        File::from(sync_write)
            .write_all(&[1])
            .map_err(host_error("release the sandbox"))?;
        // A helper makes the network namespace while the init builds its mounts (see
        // `network`); it is reaped before the init is handed the namespace.
        if let Some(sender) = &network_sender {
            let namespace = network::make(user_namespace.as_ref()).map_err(network_failure)?;
            network::send(sender, &namespace)
                .map_err(host_error("hand the network namespace to the sandbox"))?;
        }
        Ok(())
    });
    drop(network_sender);
    if let Err(error) = setup {
        return abandon(child, error);
    }
    let mut report = Vec::new();
    if let Err(error) = File::from(report_read).read_to_end(&mut report) {
        return abandon(child, host_error("read the setup report")(error));
    }
    if !report.is_empty() {
        let _ = waitpid(child, None);
        return Err(SandboxError::Setup(decode_failure(&report)));
    }
    Ok(supervise(child, &signals, false))
}

/// Stops a sandbox whose setup the supervisor could not finish: it must not run half-built.
fn abandon(child: Pid, error: SandboxError) -> Result<u8, SandboxError> {
    let _ = kill(child, Signal::SIGKILL);
    let _ = waitpid(child, None);
    Err(error)
}

/// The network helper's failure, reported as the init reports its steps' failures.
fn network_failure(failure: network::HelperFailure) -> SandboxError {
    SandboxError::Setup(SetupFailure {
        step: NETWORK_STEP.to_owned(),
        path: None,
        errno: failure.errno,
        detail: format!("the supervisor's helper could not {}", failure.step),
    })
}

/// Writes `/proc/<pid>/{setgroups,uid_map,gid_map}`: one line each, inner → host.
fn write_id_maps(child: Pid, identity: &Identity) -> Result<(), SandboxError> {
    let proc_dir = PathBuf::from(format!("/proc/{}", child.as_raw()));
    let write = |file: &str, contents: String| {
        std::fs::write(proc_dir.join(file), contents).map_err(|error| SandboxError::Host {
            step: "write uid/gid maps",
            message: format!("{file}: {error}"),
        })
    };
    if !identity.privileged {
        write("setgroups", "deny".to_owned())?;
    }
    write(
        "uid_map",
        format!("{} {} 1\n", identity.inner_uid, identity.host_uid),
    )?;
    write(
        "gid_map",
        format!("{} {} 1\n", identity.inner_gid, identity.host_gid),
    )
}

/// Waits for `child`, forwarding signals to it, and returns its status as an exit code.
/// With `reap_all` (the init), every other exited process is reaped too.
///
/// Only signals *sent* to us (`kill`, `sigqueue`) are forwarded. Signals the kernel generates
/// for a whole process group — Ctrl-C, Ctrl-\ and resizes from the terminal — already reach the
/// command directly (it is in the same foreground group); forwarding them too would deliver
/// each Ctrl-C two or three times.
fn supervise(child: Pid, signals: &SigSet, reap_all: bool) -> u8 {
    let wait_target = if reap_all { None } else { Some(child) };
    loop {
        let Some((signal, sent_by_a_process)) = wait_for_signal(signals) else {
            continue;
        };
        if signal != Signal::SIGCHLD {
            if sent_by_a_process {
                let _ = kill(child, signal);
            }
            continue;
        }
        loop {
            match waitpid(wait_target, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == child => return code as u8,
                Ok(WaitStatus::Signaled(pid, signal, _)) if pid == child => {
                    return 128u8.saturating_add(signal as u8);
                }
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    }
}

/// `sigwaitinfo`: the next pending signal of `signals`, and whether a process sent it (as opposed
/// to the kernel, e.g. a terminal's Ctrl-C, which has `si_code == SI_KERNEL`).
fn wait_for_signal(signals: &SigSet) -> Option<(Signal, bool)> {
    let mut info = std::mem::MaybeUninit::<libc::siginfo_t>::zeroed();
    // SAFETY: `signals` is a valid sigset and `info` points to writable siginfo storage.
    let number = unsafe { libc::sigwaitinfo(signals.as_ref(), info.as_mut_ptr()) };
    if number < 0 {
        return None;
    }
    // SAFETY: sigwaitinfo succeeded, so it filled `info` (and it was zeroed before anyway).
    let info = unsafe { info.assume_init() };
    let signal = Signal::try_from(number).ok()?;
    Some((signal, info.si_code != libc::SI_KERNEL))
}

/// The report record: `step \0 path \0 errno \0 detail`, written in one `write` (atomic below
/// PIPE_BUF) just before the writer exits.
fn encode_failure(step: &str, path: Option<&Path>, errno: i32, detail: &str) -> Vec<u8> {
    let mut record = Vec::with_capacity(128);
    record.extend_from_slice(step.as_bytes());
    record.push(0);
    if let Some(path) = path {
        record.extend_from_slice(path.as_os_str().as_bytes());
    }
    record.push(0);
    record.extend_from_slice(errno.to_string().as_bytes());
    record.push(0);
    record.extend_from_slice(detail.as_bytes());
    record.truncate(4000);
    record
}

fn decode_failure(record: &[u8]) -> SetupFailure {
    let mut fields = record.splitn(4, |byte| *byte == 0);
    let mut next = || String::from_utf8_lossy(fields.next().unwrap_or_default()).into_owned();
    let step = next();
    let path = next();
    let errno = next().parse().unwrap_or(0);
    let detail = next();
    SetupFailure {
        step,
        path: (!path.is_empty()).then_some(path),
        errno,
        detail,
    }
}

/// Reports a failure on the report pipe and exits; never returns.
fn fail(
    report: &OwnedFd,
    step: &str,
    path: Option<&Path>,
    errno: i32,
    detail: &str,
    code: u8,
) -> ! {
    let record = encode_failure(step, path, errno, detail);
    let _ = rustix::io::write(report, &record);
    // SAFETY: _exit ends the process immediately without running destructors or atexit
    // handlers that belong to the parent's copy of the state.
    unsafe { libc::_exit(i32::from(code)) }
}

/// The sandbox's init: sets everything up, spawns the command, then supervises it.
fn child_main(
    prepared: &Prepared,
    sync_read: OwnedFd,
    report: OwnedFd,
    network: Option<OwnedFd>,
    mask: &SigSet,
) -> ! {
    if prepared.die_with_parent {
        let _ =
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
    }
    // Descriptors the caller left open without CLOEXEC would otherwise reach the command (and
    // stay readable in the init through /proc/1/fd): only stdin, stdout and stderr go in.
    let mut keep = vec![sync_read.as_raw_fd(), report.as_raw_fd()];
    keep.extend(network.as_ref().map(AsRawFd::as_raw_fd));
    if let Err(errno) = close_inherited_descriptors(&keep) {
        fail(
            &report,
            "close inherited descriptors",
            None,
            errno,
            "",
            EXIT_SETUP_FAILED,
        );
    }
    // The parent writes one byte after the ID maps; EOF means it died first.
    let mut byte = [0u8; 1];
    match rustix::io::read(&sync_read, &mut byte) {
        Ok(1) => {}
        _ => fail(
            &report,
            "wait for the parent",
            None,
            0,
            "the parent exited",
            EXIT_SETUP_FAILED,
        ),
    }
    drop(sync_read);

    let mut kernel = LinuxKernel {
        seccomp: prepared.seccomp.as_ref(),
        sources: Vec::new(),
        network: network.as_ref(),
    };
    if let Err(failure) = apply_all(&mut kernel, &prepared.ops) {
        let op = &prepared.ops[failure.index];
        fail(
            &report,
            op.step_name(),
            op.path(),
            failure.failure.errno,
            &failure.failure.detail,
            EXIT_SETUP_FAILED,
        );
    }
    harden_init(prepared, &report);

    let command = spawn_command(prepared, &report, mask);
    drop(report);
    drop(kernel);
    drop(network);
    let status = supervise(command, &forwarded_set(), true);
    // SAFETY: see `fail`; the init has nothing to clean up.
    unsafe { libc::_exit(i32::from(status)) }
}

/// Closes every descriptor from 3 up except `keep` (`close_range`, Linux ≥ 5.9).
fn close_inherited_descriptors(keep: &[RawFd]) -> Result<(), i32> {
    let close = |first: u32, last: u32| -> Result<(), i32> {
        if first > last {
            return Ok(());
        }
        // SAFETY: close_range only closes descriptors; the caller passes every descriptor it
        // still uses in `keep`, so no live owner sees its descriptor closed.
        let result = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u32) };
        if result < 0 {
            Err(std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EBADF))
        } else {
            Ok(())
        }
    };
    // No allocation: the smallest kept descriptor at or above `first`, until none is left.
    let mut first: u32 = 3;
    loop {
        let next_kept = keep
            .iter()
            .filter_map(|fd| u32::try_from(*fd).ok())
            .filter(|fd| *fd >= first)
            .min();
        let Some(kept) = next_kept else {
            return close(first, u32::MAX);
        };
        if kept > first {
            close(first, kept - 1)?;
        }
        first = kept + 1;
    }
}

/// The init after its setup, before it spawns the command.
///
/// Why here and not first: `SetIds` changes the credentials when the sandbox maps to another
/// host user, and the kernel then clears the parent-death signal (die_with_parent would be
/// silently lost) and resets dumpability. So both are set once the credentials are final:
/// - the parent-death signal again, and if the parent already died (its end of the report pipe
///   is closed: `POLLERR`), the sandbox does not start;
/// - not dumpable: the init is a copy of the supervisor, so its memory holds the caller's
///   environment and arguments; a dumpable init would let the command (same user) read them
///   through `/proc/1/environ` and `/proc/1/mem`, or write the init's memory.
fn harden_init(prepared: &Prepared, report: &OwnedFd) {
    if prepared.die_with_parent {
        let armed =
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
        let mut poll = libc::pollfd {
            fd: report.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: one valid pollfd, a zero timeout: poll only fills in `revents`.
        let ready = unsafe { libc::poll(&mut poll, 1, 0) };
        let parent_gone = ready > 0 && poll.revents & libc::POLLERR != 0;
        if let Err(errno) = armed {
            fail(
                report,
                "die with parent",
                None,
                errno.raw_os_error(),
                "",
                EXIT_SETUP_FAILED,
            );
        }
        if parent_gone {
            // SAFETY: see `fail`; nobody is left to read a report.
            unsafe { libc::_exit(i32::from(EXIT_SETUP_FAILED)) }
        }
    }
    if let Err(errno) =
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
    {
        fail(
            report,
            "make the init undumpable",
            None,
            errno.raw_os_error(),
            "",
            EXIT_SETUP_FAILED,
        );
    }
}

/// Starts the command as pid 2 with the caller's signal mask and SIGPIPE at its default, in a
/// new session if asked, trying each candidate path like `execvp`. A command that cannot be
/// started ends the init with 127 (not found) or 126 (cannot execute) and a report naming it;
/// a process that could not be created (the pids or memory limit) with 125, "spawn the
/// command".
///
/// `posix_spawn` rather than `fork` + `execve`: the C library's spawn is a `vfork`-style clone
/// (`CLONE_VM | CLONE_VFORK`, which the seccomp profile allows) that shares the init's memory
/// until the exec, where a fork would copy the page tables of this whole binary and take a
/// copy-on-write fault on each page either side touches — about 0.15 ms of every sandbox's
/// start (`cargo xtask bench sandbox`). The exec's errno comes back from the call itself.
fn spawn_command(prepared: &Prepared, report: &OwnedFd, mask: &SigSet) -> Pid {
    let argv = null_terminated(&prepared.argv);
    let envp = null_terminated(&prepared.envp);
    // The Rust runtime of this process ignores SIGPIPE, and an ignored signal stays ignored
    // across exec: without this, `yes | head` inside would end in EPIPE errors.
    let mut defaults = SigSet::empty();
    defaults.add(Signal::SIGPIPE);
    let mut last_errno = libc::ENOENT;
    let searching = prepared.candidates.len() > 1;
    for candidate in &prepared.candidates {
        // On a `PATH` search a candidate that is plainly absent or not executable is skipped
        // without spawning, so no pid is spent on it.
        // SAFETY: `candidate` is a C string; access only reads it.
        let errno = if searching && unsafe { libc::access(candidate.as_ptr(), libc::X_OK) } != 0 {
            std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::ENOENT)
        } else {
            match posix_spawn(
                candidate,
                &argv,
                &envp,
                mask,
                &defaults,
                prepared.new_session,
            ) {
                Ok(pid) => return pid,
                Err(errno) => errno,
            }
        };
        match errno {
            // No process could be made: nothing to do with the command.
            libc::EAGAIN | libc::ENOMEM => fail(
                report,
                "spawn the command",
                None,
                errno,
                "",
                EXIT_SETUP_FAILED,
            ),
            // What execvp searches on; it reports EACCES over "not found" at the end. A path
            // given with a `/` is the only candidate: its own errno is the answer (ENOTDIR is
            // 126, as a shell says, not "not found").
            libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT => {
                if !searching {
                    last_errno = errno;
                }
            }
            libc::EACCES => last_errno = libc::EACCES,
            other => {
                last_errno = other;
                break;
            }
        }
    }
    let program = OsStr::from_bytes(
        prepared
            .argv
            .first()
            .map(|arg| arg.as_bytes())
            .unwrap_or_default(),
    );
    fail(
        report,
        EXEC_STEP,
        Some(Path::new(program)),
        last_errno,
        "",
        exec_exit_code(last_errno),
    )
}

/// The `char *const []` an exec takes: pointers into `strings`, then NULL.
fn null_terminated(strings: &[CString]) -> Vec<*mut libc::c_char> {
    strings
        .iter()
        .map(|string| string.as_ptr().cast_mut())
        .chain(std::iter::once(std::ptr::null_mut()))
        .collect()
}

/// One `posix_spawn` of `path`; the error is the errno (the exec's, when it was the exec).
fn posix_spawn(
    path: &CString,
    argv: &[*mut libc::c_char],
    envp: &[*mut libc::c_char],
    mask: &SigSet,
    defaults: &SigSet,
    new_session: bool,
) -> Result<Pid, i32> {
    // The flags argument is a short; the POSIX_SPAWN_* values are declared as ints.
    let mut flags = (libc::POSIX_SPAWN_SETSIGMASK | libc::POSIX_SPAWN_SETSIGDEF) as libc::c_short;
    if new_session {
        flags |= libc::POSIX_SPAWN_SETSID;
    }
    let mut attributes = std::mem::MaybeUninit::<libc::posix_spawnattr_t>::uninit();
    // SAFETY: initialises the attribute object in place; it is destroyed below on every path.
    let result = unsafe { libc::posix_spawnattr_init(attributes.as_mut_ptr()) };
    if result != 0 {
        return Err(result);
    }
    // SAFETY: posix_spawnattr_init succeeded, so the object is initialised.
    let attributes = unsafe { attributes.assume_init_mut() };
    // SAFETY: an initialised attribute object and a valid sigset_t (nix's SigSet wraps one).
    let mut result = unsafe { libc::posix_spawnattr_setsigmask(attributes, mask.as_ref()) };
    if result == 0 {
        // SAFETY: an initialised attribute object and a valid sigset_t.
        result = unsafe { libc::posix_spawnattr_setsigdefault(attributes, defaults.as_ref()) };
    }
    if result == 0 {
        // SAFETY: an initialised attribute object; the flags are POSIX_SPAWN_* constants.
        result = unsafe { libc::posix_spawnattr_setflags(attributes, flags) };
    }
    let mut pid: libc::pid_t = 0;
    if result == 0 {
        // SAFETY: `path` is a C string; `argv` and `envp` are NULL-terminated arrays of pointers
        // to C strings that outlive the call (posix_spawn returns after the exec or its
        // failure); no file actions.
        result = unsafe {
            libc::posix_spawn(
                &mut pid,
                path.as_ptr(),
                std::ptr::null(),
                attributes,
                argv.as_ptr(),
                envp.as_ptr(),
            )
        };
    }
    // SAFETY: destroys the object initialised above, once.
    unsafe { libc::posix_spawnattr_destroy(attributes) };
    if result == 0 {
        Ok(Pid::from_raw(pid))
    } else {
        Err(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_records_round_trip() {
        let record = encode_failure("mount /proc", Some(Path::new("/tmp/proc")), libc::EPERM, "");
        let failure = decode_failure(&record);
        assert_eq!(failure.step, "mount /proc");
        assert_eq!(failure.path.as_deref(), Some("/tmp/proc"));
        assert_eq!(failure.errno, libc::EPERM);
        let message = failure.to_string();
        assert!(message.contains("mount /proc"), "{message}");
        assert!(message.contains("Hint:"), "{message}");
    }

    #[test]
    fn a_network_helper_failure_names_the_step_the_errno_and_the_fix() {
        let error = network_failure(network::HelperFailure {
            step: "create the network namespace",
            errno: libc::ENOSPC,
        });
        assert_eq!(error.exit_code(), EXIT_SETUP_FAILED);
        let message = error.to_string();
        assert!(message.contains("step \"network namespace\""), "{message}");
        assert!(message.contains("No space left on device"), "{message}");
        assert!(
            message.contains("could not create the network namespace"),
            "{message}"
        );
        assert!(
            message.contains("Hint:") && message.contains("--net host"),
            "{message}"
        );
    }

    #[test]
    fn exec_failures_exit_127_or_126_and_other_failures_125() {
        let setup = |step: &str, errno| {
            SandboxError::Setup(SetupFailure {
                step: step.to_owned(),
                path: None,
                errno,
                detail: String::new(),
            })
        };
        assert_eq!(setup(EXEC_STEP, libc::ENOENT).exit_code(), EXIT_NOT_FOUND);
        assert_eq!(
            setup(EXEC_STEP, libc::EACCES).exit_code(),
            EXIT_CANNOT_EXECUTE
        );
        assert_eq!(
            setup(EXEC_STEP, libc::ENOEXEC).exit_code(),
            EXIT_CANNOT_EXECUTE
        );
        assert_eq!(
            setup("mount /proc", libc::ENOENT).exit_code(),
            EXIT_SETUP_FAILED
        );
        let host = SandboxError::Host {
            step: "clone namespaces",
            message: String::new(),
        };
        assert_eq!(host.exit_code(), EXIT_SETUP_FAILED);
    }

    #[test]
    fn inherited_descriptors_are_closed_except_the_kept_ones() {
        // In a forked child: the test harness's other threads are not copied by fork.
        let (keep, _keep_write) = nix::unistd::pipe().expect("pipe");
        let (stray, _stray_write) = nix::unistd::pipe().expect("pipe");
        let (keep_fd, stray_fd) = (keep.as_raw_fd(), stray.as_raw_fd());
        // SAFETY: the child only makes async-signal-safe calls (close_range, fcntl, _exit).
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork");
        if pid == 0 {
            let closed = close_inherited_descriptors(&[keep_fd]).is_ok();
            // SAFETY: F_GETFD only queries the descriptor.
            let keep_open = unsafe { libc::fcntl(keep_fd, libc::F_GETFD) } >= 0;
            // SAFETY: as above.
            let stray_open = unsafe { libc::fcntl(stray_fd, libc::F_GETFD) } >= 0;
            let code = if closed && keep_open && !stray_open {
                0
            } else {
                1
            };
            // SAFETY: leave the forked copy of the test harness without running destructors.
            unsafe { libc::_exit(code) }
        }
        let status = waitpid(Pid::from_raw(pid), None).expect("waitpid");
        assert_eq!(status, WaitStatus::Exited(Pid::from_raw(pid), 0));
    }

    #[test]
    fn locked_flags_translate_statvfs_bits_to_mount_bits() {
        // ST_NOSUID | ST_NODEV | ST_RELATIME
        assert_eq!(
            locked_mount_flags(2 | 4 | 4096),
            flags::NOSUID | flags::NODEV | flags::RELATIME
        );
    }

    #[test]
    fn symlinked_source_is_refused_naming_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let real = dir.path().join("real");
        std::fs::create_dir(&real).expect("mkdir");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).expect("symlink");
        let error = open_source(&link, &[]).expect_err("symlink refused");
        assert!(matches!(error, SandboxError::SymlinkedSource { .. }));
        assert!(error.to_string().contains("link"), "{error}");
        // A symlink in a parent component is refused as well.
        std::fs::create_dir(real.join("sub")).expect("mkdir sub");
        let error = open_source(&link.join("sub"), &[]).expect_err("parent symlink refused");
        assert!(matches!(error, SandboxError::SymlinkedSource { .. }));
        assert!(open_source(&real, &[]).is_ok());
    }

    #[test]
    fn source_outside_allowed_roots_is_refused() {
        let error =
            open_source(Path::new("/etc"), &[PathBuf::from("/var/bureau")]).expect_err("outside");
        assert!(error.to_string().contains("/var/bureau"), "{error}");
    }
}
