//! `bureau-sandbox probe`: what this host offers the sandbox, each missing piece with its fix.
//!
//! Each check runs the real kernel interface in a throwaway child process, so the answer is what
//! a sandbox would meet, not what a config file claims.

use std::path::Path;

use serde::Serialize;

use super::cgroup::HostCgroups;
use super::landlock::kernel_abi;

/// One check's result.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
    /// What to do when `ok` is false.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// Runs every check.
pub fn run_checks() -> Vec<Check> {
    let mut checks = vec![user_namespaces()];
    if nix::unistd::geteuid().is_root() {
        checks.push(unprivileged_user_namespaces());
    }
    checks.push(landlock());
    checks.push(seccomp());
    checks.extend(cgroups());
    checks.push(proc_mount());
    checks
}

/// Forks; the child runs `test` and exits with 0 or the errno; returns the child's result.
fn in_child(test: fn() -> Result<(), nix::errno::Errno>) -> Result<(), nix::errno::Errno> {
    // SAFETY: the probe applet is single-threaded; the child runs `test` and _exits.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            let code = match test() {
                Ok(()) => 0,
                Err(errno) => errno as i32,
            };
            // SAFETY: ends the probe child without running the parent's destructors.
            unsafe { libc::_exit(code) }
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            match nix::sys::wait::waitpid(child, None) {
                Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => Ok(()),
                Ok(nix::sys::wait::WaitStatus::Exited(_, code)) => {
                    Err(nix::errno::Errno::from_raw(code))
                }
                Ok(_) => Err(nix::errno::Errno::EINTR),
                Err(errno) => Err(errno),
            }
        }
        Err(errno) => Err(errno),
    }
}

fn enter_user_namespace() -> Result<(), nix::errno::Errno> {
    let uid = nix::unistd::getuid();
    let gid = nix::unistd::getgid();
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER)?;
    let write = |file: &str, contents: String| {
        std::fs::write(file, contents)
            .map_err(|error| nix::errno::Errno::from_raw(error.raw_os_error().unwrap_or(0)))
    };
    write("/proc/self/setgroups", "deny".to_owned())?;
    write("/proc/self/uid_map", format!("0 {uid} 1"))?;
    write("/proc/self/gid_map", format!("0 {gid} 1"))
}

const USERNS_FIX: &str = "enable user namespaces: `sysctl -w kernel.unprivileged_userns_clone=1` \
    (Debian/Ubuntu), `sysctl -w user.max_user_namespaces=15000`, and on Ubuntu ≥ 23.10 \
    `sysctl -w kernel.apparmor_restrict_unprivileged_userns=0` or an AppArmor profile";

fn user_namespaces() -> Check {
    let result = in_child(enter_user_namespace);
    Check {
        name: "user_namespaces",
        ok: result.is_ok(),
        detail: match result {
            Ok(()) => "this user can create user namespaces".to_owned(),
            Err(errno) => format!("unshare(CLONE_NEWUSER) failed: {}", errno.desc()),
        },
        fix: result.is_err().then(|| USERNS_FIX.to_owned()),
    }
}

fn unprivileged_user_namespaces() -> Check {
    let result = in_child(|| {
        let nobody_gid = nix::unistd::Gid::from_raw(65534);
        let nobody_uid = nix::unistd::Uid::from_raw(65534);
        nix::unistd::setgroups(&[])?;
        nix::unistd::setresgid(nobody_gid, nobody_gid, nobody_gid)?;
        nix::unistd::setresuid(nobody_uid, nobody_uid, nobody_uid)?;
        // Changing credentials made us non-dumpable, which makes /proc/self/uid_map root's.
        nix::sys::prctl::set_dumpable(true)?;
        enter_user_namespace()
    });
    Check {
        name: "unprivileged_user_namespaces",
        ok: result.is_ok(),
        detail: match result {
            Ok(()) => {
                "unprivileged users (tested as uid 65534) can create user namespaces".to_owned()
            }
            Err(errno) => format!(
                "as uid 65534, unshare(CLONE_NEWUSER) failed: {}",
                errno.desc()
            ),
        },
        fix: result.is_err().then(|| USERNS_FIX.to_owned()),
    }
}

