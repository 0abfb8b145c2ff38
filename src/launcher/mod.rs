//! `bureau-launcher`'s library side: the IPC contract ([`ipc`]), the template → sandbox-spec
//! translation ([`spec`]) and the privileged server that starts proxies and sandboxes
//! ([`server`]).
//!
//! Invariant: the launcher opens no network socket while it serves; it talks only to its own
//! Unix socket, its children's pipes and the principals' proxy admin sockets.

pub mod boot;
pub mod children;
pub mod ipc;
pub mod server;
pub mod spec;
