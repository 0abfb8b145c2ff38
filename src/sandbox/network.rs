//! The sandbox's empty network namespace, made beside the init instead of by its `clone`.
//!
//! Creating a network namespace is the slowest part of starting a sandbox (≈ 0.4 ms here: the
//! kernel registers a loopback device and its sysctls). Made by `clone(CLONE_NEWNET)` it would
//! sit on the start-up path before the init even exists. Instead the supervisor starts a helper
//! once it has released the init; the helper joins the init's user namespace, unshares a network
//! namespace (so the new namespace belongs to the sandbox's user namespace, exactly as if
//! `clone` had made it), raises `lo`, and hands the namespace to the init over a socket, while
//! the init builds its mounts on another CPU. The init joins it before `pivot_root`, landlock
//! and dropping its capabilities, and before the command exists
//! ([`Op::JoinNetwork`](super::plan::Op)).
//!
//! Isolation is unchanged: each namespace is new, unshared for one sandbox and handed to it
//! alone; the helper lives in the host's pid namespace (the command can never see or signal it)
//! and exits as soon as it has sent the namespace.
//!
//! The message on the socket: `ok` with the namespace as an `SCM_RIGHTS` descriptor, or
//! `step \0 errno` when the helper failed.

use std::fs::File;
use std::io::{IoSlice, IoSliceMut, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::sched::CloneFlags;
use nix::unistd::Pid;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};

use super::kernel::OpFailure;

/// The two ends of the helper → init socket (a `SOCK_SEQPACKET` pair, CLOEXEC).
pub fn channel() -> std::io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?)
}

/// Stack for the helper: it makes a handful of syscalls and uses a few KiB.
const HELPER_STACK: usize = 64 * 1024;

/// Runs the helper and returns once it has exited (sent the namespace, or failed to make one).
/// `user_namespace` is the init's (`/proc/<init>/ns/user`), or `None` when the sandbox has no
/// user namespace of its own; `sender` is the helper's end of the socket.
///
/// The helper is a vfork-style child (`CLONE_VM | CLONE_VFORK`, like `posix_spawn`'s): no copy
/// of this process's memory to make and none to fault back in afterwards, which a `fork` would
/// cost on every sandbox. The returned pid is the exited helper's, for the caller to reap.
pub fn run_helper(user_namespace: Option<&OwnedFd>, sender: &OwnedFd) -> std::io::Result<Pid> {
    let mut stack = vec![0u8; HELPER_STACK];
    let helper = Box::new(|| -> isize { helper_main(user_namespace, sender) });
    // SAFETY: with CLONE_VFORK this process is suspended until the helper exits, so the helper
    // has the shared memory to itself (as a posix_spawn child does); it runs on `stack`, which
    // outlives it and is far larger than the few frames it needs, allocates nothing and ends
    // with `_exit`, so it leaves no lock held and no state half-changed behind it.
    let pid = unsafe {
        nix::sched::clone(
            helper,
            &mut stack,
            CloneFlags::CLONE_VM | CloneFlags::CLONE_VFORK,
            Some(libc::SIGCHLD),
        )
    }?;
    Ok(pid)
}

/// The helper: makes the namespace and sends it (or what failed), then exits. Allocates nothing:
/// it runs in the supervisor's memory.
fn helper_main(user_namespace: Option<&OwnedFd>, sender: &OwnedFd) -> ! {
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
    let sent = match make_namespace(user_namespace) {
        Ok(namespace) => {
            let descriptors = [namespace.as_fd()];
            let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
            let mut control = SendAncillaryBuffer::new(&mut space);
            control.push(SendAncillaryMessage::ScmRights(&descriptors));
            rustix::net::sendmsg(
                sender,
                &[IoSlice::new(b"ok")],
                &mut control,
                SendFlags::NOSIGNAL,
            )
        }
        Err((step, errno)) => {
            let mut record = [0u8; 96];
            let mut cursor = std::io::Cursor::new(&mut record[..]);
            let _ = write!(cursor, "{step}\0{errno}");
            let length = cursor.position() as usize;
            rustix::net::send(sender, &record[..length], SendFlags::NOSIGNAL)
        }
    };
    // SAFETY: _exit ends the helper without running destructors or handlers: everything it
    // could reach belongs to the suspended supervisor.
    unsafe { libc::_exit(i32::from(sent.is_err())) }
}

