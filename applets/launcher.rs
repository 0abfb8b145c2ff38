//! `bureau-launcher`: the privileged half of a machine. First boot turns a bootstrap file into
//! a machine (session, age key, published public key); after that it serves `launcher.sock`
//! and starts, watches and stops each principal's proxy and sandbox. No network while serving.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use argh::FromArgs;
use bureau::launcher::boot::boot;
use bureau::launcher::server::{Launcher, LauncherConfig, bind_socket};
use bureau::machine::MachinePaths;
use tokio::signal::unix::{SignalKind, signal};

use crate::{Invocation, args};

/// Run this machine's launcher: decrypt credentials, start proxies and sandboxes on request of
/// bureau-daemon (CBOR over launcher.sock), keep them running across daemon restarts.
#[derive(FromArgs)]
#[argh(
    example = "bureau-launcher --dir ~/.local/share/bureau --bootstrap-file bootstrap-box1.json",
    example = "bureau-launcher            # production paths: /var/lib/bureau, /run/bureau",
    note = "First boot needs --bootstrap-file (written by `bureau machine provision NAME`): the \
launcher logs in as the machine, saves the session for bureau-daemon, creates the machine's age \
key (0600) and publishes its public key, then deletes the bootstrap file. Sandboxes keep running \
when the launcher stops; a restarted launcher adopts them from its state file. Stop with SIGTERM \
or SIGINT (exit 0)."
)]
struct LauncherArgs {
    /// rootless mode: keep state, sockets and workspaces under DIR (DIR/state, DIR/run,
    /// DIR/workspace) instead of /var/lib/bureau, /run/bureau and /var/bureau/workspace
    #[argh(option)]
    dir: Option<PathBuf>,

    /// first boot: the bootstrap file from `bureau machine provision` (deleted once used)
    #[argh(option)]
    bootstrap_file: Option<PathBuf>,

    /// host uid that sandboxes' users map to (default: the launcher's own)
    #[argh(option)]
    sandbox_uid: Option<u32>,

    /// host gid that sandboxes' groups map to (default: the launcher's own)
    #[argh(option)]
    sandbox_gid: Option<u32>,

    /// seconds a stopping sandbox gets between SIGTERM and SIGKILL (default 10)
    #[argh(option, default = "10")]
    grace_seconds: u64,

    /// log filter: error, warn, info, debug, trace (overrides RUST_LOG; default info)
    #[argh(option)]
    log_level: Option<String>,
}

pub fn run(invocation: &Invocation) -> ExitCode {
    let parsed: LauncherArgs = match args::parse(&invocation.command_name, &invocation.args) {
        Ok(parsed) => parsed,
        Err(status) => return status,
    };
    let name = invocation.command_name.as_str();
    if let Err(status) = args::init_logging(name, parsed.log_level.as_deref(), "info") {
        return status;
    }
    let host_ids = match (parsed.sandbox_uid, parsed.sandbox_gid) {
        (None, None) => None,
        (Some(uid), Some(gid)) => Some((uid, gid)),
        _ => {
            eprintln!("{name}: give both --sandbox-uid and --sandbox-gid, or neither");
            return ExitCode::from(2);
        }
    };
    let paths = MachinePaths::from_dir_option(parsed.dir.as_deref());
    let bureau_binary = match std::env::current_exe() {
        Ok(path) => path,
        Err(error) => {
            eprintln!("{name}: cannot find its own executable: {error}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match args::current_thread_runtime(name) {
        Ok(runtime) => runtime,
        Err(status) => return status,
    };
    let result = runtime.block_on(async move {
        let (identity, key) = boot(&paths, parsed.bootstrap_file.as_deref()).await?;
        let socket = paths.launcher_socket();
        let listener = bind_socket(&socket).await?;
        let mut terminate = signal(SignalKind::terminate()).map_err(|error| error.to_string())?;
        let mut interrupt = signal(SignalKind::interrupt()).map_err(|error| error.to_string())?;
        let launcher = Launcher::new(LauncherConfig {
            paths,
            identity,
            key,
            bureau_binary,
            host_ids,
            grace: Duration::from_secs(parsed.grace_seconds),
        });
        tracing::info!(socket = %socket.display(), "launcher serving");
        tokio::select! {
            () = launcher.serve(listener) => {}
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        let _ = std::fs::remove_file(&socket);
        tracing::info!("launcher stopping; sandboxes keep running");
        Ok::<(), String>(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{name}: {message}");
            ExitCode::FAILURE
        }
    }
}
