//! The one seam between the sandbox setup and the kernel.
//!
//! The child executes its [`plan`](super::plan) through [`Kernel::apply`]; [`LinuxKernel`]
//! performs each op with the real syscalls, [`RecordingKernel`] records them (and can fail on
//! a chosen op) so ordering and error reporting are tested without privileges.

use std::ffi::CString;
use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};

use super::capabilities;
use super::landlock;
use super::network;
use super::plan::{Op, flags};
use super::seccomp::{self, SeccompProgram};

/// A failed op: the errno (0 when the failure is not a syscall's) and details for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpFailure {
    pub errno: i32,
    pub detail: String,
}

impl From<Errno> for OpFailure {
    fn from(errno: Errno) -> Self {
        Self {
            errno: errno as i32,
            detail: String::new(),
        }
    }
}

impl From<std::io::Error> for OpFailure {
    fn from(error: std::io::Error) -> Self {
        Self {
            errno: error.raw_os_error().unwrap_or(0),
            detail: String::new(),
        }
    }
}

/// Performs one op.
pub trait Kernel {
    fn apply(&mut self, op: &Op) -> Result<(), OpFailure>;
}

/// A failure of the op at `index` of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepFailure {
    pub index: usize,
    pub failure: OpFailure,
}

/// Applies `ops` in order, stopping at the first failure.
pub fn apply_all(kernel: &mut impl Kernel, ops: &[Op]) -> Result<(), StepFailure> {
    for (index, op) in ops.iter().enumerate() {
        kernel
            .apply(op)
            .map_err(|failure| StepFailure { index, failure })?;
    }
    Ok(())
}

/// The real kernel.
pub struct LinuxKernel<'a> {
    /// Built by the parent; installed at [`Op::Seccomp`].
    pub seccomp: Option<&'a SeccompProgram>,
    /// Descriptors opened by [`Op::OpenSource`], by slot. CLOEXEC: the command never sees them.
    pub sources: Vec<std::os::fd::OwnedFd>,
    /// The init's end of the socket the supervisor sends the network namespace on, once its
    /// helper has made it (see [`network`]); read at [`Op::JoinNetwork`].
    pub network: Option<&'a std::os::fd::OwnedFd>,
}

fn ms(bits: u64) -> MsFlags {
    MsFlags::from_bits_retain(bits as libc::c_ulong)
}

fn make_parent(path: &Path) -> Result<(), OpFailure> {
    if let Some(parent) = path.parent() {
        DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)?;
    }
    Ok(())
}

/// Runs `create` for `path`; only when a parent directory is missing (ENOENT) are the parents
/// made and `create` run once more. Most entries land in a directory that already exists, and
/// a `mkdir -p` of it first would cost two syscalls each time.
fn with_parents<T>(path: &Path, create: impl Fn() -> std::io::Result<T>) -> Result<T, OpFailure> {
    match create() {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            make_parent(path)?;
            Ok(create()?)
        }
        result => Ok(result?),
    }
}

