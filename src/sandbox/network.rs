//! The sandbox's empty network namespace, made beside the init instead of by its `clone`.
//!
//! Creating a network namespace is the slowest part of starting a sandbox (≈ 0.4 ms here: the
//! kernel registers a loopback device and its sysctls). Made by `clone(CLONE_NEWNET)` it would
//! sit on the start-up path before the init even exists. Instead, once it has released the init,
//! the supervisor runs a short helper ([`make`]) that joins the init's user namespace, unshares
//! a network namespace (so the new namespace belongs to the sandbox's user namespace, exactly as
//! if `clone` had made it) and raises `lo`, while the init builds its mounts on another CPU.
//! The supervisor reaps the helper, then hands the namespace to the init over a socket
//! ([`send`]); the init joins it ([`join`], [`Op::JoinNetwork`](super::plan::Op)) after its
//! mounts and before `pivot_root`, landlock and dropping its capabilities.
//!
//! Isolation is unchanged: each namespace is new, unshared for one sandbox and handed to it
//! alone. The helper holds the sandbox's credentials in the supervisor's memory, so it must be
//! gone before anything of the sandbox's can run: it is reaped before the namespace is sent,
//! hence before the init can go on and long before the command exists.
//!
//! The message on the socket is one byte with the namespace as an `SCM_RIGHTS` descriptor; a
//! supervisor that could not make the namespace kills the init instead of sending.

use std::fs::File;
use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};

use nix::sched::CloneFlags;
use nix::sys::wait::waitpid;
use rustix::mm::{MapFlags, MprotectFlags, ProtFlags};
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};

use super::kernel::OpFailure;

/// The two ends of the supervisor → init socket (a `SOCK_SEQPACKET` pair, CLOEXEC).
pub fn channel() -> std::io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?)
}

/// A step of making the namespace that failed, and its errno (0: the helper was killed first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HelperFailure {
    pub step: &'static str,
    pub errno: i32,
}

/// What the helper leaves in the supervisor's memory for it: the namespace's descriptor
/// (opened into the shared descriptor table) or the step that failed.
type Outcome = Option<Result<RawFd, HelperFailure>>;

/// Makes the sandbox's network namespace in a helper and returns it once the helper has been
/// reaped. `user_namespace` is the init's (`/proc/<init>/ns/user`), or `None` when the sandbox
/// has no user namespace of its own.
///
/// The helper is a vfork-style child (`CLONE_VM | CLONE_VFORK`, like `posix_spawn`'s) that
/// also shares the descriptor table (`CLONE_FILES`): no copy of this process's memory to make
/// and none to fault back in afterwards, which a `fork` would cost on every sandbox, and its
/// result is simply left in this process's memory and descriptor table.
pub fn make(user_namespace: Option<&OwnedFd>) -> Result<OwnedFd, HelperFailure> {
    let started = |errno: i32| HelperFailure {
        step: "start the helper",
        errno,
    };
    let mut stack = GuardedStack::new().map_err(|errno| started(errno.raw_os_error()))?;
    let mut outcome: Outcome = None;
    let helper = Box::new(|| -> isize { helper_main(user_namespace, &mut outcome) });
    // SAFETY: the supervisor is single-threaded (the sandbox applet starts no threads) and
    // CLONE_VFORK suspends it until the helper has exited, so the helper has the shared memory
    // to itself, as a posix_spawn child does. It runs on `stack`, far larger than the few
    // frames it needs and with an unmapped page below it, allocates nothing, cannot panic, and
    // ends with `_exit`: it leaves no lock held and no state half-changed, only `outcome`
    // (which the compiler sees as possibly written through the closure) and the errno of
    // the thread-local storage it shares, which nothing here reads.
    let pid = unsafe {
        nix::sched::clone(
            helper,
            stack.as_mut_slice(),
            CloneFlags::CLONE_VM | CloneFlags::CLONE_VFORK | CloneFlags::CLONE_FILES,
            Some(libc::SIGCHLD),
        )
    }
    .map_err(|errno| started(errno as i32))?;
    // Returns only once the helper is a reaped zombie: no part of it is left to reach.
    let _ = waitpid(pid, None);
    match outcome {
        // SAFETY: the helper opened this descriptor into the shared table and handed it over;
        // nothing else owns it.
        Some(Ok(namespace)) => Ok(unsafe { OwnedFd::from_raw_fd(namespace) }),
        Some(Err(failure)) => Err(failure),
        None => Err(HelperFailure {
            step: "make the namespace (the helper was killed)",
            errno: 0,
        }),
    }
}

