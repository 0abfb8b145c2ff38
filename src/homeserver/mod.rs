//! A throw-away local Matrix homeserver (Synapse) for integration tests, the quickstart and
//! `cargo xtask homeserver`.
//!
//! Bureau's control plane is Matrix, so everything above the sandbox is tested against a real
//! homeserver. This module installs a pinned Synapse ([`SYNAPSE_VERSION`]) from PyPI into one
//! shared Python venv ([`install`]), writes a test configuration ([`HomeserverConfig`]) and runs
//! instances of it ([`LocalHomeserver`]).
//!
//! ```no_run
//! use bureau::homeserver::{HomeserverConfig, LocalHomeserver};
//!
//! let server = LocalHomeserver::start(HomeserverConfig::default())?;
//! server.register("alice", "alice-password", false)?;
//! println!("{} serves @alice:{}", server.base_url(), server.server_name());
//! // Dropping `server` stops Synapse and removes its data directory.
//! # Ok::<(), bureau::homeserver::HomeserverError>(())
//! ```
//!
//! Invariants:
//! - **Only `127.0.0.1`.** The listener binds the loopback address with the `client` resource
//!   only: no federation, no key servers, no phoning home, no open registration (accounts are
//!   made with the shared secret). Every rate limiter is relaxed so tests never see a 429.
//! - **Throw-away data.** An instance's data directory (SQLite database, signing key, logs) is a
//!   fresh directory on tmpfs (`/dev/shm`) unless the caller names one; a fresh directory is
//!   removed when the instance is dropped. Nothing here is fit for production data.
//! - **One shared venv.** Every instance runs from the same venv under [`cache_dir`], installed
//!   once under a file lock (concurrent test binaries wait for one installer).
//! - **One instance per test binary**, with unique user and room names per test; start a
//!   dedicated instance only for a test that restarts or breaks the server. An instance never
//!   outlives the process that owns it: Synapse watches a pipe from its owner and shuts down when
//!   the owner is gone, even if the owner was killed (so a shared instance in a `static` is
//!   cleaned up too). Only [`LocalHomeserver::start_detached`] (for `cargo xtask homeserver up`)
//!   starts an instance that keeps running; it is described by an [`InstanceInfo`] and stopped
//!   with [`InstanceInfo::stop`].
//!
//! This module is std-only (no async runtime, no HTTP client), so it works from tests, xtask and
//! the binary alike; its readiness probe is a raw HTTP/1.1 request over `TcpStream`.

mod config;
mod error;
mod http;
mod install;
mod instance;
mod process;

use std::path::PathBuf;

pub use config::HomeserverConfig;
pub use error::HomeserverError;
pub use install::{install, venv_dir};
pub use instance::{InstanceInfo, LocalHomeserver};

/// The Synapse release every instance runs (PyPI `matrix-synapse`).
pub const SYNAPSE_VERSION: &str = "1.163.2";

/// Environment variable naming the cache directory (the venv lives there).
pub const CACHE_ENV: &str = "BUREAU_HOMESERVER_CACHE";

/// Where the venv (and `cargo xtask homeserver`'s state) lives: `$BUREAU_HOMESERVER_CACHE`, else
/// `$XDG_CACHE_HOME/bureau/homeserver`, else `~/.cache/bureau/homeserver` (else under the temp
/// directory when there is no home).
pub fn cache_dir() -> PathBuf {
    let non_empty = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
    if let Some(dir) = non_empty(CACHE_ENV) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = non_empty("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("bureau/homeserver");
    }
    if let Some(home) = non_empty("HOME") {
        return PathBuf::from(home).join(".cache/bureau/homeserver");
    }
    std::env::temp_dir().join("bureau-homeserver-cache")
}