impl Kernel for LinuxKernel<'_> {
    fn apply(&mut self, op: &Op) -> Result<(), OpFailure> {
        const NONE: Option<&str> = None;
        match op {
            Op::ClearSupplementaryGroups => nix::unistd::setgroups(&[])?,
            Op::SetIds { uid, gid } => {
                let gid = nix::unistd::Gid::from_raw(*gid);
                let uid = nix::unistd::Uid::from_raw(*uid);
                nix::unistd::setresgid(gid, gid, gid)?;
                nix::unistd::setresuid(uid, uid, uid)?;
            }
            Op::MakeMountsPrivate => {
                mount(NONE, "/", NONE, MsFlags::MS_REC | MsFlags::MS_PRIVATE, NONE)?
            }
            Op::MountTmpfs {
                target,
                size,
                mode,
                flags: mount_flags,
            } => {
                let mut data = format!("mode={mode:o}");
                if let Some(size) = size {
                    data.push_str(&format!(",size={size}"));
                }
                mount(
                    Some("tmpfs"),
                    target,
                    Some("tmpfs"),
                    ms(*mount_flags),
                    Some(data.as_str()),
                )?;
            }
            Op::MakeDir { path } => DirBuilder::new().recursive(true).mode(0o755).create(path)?,
            Op::MakeMountPoint { path } => {
                with_parents(path, || {
                    OpenOptions::new()
                        .write(true)
                        .create(true)
                        .truncate(false)
                        .mode(0o644)
                        .open(path)
                })?;
            }
            Op::WriteFile { path, contents } => {
                let mut file = with_parents(path, || {
                    OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o444)
                        .open(path)
                })?;
                file.write_all(contents.as_bytes())?;
            }
            Op::Symlink { target, path } => {
                with_parents(path, || std::os::unix::fs::symlink(target, path))?;
            }
            Op::OpenSource { host_path } => {
                use rustix::fs::{Mode, OFlags, ResolveFlags};
                let fd = rustix::fs::openat2(
                    rustix::fs::CWD,
                    host_path,
                    OFlags::PATH | OFlags::CLOEXEC,
                    Mode::empty(),
                    ResolveFlags::NO_SYMLINKS,
                )
                .map_err(|errno| OpFailure {
                    errno: errno.raw_os_error(),
                    detail: if errno == rustix::io::Errno::LOOP {
                        "the source is or passes through a symlink (refused)".to_owned()
                    } else {
                        String::new()
                    },
                })?;
                self.sources.push(fd);
            }
            Op::BindSource { slot, target, .. } => {
                use std::os::fd::AsRawFd;
                let Some(fd) = self.sources.get(*slot) else {
                    return Err(OpFailure {
                        errno: libc::EBADF,
                        detail: format!("bind source slot {slot} was never opened"),
                    });
                };
                mount(
                    Some(format!("/proc/self/fd/{}", fd.as_raw_fd()).as_str()),
                    target,
                    NONE,
                    MsFlags::MS_BIND,
                    NONE,
                )?;
            }
            Op::RemountBind {
                target,
                flags: mount_flags,
            } => mount(
                NONE,
                target,
                NONE,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | ms(*mount_flags),
                NONE,
            )?,
            Op::MountProc { target } => mount(
                Some("proc"),
                target,
                Some("proc"),
                ms(flags::NOSUID | flags::NODEV | flags::NOEXEC),
                NONE,
            )?,
            Op::PivotRoot { new_root } => {
                // pivot_root(".", ".") stacks the old root on top of the new one; detaching "."
                // then removes the old root without needing a directory to hold it.
                nix::unistd::chdir(new_root)?;
                nix::unistd::pivot_root(".", ".")?;
                umount2(".", MntFlags::MNT_DETACH)?;
                nix::unistd::chdir("/")?;
            }
            Op::RemountRootReadOnly => mount(
                NONE,
                "/",
                NONE,
                MsFlags::MS_BIND
                    | MsFlags::MS_REMOUNT
                    | ms(flags::RDONLY | flags::NOSUID | flags::NODEV),
                NONE,
            )?,
            Op::SetHostname { hostname } => nix::unistd::sethostname(hostname)?,
            Op::JoinNetwork => match self.network {
                Some(receiver) => network::join(receiver)?,
                None => {
                    return Err(OpFailure {
                        errno: 0,
                        detail: "no socket to receive the network namespace on".to_owned(),
                    });
                }
            },
            Op::Landlock { rules } => {
                landlock::apply(rules).map_err(|error| OpFailure {
                    errno: 0,
                    detail: error.to_string(),
                })?;
            }
            Op::DropCapabilities => capabilities::drop_all()?,
            Op::NoNewPrivs => rustix::thread::set_no_new_privs(true)?,
            Op::Seccomp => {
                let Some(program) = self.seccomp else {
                    return Err(OpFailure {
                        errno: 0,
                        detail: "no seccomp filter was built".to_owned(),
                    });
                };
                seccomp::install(program).map_err(|error| OpFailure {
                    errno: 0,
                    detail: error.to_string(),
                })?;
            }
            Op::Chdir { path } => {
                let path =
                    CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| OpFailure {
                        errno: libc::EINVAL,
                        detail: "path contains NUL".to_owned(),
                    })?;
                nix::unistd::chdir(path.as_c_str())?;
            }
        }
        Ok(())
    }
}

impl From<rustix::io::Errno> for OpFailure {
    fn from(errno: rustix::io::Errno) -> Self {
        Self {
            errno: errno.raw_os_error(),
            detail: String::new(),
        }
    }
}

/// A test double: records every op and fails the first op for which `fail_on` returns an error.
#[derive(Default)]
pub struct RecordingKernel {
    pub applied: Vec<Op>,
    pub fail_on: Option<fn(&Op) -> Option<OpFailure>>,
}

impl Kernel for RecordingKernel {
    fn apply(&mut self, op: &Op) -> Result<(), OpFailure> {
        if let Some(failure) = self.fail_on.and_then(|fail_on| fail_on(op)) {
            return Err(failure);
        }
        self.applied.push(op.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn stops_at_the_first_failure_and_names_its_index() {
        let ops = vec![
            Op::MakeMountsPrivate,
            Op::MountProc {
                target: PathBuf::from("/tmp/proc"),
            },
            Op::PivotRoot {
                new_root: PathBuf::from("/tmp"),
            },
        ];
        let mut kernel = RecordingKernel {
            fail_on: Some(|op| {
                matches!(op, Op::MountProc { .. }).then(|| OpFailure {
                    errno: libc::EPERM,
                    detail: String::new(),
                })
            }),
            ..RecordingKernel::default()
        };
        let failure = apply_all(&mut kernel, &ops).expect_err("proc fails");
        assert_eq!(failure.index, 1);
        assert_eq!(failure.failure.errno, libc::EPERM);
        assert_eq!(
            kernel.applied,
            [Op::MakeMountsPrivate],
            "nothing after the failure ran"
        );
    }
}
