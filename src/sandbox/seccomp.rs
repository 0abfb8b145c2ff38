//! The default seccomp profile: a deny-list of the kernel interfaces an agent never needs and
//! that sandbox escapes and kernel exploits are made of.
//!
//! Built in the parent (allocation is fine there), installed by the child as the very last step
//! before exec. Several small filters are stacked because each returns its own errno; the
//! kernel runs them all and the strictest answer wins:
//!
//! | filter | syscalls | answer |
//! |---|---|---|
//! | deny | ptrace, process_vm_*, the mount family, unshare, setns, clone with namespace flags, keyctl, bpf, perf_event_open, userfaultfd, modules, kexec, reboot, swap, acct, open_by_handle_at, io_uring_*, ioctl TIOCSTI/TIOCLINUX, sendto/sendmsg/sendmmsg with `MSG_FASTOPEN` | `EPERM` |
//! | clone3 | clone3 (its flags live in memory seccomp cannot read) | `ENOSYS`: libc falls back to `clone`, whose flags are checked |
//! | sockets | socket/socketpair families other than unix, inet, inet6 and netlink-route; inet/inet6 with `IPPROTO_MPTCP` | `EAFNOSUPPORT` |
//!
//! Why MPTCP and `MSG_FASTOPEN`: with the host network, landlock's TCP rules are the only guard
//! on TCP, and neither reaches them (landlock only checks `IPPROTO_TCP` sockets, and a fast-open
//! send connects inside `sendmsg`, past the `connect` hook), so either would connect anywhere.
//! | x32 (x86_64) | the x32 syscall ABI | kill |
//!
//! Every filter kills the process on a foreign architecture (i386 `int 0x80`, arm32), so only
//! the native ABI is reachable.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch, sock_filter,
};

/// The filters, ready to install in order.
#[derive(Debug, Clone)]
pub struct SeccompFilters {
    pub programs: Vec<BpfProgram>,
}

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("building the seccomp filter: {0}")]
    Build(#[from] seccompiler::BackendError),
    #[error("installing the seccomp filter: {0}")]
    Install(#[from] seccompiler::Error),
}

#[cfg(target_arch = "x86_64")]
const ARCH: TargetArch = TargetArch::x86_64;
#[cfg(target_arch = "aarch64")]
const ARCH: TargetArch = TargetArch::aarch64;

const EPERM: u32 = libc::EPERM as u32;

/// Namespace-creating clone flags: a clone carrying any of them is refused.
const NAMESPACE_CLONE_FLAGS: [u64; 7] = [
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWCGROUP as u64,
];

/// Syscalls refused outright with `EPERM`.
fn denied_syscalls() -> Vec<i64> {
    let mut denied = vec![
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_move_mount,
        libc::SYS_open_tree,
        libc::SYS_fsopen,
        libc::SYS_fsmount,
        libc::SYS_fsconfig,
        libc::SYS_fspick,
        libc::SYS_mount_setattr,
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_userfaultfd,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_kexec_load,
        libc::SYS_kexec_file_load,
        libc::SYS_reboot,
        libc::SYS_swapon,
        libc::SYS_swapoff,
        libc::SYS_acct,
        libc::SYS_open_by_handle_at,
        libc::SYS_name_to_handle_at,
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
        libc::SYS_chroot,
        libc::SYS_quotactl,
        libc::SYS_syslog,
        libc::SYS_vhangup,
        libc::SYS_lookup_dcookie,
    ];
    #[cfg(target_arch = "x86_64")]
    denied.extend([libc::SYS_iopl, libc::SYS_ioperm, libc::SYS_uselib]);
    denied
}

fn condition(
    arg: u8,
    len: SeccompCmpArgLen,
    op: SeccompCmpOp,
    value: u64,
) -> Result<SeccompCondition, seccompiler::BackendError> {
    SeccompCondition::new(arg, len, op, value)
}

fn rule(conditions: Vec<SeccompCondition>) -> Result<SeccompRule, seccompiler::BackendError> {
    SeccompRule::new(conditions)
}

/// The `EPERM` filter.
fn deny_filter() -> Result<BpfProgram, seccompiler::BackendError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = denied_syscalls()
        .into_iter()
        .map(|syscall| (syscall, Vec::new()))
        .collect();
    // clone(flags, …): any namespace flag → EPERM.
    let clone_rules = NAMESPACE_CLONE_FLAGS
        .iter()
        .map(|flag| {
            rule(vec![condition(
                0,
                SeccompCmpArgLen::Qword,
                SeccompCmpOp::MaskedEq(*flag),
                *flag,
            )?])
        })
        .collect::<Result<Vec<_>, _>>()?;
    rules.insert(libc::SYS_clone, clone_rules);
    // ioctl(fd, cmd): terminal injection into whoever reads this terminal (the operator's tmux).
    // The kernel compares `cmd` as 32 bits, so do we.
    let ioctl_rules = [libc::TIOCSTI, libc::TIOCLINUX]
        .iter()
        .map(|request| {
            rule(vec![condition(
                1,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::Eq,
                u64::from(*request as u32),
            )?])
        })
        .collect::<Result<Vec<_>, _>>()?;
    rules.insert(libc::SYS_ioctl, ioctl_rules);
    // A TCP fast-open send connects without passing landlock's connect check (see the module
    // doc). The flags are sendto's and sendmmsg's fourth argument, sendmsg's third.
    let fast_open = |flags_arg: u8| {
        rule(vec![condition(
            flags_arg,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::MaskedEq(libc::MSG_FASTOPEN as u64),
            libc::MSG_FASTOPEN as u64,
        )?])
    };
    rules.insert(libc::SYS_sendto, vec![fast_open(3)?]);
    rules.insert(libc::SYS_sendmsg, vec![fast_open(2)?]);
    rules.insert(libc::SYS_sendmmsg, vec![fast_open(3)?]);
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(EPERM),
        ARCH,
    )?;
    BpfProgram::try_from(filter)
}