/// Joins the sandbox's user namespace, unshares a network namespace, raises `lo`.
fn make_namespace(user_namespace: Option<&OwnedFd>) -> Result<OwnedFd, (&'static str, i32)> {
    let errno = |step: &'static str| move |error: nix::errno::Errno| (step, error as i32);
    if let Some(user_namespace) = user_namespace {
        nix::sched::setns(user_namespace, CloneFlags::CLONE_NEWUSER)
            .map_err(errno("join the sandbox's user namespace"))?;
    }
    nix::sched::unshare(CloneFlags::CLONE_NEWNET).map_err(errno("create the network namespace"))?;
    loopback_up().map_err(|failure| ("bring up loopback", failure.errno))?;
    File::open("/proc/thread-self/ns/net")
        .map(OwnedFd::from)
        .map_err(|error| {
            (
                "open the network namespace",
                error.raw_os_error().unwrap_or(0),
            )
        })
}

/// The init's side: waits for the helper's namespace and joins it.
pub fn join(receiver: &OwnedFd) -> Result<(), OpFailure> {
    let mut bytes = [0u8; 128];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let message = rustix::net::recvmsg(
        receiver,
        &mut [IoSliceMut::new(&mut bytes)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    let mut namespace = None;
    for ancillary in control.drain() {
        if let RecvAncillaryMessage::ScmRights(descriptors) = ancillary {
            for descriptor in descriptors {
                namespace.get_or_insert(descriptor);
            }
        }
    }
    let text = &bytes[..message.bytes.min(bytes.len())];
    match namespace {
        Some(namespace) if text == b"ok" => {
            nix::sched::setns(namespace, CloneFlags::CLONE_NEWNET)?;
            Ok(())
        }
        _ => Err(helper_failure(text)),
    }
}

/// What the helper reported (`step \0 errno`), or that it sent nothing (it exited first).
fn helper_failure(record: &[u8]) -> OpFailure {
    if record.is_empty() {
        return OpFailure {
            errno: 0,
            detail: "the network namespace helper exited without sending the namespace".to_owned(),
        };
    }
    let mut fields = record.splitn(2, |byte| *byte == 0);
    let step = String::from_utf8_lossy(fields.next().unwrap_or_default()).into_owned();
    let errno = fields
        .next()
        .and_then(|field| std::str::from_utf8(field).ok())
        .and_then(|field| field.parse().ok())
        .unwrap_or(0);
    OpFailure {
        errno,
        detail: format!("the helper failed to {step}"),
    }
}

/// `ioctl(SIOCSIFFLAGS, "lo", IFF_UP | IFF_RUNNING)` on a throwaway datagram socket.
fn loopback_up() -> Result<(), OpFailure> {
    let socket = rustix::net::socket(AddressFamily::INET, SocketType::DGRAM, None)?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request.ifr_name.iter_mut().zip(b"lo\0") {
        *slot = *byte as libc::c_char;
    }
    request.ifr_ifru.ifru_flags = (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    // SAFETY: SIOCSIFFLAGS reads one valid, initialised ifreq through the pointer.
    let result = unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCSIFFLAGS as _, &request) };
    if result < 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_helper_failure_names_its_step_and_errno() {
        let failure = helper_failure(b"create the network namespace\x0028");
        assert_eq!(failure.errno, libc::ENOSPC);
        assert_eq!(
            failure.detail,
            "the helper failed to create the network namespace"
        );
        let silent = helper_failure(b"");
        assert_eq!(silent.errno, 0);
        assert!(
            silent.detail.contains("exited without"),
            "{}",
            silent.detail
        );
    }

    #[test]
    fn the_init_fails_closed_when_the_helper_sends_no_namespace() {
        // The helper died before sending: EOF on the socket, and the init does not go on.
        let (receiver, sender) = channel().expect("socketpair");
        drop(sender);
        let failure = join(&receiver).expect_err("no namespace arrived");
        assert!(
            failure.detail.contains("exited without"),
            "{}",
            failure.detail
        );

        // The helper reported a failure: its step and errno reach the operator.
        let (receiver, sender) = channel().expect("socketpair");
        rustix::net::send(
            &sender,
            b"create the network namespace\x0028",
            SendFlags::empty(),
        )
        .expect("send");
        let failure = join(&receiver).expect_err("the helper failed");
        assert_eq!(failure.errno, libc::ENOSPC);
        assert!(failure.detail.contains("create the network namespace"));
    }
}
