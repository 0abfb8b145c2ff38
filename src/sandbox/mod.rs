//! The sandbox primitive: run an untrusted command in its own user, mount, pid, network, ipc,
//! uts and cgroup namespaces, inside a minimal root, under landlock and seccomp, with no
//! capabilities and optional cgroup limits. No bubblewrap: the kernel interfaces directly.
//!
//! Invariants:
//! - **Fail closed.** Every requested layer is applied or the sandbox does not start, and the
//!   error names the layer (`SandboxError`, `SetupFailure::step`).
//! - **Order.** Filesystem restrictions (mounts, `pivot_root`, landlock) come before capability
//!   dropping, and seccomp is the last step before exec (`plan`).
//! - **Single-threaded clone → exec.** Nothing here starts a thread; the applet starts no runtime.
//! - **One seam.** The setup's kernel calls go through `kernel::Kernel`, so ordering is tested
//!   with a recording double and the real thing is tested for real (`tests/sandbox_*.rs`).
//!
//! Modules: `spec` (what to build), `plan` (the ordered steps), `kernel` (the seam), `process`
//! (clone, ID maps, init, exec, supervision), `network` (the network namespace, made beside the
//! init), `landlock`, `seccomp`, `capabilities`, `cgroup`, `probe` (what the host offers).

pub mod capabilities;
pub mod cgroup;
pub mod kernel;
pub mod landlock;
pub mod network;
pub mod plan;
pub mod probe;
pub mod process;
pub mod seccomp;
pub mod spec;

pub use process::{EXIT_SETUP_FAILED, SandboxError, run};
pub use spec::{Mount, SandboxSpec};