/// The helper: makes the namespace, leaves the outcome for the supervisor, exits. Allocates
/// nothing: it runs in the supervisor's memory.
fn helper_main(user_namespace: Option<&OwnedFd>, outcome: &mut Outcome) -> ! {
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
    *outcome = Some(make_namespace(user_namespace).map(IntoRawFd::into_raw_fd));
    // SAFETY: _exit ends the helper without running destructors or handlers: everything it
    // could reach belongs to the suspended supervisor.
    unsafe { libc::_exit(0) }
}

/// Joins the sandbox's user namespace, unshares a network namespace, raises `lo`.
fn make_namespace(user_namespace: Option<&OwnedFd>) -> Result<OwnedFd, HelperFailure> {
    let errno = |step: &'static str| {
        move |error: nix::errno::Errno| HelperFailure {
            step,
            errno: error as i32,
        }
    };
    if let Some(user_namespace) = user_namespace {
        nix::sched::setns(user_namespace, CloneFlags::CLONE_NEWUSER)
            .map_err(errno("join the sandbox's user namespace"))?;
    }
    nix::sched::unshare(CloneFlags::CLONE_NEWNET).map_err(errno("create the network namespace"))?;
    loopback_up().map_err(errno("bring up loopback"))?;
    File::open("/proc/thread-self/ns/net")
        .map(OwnedFd::from)
        .map_err(|error| HelperFailure {
            step: "open the network namespace",
            errno: error.raw_os_error().unwrap_or(0),
        })
}

/// The helper's stack: an anonymous mapping whose lowest page is left inaccessible, so an
/// overflow faults instead of writing over the supervisor's heap.
struct GuardedStack {
    base: *mut libc::c_void,
}

impl GuardedStack {
    /// The helper makes a handful of syscalls and uses a few KiB.
    const SIZE: usize = 64 * 1024;
    const GUARD: usize = 4096;

    fn new() -> rustix::io::Result<Self> {
        // SAFETY: a fresh private anonymous mapping at an address the kernel picks aliases
        // nothing.
        let base = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                Self::SIZE,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE | MapFlags::STACK,
            )
        }?;
        let stack = Self { base };
        // SAFETY: the first page of the mapping made above, which nothing uses yet.
        unsafe { rustix::mm::mprotect(base, Self::GUARD, MprotectFlags::empty()) }?;
        Ok(stack)
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        // The pages above the guard, where the stack lives (it grows down from the end).
        let usable = self.base.cast::<u8>().wrapping_add(Self::GUARD);
        // SAFETY: those pages are mapped readable and writable, owned by `self` and borrowed
        // mutably for the slice's lifetime.
        unsafe { std::slice::from_raw_parts_mut(usable, Self::SIZE - Self::GUARD) }
    }
}

impl Drop for GuardedStack {
    fn drop(&mut self) {
        // SAFETY: unmaps the mapping `new` made; the helper that used it has exited.
        let _ = unsafe { rustix::mm::munmap(self.base, Self::SIZE) };
    }
}

/// Hands the namespace to the init.
pub fn send(sender: &OwnedFd, namespace: &OwnedFd) -> std::io::Result<()> {
    let descriptors = [namespace.as_fd()];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    control.push(SendAncillaryMessage::ScmRights(&descriptors));
    rustix::net::sendmsg(
        sender,
        &[IoSlice::new(b"n")],
        &mut control,
        SendFlags::NOSIGNAL,
    )?;
    Ok(())
}