/// `clone3` → `ENOSYS`.
fn clone3_filter() -> Result<BpfProgram, seccompiler::BackendError> {
    let rules = BTreeMap::from([(libc::SYS_clone3, Vec::new())]);
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        ARCH,
    )?;
    BpfProgram::try_from(filter)
}

/// socket/socketpair with a family other than unix, inet, inet6 (or netlink with a protocol
/// other than NETLINK_ROUTE, or inet/inet6 with IPPROTO_MPTCP) → `EAFNOSUPPORT`.
fn socket_filter() -> Result<BpfProgram, seccompiler::BackendError> {
    let dword = || SeccompCmpArgLen::Dword;
    let other_family = rule(
        [
            libc::AF_UNIX,
            libc::AF_INET,
            libc::AF_INET6,
            libc::AF_NETLINK,
        ]
        .iter()
        .map(|family| condition(0, dword(), SeccompCmpOp::Ne, *family as u64))
        .collect::<Result<_, _>>()?,
    )?;
    let netlink_not_route = rule(vec![
        condition(0, dword(), SeccompCmpOp::Eq, libc::AF_NETLINK as u64)?,
        condition(2, dword(), SeccompCmpOp::Ne, libc::NETLINK_ROUTE as u64)?,
    ])?;
    // MPTCP sockets are not seen by landlock's TCP rules (see the module doc).
    let mptcp = |family: i32| {
        rule(vec![
            condition(0, dword(), SeccompCmpOp::Eq, family as u64)?,
            condition(2, dword(), SeccompCmpOp::Eq, libc::IPPROTO_MPTCP as u64)?,
        ])
    };
    let socket_rules = vec![
        other_family,
        netlink_not_route,
        mptcp(libc::AF_INET)?,
        mptcp(libc::AF_INET6)?,
    ];
    let rules = BTreeMap::from([
        (libc::SYS_socket, socket_rules.clone()),
        (libc::SYS_socketpair, socket_rules),
    ]);
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EAFNOSUPPORT as u32),
        ARCH,
    )?;
    BpfProgram::try_from(filter)
}

/// x86_64 only: the x32 ABI shares the x86_64 audit arch but sets bit 30 of the syscall
/// number; seccompiler's arch check cannot see it, so a four-instruction filter kills it.
#[cfg(target_arch = "x86_64")]
fn x32_filter() -> BpfProgram {
    const BPF_LD_W_ABS: u16 = 0x20;
    const BPF_JMP_JSET_K: u16 = 0x45;
    const BPF_RET_K: u16 = 0x06;
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    let instruction = |code, jt, jf, k| sock_filter { code, jt, jf, k };
    vec![
        instruction(BPF_LD_W_ABS, 0, 0, 0), // A = seccomp_data.nr
        instruction(BPF_JMP_JSET_K, 0, 1, X32_SYSCALL_BIT),
        instruction(BPF_RET_K, 0, 0, libc::SECCOMP_RET_KILL_PROCESS),
        instruction(BPF_RET_K, 0, 0, libc::SECCOMP_RET_ALLOW),
    ]
}

/// Builds the default profile.
pub fn default_filters() -> Result<SeccompFilters, SeccompError> {
    #[allow(unused_mut)]
    let mut programs = vec![deny_filter()?, clone3_filter()?, socket_filter()?];
    #[cfg(target_arch = "x86_64")]
    programs.push(x32_filter());
    Ok(SeccompFilters { programs })
}

/// Installs the filters on the calling thread (sets no_new_privs first, as the kernel requires).
pub fn install(filters: &SeccompFilters) -> Result<(), SeccompError> {
    for program in &filters.programs {
        seccompiler::apply_filter(program)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_profile_builds_four_filters_each_checking_the_architecture() {
        let filters = default_filters().expect("profile builds");
        assert_eq!(
            filters.programs.len(),
            if cfg!(target_arch = "x86_64") { 4 } else { 3 }
        );
        for program in &filters.programs {
            assert!(!program.is_empty());
            assert!(
                program.len() < 4096,
                "BPF programs are limited to 4096 instructions"
            );
        }
    }

    #[test]
    fn deny_list_covers_the_escape_interfaces() {
        let denied = denied_syscalls();
        for syscall in [
            libc::SYS_ptrace,
            libc::SYS_mount,
            libc::SYS_unshare,
            libc::SYS_setns,
            libc::SYS_bpf,
            libc::SYS_io_uring_setup,
            libc::SYS_keyctl,
            libc::SYS_open_by_handle_at,
        ] {
            assert!(
                denied.contains(&syscall),
                "syscall {syscall} must be denied"
            );
        }
        assert!(
            !denied.contains(&libc::SYS_clone),
            "clone is filtered by flags, not denied"
        );
    }
}
