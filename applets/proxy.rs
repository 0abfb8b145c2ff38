//! `bureau-proxy`: one principal's credential-injecting HTTP proxy on a Unix socket.
//!
//! Reads its payload (identity, credentials, grants) on stdin before serving — never from argv,
//! environment or files — marks itself undumpable, then serves the agent socket and the
//! daemon's admin socket until SIGTERM or SIGINT, removing both sockets on the way out.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use argh::FromArgs;
use bureau::proxy::access_log;
use bureau::proxy::matrix::MatrixRoutes;
use bureau::proxy::payload::{self, PayloadFormat};
use bureau::proxy::service::{Rate, ServiceConfig};
use bureau::proxy::upstream::Upstreams;
use bureau::proxy::{AppState, ProxyState, Shared, admin_router, agent_router};

use crate::{Invocation, args};

/// Serve one principal's credential-injecting proxy. The payload (`{"identity"?, "credentials",
/// "grants"}`) is read from stdin first: CBOR (the launcher's) or JSON (--stdin-format json).
#[derive(FromArgs)]
#[argh(
    example = "printf '%s' \"$PAYLOAD_JSON\" | bureau-proxy --socket /run/bureau/pm.proxy.sock --admin-socket /run/bureau/pm.admin.sock --stdin-format json"
)]
struct ProxyArgs {
    /// the agent socket (mounted into the sandbox as /run/bureau/proxy.sock)
    #[argh(option)]
    socket: PathBuf,

    /// the daemon-only admin socket (mode 0600; never mounted into a sandbox)
    #[argh(option)]
    admin_socket: PathBuf,

    /// a JSON file of services to register at start: {"name": {upstream_url, …}, …}
    #[argh(option)]
    services: Option<PathBuf>,

    /// the payload's encoding on stdin: cbor (default) or json
    #[argh(option, default = "String::from(\"cbor\")")]
    stdin_format: String,

    /// a PEM file of extra CA certificates for https upstreams
    #[argh(option)]
    ca_file: Option<PathBuf>,

    /// the agent socket's mode, octal (default 600: only the principal's user)
    #[argh(option, default = "String::from(\"600\")")]
    socket_mode: String,

    /// requests per second allowed to this principal across all services (with --rate-burst)
    #[argh(option)]
    rate_per_second: Option<f64>,

    /// burst size of the per-principal rate limit
    #[argh(option)]
    rate_burst: Option<f64>,

    /// log filter: error, warn, info, debug, trace (overrides RUST_LOG)
    #[argh(option)]
    log_level: Option<String>,
}

fn fail(message: &str) -> ExitCode {
    eprintln!("bureau-proxy: {message}");
    ExitCode::FAILURE
}

pub fn run(invocation: &Invocation) -> ExitCode {
    let parsed: ProxyArgs = match args::parse(&invocation.command_name, &invocation.args) {
        Ok(parsed) => parsed,
        Err(status) => return status,
    };
    // A bad --log-level is a usage error (exit 2), like every applet's.
    if let Err(status) = args::init_logging(
        &invocation.command_name,
        parsed.log_level.as_deref(),
        "info",
    ) {
        return status;
    }
    if let Err(errno) = bureau::secret::make_process_undumpable() {
        return fail(&format!("cannot make the process undumpable: {errno}"));
    }
    let format = match parsed.stdin_format.as_str() {
        "cbor" => PayloadFormat::Cbor,
        "json" => PayloadFormat::Json,
        other => {
            return fail(&format!(
                "--stdin-format must be cbor or json, not {other:?}"
            ));
        }
    };
    let Ok(socket_mode) = u32::from_str_radix(&parsed.socket_mode, 8) else {
        return fail(&format!(
            "--socket-mode {:?} is not octal",
            parsed.socket_mode
        ));
    };
    let principal_rate = match (parsed.rate_per_second, parsed.rate_burst) {
        (None, None) => None,
        (Some(per_second), Some(burst)) if per_second > 0.0 && burst >= 1.0 => {
            Some(Rate { per_second, burst })
        }
        _ => return fail("give both --rate-per-second (> 0) and --rate-burst (>= 1)"),
    };

    let mut raw = Vec::new();
    if let Err(error) = std::io::stdin().read_to_end(&mut raw) {
        return fail(&format!("reading the payload from stdin: {error}"));
    }
    let payload = match payload::decode(&mut raw, format) {
        Ok(payload) => payload,
        Err(error) => return fail(&error.to_string()),
    };
    let state = Arc::new(ProxyState::new(payload, principal_rate));
    if let Some(path) = &parsed.services
        && let Err(message) = load_services(&state, path)
    {
        return fail(&message);
    }
    let upstreams = match Upstreams::new(parsed.ca_file.as_deref()) {
        Ok(upstreams) => upstreams,
        Err(message) => return fail(&message),
    };
    let app = AppState::new(Shared {
        proxy: state,
        upstreams,
        matrix: Arc::new(MatrixRoutes::default()),
    });
    let runtime =
        match args::current_thread_runtime_parking(&invocation.command_name, access_log::flush) {
            Ok(runtime) => runtime,
            Err(status) => return status,
        };
    let result = runtime.block_on(serve(
        app,
        &parsed.socket,
        &parsed.admin_socket,
        socket_mode,
    ));
    access_log::flush();
    for socket in [&parsed.socket, &parsed.admin_socket] {
        let _ = std::fs::remove_file(socket);
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(&message),
    }
}

fn load_services(state: &ProxyState, path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("--services {}: {error}", path.display()))?;
    let services: std::collections::BTreeMap<String, ServiceConfig> =
        serde_json::from_str(&text)
            .map_err(|error| format!("--services {}: {error}", path.display()))?;
    for (name, config) in services {
        config
            .validate(&name)
            .map_err(|error| format!("--services {}: {error}", path.display()))?;
        state.put_service(&name, config);
    }
    Ok(())
}

/// Binds `path`, replacing a stale socket file but never a live one, and sets its mode.
async fn bind(path: &Path, mode: u32) -> Result<tokio::net::UnixListener, String> {
    if path.exists() {
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return Err(format!(
                "{} is in use by a running proxy; stop it first",
                path.display()
            ));
        }
        std::fs::remove_file(path)
            .map_err(|error| format!("removing the stale socket {}: {error}", path.display()))?;
    }
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)
            .map_err(|error| format!("creating {}: {error}", parent.display()))?;
    }
    let listener = tokio::net::UnixListener::bind(path)
        .map_err(|error| format!("binding {}: {error}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|error| format!("setting the mode of {}: {error}", path.display()))?;
    Ok(listener)
}

async fn serve(app: AppState, socket: &Path, admin_socket: &Path, mode: u32) -> Result<(), String> {
    let agent_listener = bind(socket, mode).await?;
    let admin_listener = bind(admin_socket, 0o600).await?;
    let shutdown = async {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = terminate => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    tokio::spawn(app.upstreams.clone().sweep_idle());
    let agent = axum::serve(agent_listener, agent_router(app.clone()));
    let admin = axum::serve(admin_listener, admin_router(app));
    tracing::info!(socket = %socket.display(), admin_socket = %admin_socket.display(), "serving");
    let servers = async { tokio::try_join!(agent.into_future(), admin.into_future()) };
    // On SIGTERM/SIGINT the servers are dropped: open connections close, and the caller
    // removes the socket files.
    tokio::select! {
        result = servers => result.map(drop).map_err(|error| format!("serving: {error}")),
        () = shutdown => Ok(()),
    }
}
