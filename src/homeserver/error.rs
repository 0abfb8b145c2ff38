//! What can go wrong installing, starting, using and stopping a local homeserver.

use std::path::PathBuf;

/// A failure of the local homeserver harness: what failed, on what, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum HomeserverError {
    /// The cache directory (the venv's home) cannot be created or written.
    #[error(
        "cannot use the homeserver cache directory {path}: {source}\n\
         Hint: point {env} at a writable directory (the Synapse venv needs ~250 MB)",
        env = super::CACHE_ENV
    )]
    Cache {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// There is no Python interpreter to build the venv with.
    #[error(
        "cannot run {python} to create the Synapse venv: {source}\n\
         Hint: install Python 3.10 or newer with venv support (Debian: apt-get install python3 \
         python3-venv), or set BUREAU_HOMESERVER_PYTHON to an interpreter"
    )]
    PythonMissing {
        python: String,
        #[source]
        source: std::io::Error,
    },

    /// `python3 -m venv` exists but cannot create a venv (Debian without `python3-venv`).
    #[error(
        "`{python} -m venv {venv}` failed because Python's venv/ensurepip support is not \
         installed\n{stderr}\nHint: apt-get install python3-venv"
    )]
    VenvUnavailable {
        python: String,
        venv: PathBuf,
        stderr: String,
    },

    /// A step of the Synapse installation failed.
    #[error("installing Synapse into {venv} failed: {step}\n{detail}\nHint: {hint}")]
    Install {
        venv: PathBuf,
        step: String,
        detail: String,
        hint: String,
    },

    /// A file or directory the harness needs could not be read or written.
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A [`super::HomeserverConfig`] value Synapse would refuse.
    #[error("invalid homeserver configuration: {0}")]
    InvalidConfig(String),

    /// The requested port is taken by another process.
    #[error(
        "port {port} on 127.0.0.1 is already in use\n\
         Hint: stop what listens there, or leave the port unset to get a free one"
    )]
    PortInUse { port: u16 },

    /// A helper program (the venv's `generate_signing_key`, …) could not be run or failed.
    #[error("{program} failed: {detail}")]
    Tool { program: String, detail: String },

    /// Synapse exited before it answered `/_matrix/client/versions`.
    #[error(
        "Synapse (pid {pid}) exited during start-up ({status}); its logs (in {data_dir}) end:\n{log_tail}"
    )]
    ExitedDuringStart {
        pid: u32,
        status: String,
        data_dir: PathBuf,
        log_tail: String,
    },

    /// Synapse did not answer `/_matrix/client/versions` within the start timeout.
    #[error(
        "Synapse (pid {pid}) did not answer {url}/_matrix/client/versions within {seconds} s; \
         it was stopped. Its logs (in {data_dir}) end:\n{log_tail}\n\
         Hint: the machine may be overloaded; raise HomeserverConfig::start_timeout"
    )]
    StartTimeout {
        pid: u32,
        url: String,
        seconds: u64,
        data_dir: PathBuf,
        log_tail: String,
    },

    /// Registration refused because the user exists already.
    #[error("cannot register @{user}:{server_name}: the user already exists")]
    UserExists { user: String, server_name: String },

    /// Registration failed for another reason.
    #[error("cannot register @{user}:{server_name}: {detail}")]
    Register {
        user: String,
        server_name: String,
        detail: String,
    },

    /// The instance is not running (stopped, crashed, or never started).
    #[error("the homeserver for {data_dir} is not running{detail}")]
    NotRunning { data_dir: PathBuf, detail: String },

    /// Stopping the instance failed.
    #[error("cannot stop Synapse (pid {pid}): {source}")]
    Stop {
        pid: u32,
        #[source]
        source: std::io::Error,
    },

    /// A saved instance description is unreadable.
    #[error("{path} is not a homeserver state file: {detail}\nHint: remove it; it is recreated")]
    State { path: PathBuf, detail: String },
}

impl HomeserverError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