/// The init's side: waits for the namespace and joins it. Nothing received (the supervisor
/// closed its end without sending) is a failure: the sandbox does not go on without it.
pub fn join(receiver: &OwnedFd) -> Result<(), OpFailure> {
    let mut byte = [0u8; 1];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    rustix::net::recvmsg(
        receiver,
        &mut [IoSliceMut::new(&mut byte)],
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
    match namespace {
        Some(namespace) => Ok(nix::sched::setns(namespace, CloneFlags::CLONE_NEWNET)?),
        None => Err(OpFailure {
            errno: 0,
            detail: "the supervisor sent no network namespace".to_owned(),
        }),
    }
}

/// `ioctl(SIOCSIFFLAGS, "lo", IFF_UP | IFF_RUNNING)` on a throwaway datagram socket.
fn loopback_up() -> nix::Result<()> {
    let socket = rustix::net::socket(AddressFamily::INET, SocketType::DGRAM, None)
        .map_err(|errno| nix::errno::Errno::from_raw(errno.raw_os_error()))?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request.ifr_name.iter_mut().zip(b"lo\0") {
        *slot = *byte as libc::c_char;
    }
    request.ifr_ifru.ifru_flags = (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    // SAFETY: SIOCSIFFLAGS reads one valid, initialised ifreq through the pointer.
    let result = unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCSIFFLAGS as _, &request) };
    nix::errno::Errno::result(result).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_init_fails_closed_when_no_namespace_arrives() {
        // The supervisor closed its end without sending: the init does not go on.
        let (receiver, sender) = channel().expect("socketpair");
        drop(sender);
        let failure = join(&receiver).expect_err("no namespace arrived");
        assert!(
            failure.detail.contains("sent no network namespace"),
            "{}",
            failure.detail
        );

        // A message without a descriptor is not a namespace either.
        let (receiver, sender) = channel().expect("socketpair");
        rustix::net::send(&sender, b"n", SendFlags::empty()).expect("send");
        let failure = join(&receiver).expect_err("no descriptor");
        assert!(
            failure.detail.contains("sent no network namespace"),
            "{}",
            failure.detail
        );
    }

    #[test]
    fn the_helper_makes_a_new_namespace_or_names_the_step_that_failed() {
        // The harness's other threads keep running beside the helper here (the supervisor has
        // none); that is still sound because the helper touches only its stack and `outcome`.
        use std::os::unix::fs::MetadataExt;
        let ours = std::fs::metadata("/proc/self/ns/net")
            .expect("our namespace")
            .ino();
        match make(None) {
            Ok(namespace) => {
                let made = File::from(namespace).metadata().expect("fstat").ino();
                assert_ne!(made, ours, "the helper handed back the host's namespace");
            }
            // Without CAP_SYS_ADMIN here (an unprivileged test run) the unshare is refused.
            Err(failure) => assert_eq!(
                failure,
                HelperFailure {
                    step: "create the network namespace",
                    errno: libc::EPERM
                }
            ),
        }
        // Joining the user namespace it is already in is refused (EINVAL) whatever the caller's
        // privileges: the helper's failure and its step come back to the supervisor.
        let own = OwnedFd::from(File::open("/proc/self/ns/user").expect("our user namespace"));
        assert_eq!(
            make(Some(&own)).expect_err("setns into its own user namespace"),
            HelperFailure {
                step: "join the sandbox's user namespace",
                errno: libc::EINVAL
            }
        );
    }

    #[test]
    fn the_helper_stack_has_a_guard_page_below_it() {
        let mut stack = GuardedStack::new().expect("map the stack");
        let slice = stack.as_mut_slice();
        assert_eq!(slice.len(), GuardedStack::SIZE - GuardedStack::GUARD);
        slice[0] = 1;
        let guard = slice.as_ptr() as usize - GuardedStack::GUARD;
        let maps = std::fs::read_to_string("/proc/self/maps").expect("maps");
        let protection = maps
            .lines()
            .find_map(|line| {
                let (range, rest) = line.split_once(' ')?;
                let (start, end) = range.split_once('-')?;
                let start = usize::from_str_radix(start, 16).ok()?;
                let end = usize::from_str_radix(end, 16).ok()?;
                (start <= guard && guard < end).then(|| rest[..4].to_owned())
            })
            .expect("the guard page is mapped");
        assert_eq!(protection, "---p");
    }
}
