//! `bureau-daemon`: the unprivileged half of a machine. Follows the machine's rooms on Matrix
//! and has the launcher run what `m.bureau.machine_config` says; reports outcomes in the config
//! room.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use argh::FromArgs;
use bureau::daemon::{DaemonConfig, run as run_daemon};
use bureau::machine::MachinePaths;
use tokio::signal::unix::{SignalKind, signal};

use crate::{Invocation, args};

/// Run this machine's daemon: sync the machine's config room, reconcile the principals it
/// assigns with what the launcher runs, restart them per their policy, rotate credentials, and
/// post outcomes (started, exited, start failed, credentials rotated) to the config room.
#[derive(FromArgs)]
#[argh(
    example = "bureau-daemon --dir ~/.local/share/bureau",
    note = "Needs a provisioned machine (bureau-launcher's first boot writes the session and \
identity it reads) and a running bureau-launcher. Principals keep running when the daemon stops; \
a restarted daemon adopts them instead of restarting them. Stop with SIGTERM or SIGINT (exit 0)."
)]
struct DaemonArgs {
    /// rootless mode: the directory given to bureau-launcher --dir
    #[argh(option)]
    dir: Option<PathBuf>,

    /// seconds between m.bureau.machine_status heartbeats (default 60)
    #[argh(option, default = "60")]
    heartbeat_seconds: u64,

    /// the longest restart back-off in seconds (default 30; back-off doubles from 1 s)
    #[argh(option, default = "30")]
    backoff_max_seconds: u64,

    /// log filter: error, warn, info, debug, trace (overrides RUST_LOG; default info)
    #[argh(option)]
    log_level: Option<String>,
}

pub fn run(invocation: &Invocation) -> ExitCode {
    let parsed: DaemonArgs = match args::parse(&invocation.command_name, &invocation.args) {
        Ok(parsed) => parsed,
        Err(status) => return status,
    };
    let name = invocation.command_name.as_str();
    if let Err(status) = args::init_logging(name, parsed.log_level.as_deref(), "info") {
        return status;
    }
    if parsed.heartbeat_seconds == 0 || parsed.backoff_max_seconds == 0 {
        eprintln!("{name}: --heartbeat-seconds and --backoff-max-seconds must be at least 1");
        return ExitCode::from(2);
    }
    let paths = MachinePaths::from_dir_option(parsed.dir.as_deref());
    let mut config = DaemonConfig::new(paths);
    config.heartbeat = Duration::from_secs(parsed.heartbeat_seconds);
    config.backoff_max = Duration::from_secs(parsed.backoff_max_seconds);
    let runtime = match args::current_thread_runtime(name) {
        Ok(runtime) => runtime,
        Err(status) => return status,
    };
    let result = runtime.block_on(async move {
        let mut terminate = signal(SignalKind::terminate()).map_err(|error| error.to_string())?;
        let mut interrupt = signal(SignalKind::interrupt()).map_err(|error| error.to_string())?;
        let shutdown = async move {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = interrupt.recv() => {}
            }
        };
        run_daemon(config, shutdown)
            .await
            .map_err(|error| error.to_string())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{name}: {message}");
            ExitCode::FAILURE
        }
    }
}