fn landlock() -> Check {
    let abi = kernel_abi();
    let detail = match abi {
        0 => "landlock is not available".to_owned(),
        1..=3 => format!("ABI {abi}: filesystem rules only (no TCP rules, no scopes)"),
        4 | 5 => format!("ABI {abi}: filesystem and TCP rules (no abstract-socket/signal scopes)"),
        _ => format!("ABI {abi}: filesystem, TCP rules and abstract-socket/signal scopes"),
    };
    Check {
        name: "landlock",
        ok: abi >= 1,
        detail,
        fix: (abi == 0).then(|| {
            "use a kernel ≥ 5.13 with CONFIG_SECURITY_LANDLOCK=y and `landlock` in the lsm= boot \
             parameter (ABI 6 needs ≥ 6.12)"
                .to_owned()
        }),
    }
}

fn seccomp() -> Check {
    let actions =
        std::fs::read_to_string("/proc/sys/kernel/seccomp/actions_avail").unwrap_or_default();
    let ok = ["errno", "kill_process", "allow"]
        .iter()
        .all(|action| actions.split_whitespace().any(|a| a == *action));
    Check {
        name: "seccomp",
        ok,
        detail: if ok {
            format!("filter mode with actions: {}", actions.trim())
        } else {
            "seccomp filters (errno, kill_process) are not available".to_owned()
        },
        fix: (!ok).then(|| "use a kernel with CONFIG_SECCOMP_FILTER=y".to_owned()),
    }
}

fn cgroups() -> Vec<Check> {
    let host = HostCgroups::detect();
    let v2 = match &host.v2 {
        Some((dir, controllers)) => {
            let usable = ["memory", "pids", "cpu"]
                .iter()
                .filter(|wanted| controllers.iter().any(|c| c == *wanted))
                .count();
            Check {
                name: "cgroup_v2",
                ok: usable == 3,
                detail: format!("{} offers [{}]", dir.display(), controllers.join(" ")),
                fix: (usable < 3).then(|| {
                    "limits use cgroup v1 where v2 lacks memory/pids/cpu; for v2 boot with \
                     systemd.unified_cgroup_hierarchy=1 and run under a unit with Delegate=yes \
                     (or set BUREAU_CGROUP_PARENT to a delegated directory)"
                        .to_owned()
                }),
            }
        }
        None => Check {
            name: "cgroup_v2",
            ok: false,
            detail: "no cgroup2 mount".to_owned(),
            fix: Some("mount cgroup2 (systemd does this by default)".to_owned()),
        },
    };
    let v1_controllers: Vec<&str> = host.v1.iter().map(|(name, _)| name.as_str()).collect();
    let writable = host
        .v1
        .iter()
        .all(|(_, dir)| nix::unistd::access(dir.as_path(), nix::unistd::AccessFlags::W_OK).is_ok());
    let v1 = Check {
        name: "cgroup_v1",
        ok: !v1_controllers.is_empty() && writable,
        detail: if v1_controllers.is_empty() {
            "no v1 memory/pids/cpu hierarchies (normal on pure cgroup v2 hosts)".to_owned()
        } else {
            format!(
                "controllers [{}]{}",
                v1_controllers.join(" "),
                if writable {
                    ""
                } else {
                    ", not writable by this user"
                }
            )
        },
        fix: (!v1_controllers.is_empty() && !writable)
            .then(|| "run as root to set limits through cgroup v1".to_owned()),
    };
    vec![v2, v1]
}

fn proc_mount() -> Check {
    let result = in_child(|| {
        enter_user_namespace()?;
        nix::sched::unshare(
            nix::sched::CloneFlags::CLONE_NEWNS | nix::sched::CloneFlags::CLONE_NEWPID,
        )?;
        // The first child after CLONE_NEWPID is pid 1 of the new namespace.
        in_child(|| {
            use nix::mount::{MsFlags, mount};
            const NONE: Option<&str> = None;
            mount(NONE, "/", NONE, MsFlags::MS_REC | MsFlags::MS_PRIVATE, NONE)?;
            mount(Some("tmpfs"), "/tmp", Some("tmpfs"), MsFlags::empty(), NONE)?;
            std::fs::create_dir("/tmp/proc")
                .map_err(|e| nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0)))?;
            mount(
                Some("proc"),
                Path::new("/tmp/proc"),
                Some("proc"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                NONE,
            )
        })
    });
    Check {
        name: "proc_mount",
        ok: result.is_ok(),
        detail: match result {
            Ok(()) => "a fresh /proc can be mounted in a new pid namespace".to_owned(),
            Err(errno) => format!(
                "mounting proc in a new user+pid namespace failed: {}",
                errno.desc()
            ),
        },
        fix: result.is_err().then(|| {
            "the host masks /proc (typical inside a container runtime): run Bureau on the host, \
             or give its container an unmasked /proc"
                .to_owned()
        }),
    }
}
