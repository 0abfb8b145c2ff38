//! `bureau-bridge`: inside a sandbox, forward TCP connections (by default on 127.0.0.1:8642) to
//! the proxy's Unix socket, for tools that only speak TCP HTTP.
//!
//! A current-thread runtime: the work is I/O-bound forwarding, one task per connection.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use argh::FromArgs;
use bureau::bridge::{self, DEFAULT_LISTEN_ADDRESS};
use bureau::proxy_call::proxy_socket_path;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

use crate::{Invocation, args};

/// Inside a sandbox: forward TCP connections to the proxy's Unix socket, byte for byte (half-close
/// included), so tools that only speak TCP HTTP reach the proxy.
#[derive(FromArgs)]
#[argh(
    example = "bureau-bridge &\nOPENAI_BASE_URL=http://127.0.0.1:8642/http/openai/v1 python3 agent.py",
    note = "Each connection is forwarded to a fresh connection to the proxy socket; while the \
socket is missing, connections are closed at once and a warning names the socket. Stops cleanly \
on SIGTERM or SIGINT. Exit status: 0 when stopped by a signal, 1 if the address cannot be bound, \
2 for a usage error."
)]
struct BridgeArgs {
    /// address to listen on (default: 127.0.0.1:8642; anything that can reach it uses this
    /// principal's proxy)
    #[argh(option, default = "DEFAULT_LISTEN_ADDRESS")]
    listen: SocketAddr,

    /// the proxy's Unix socket (default: $BUREAU_PROXY_SOCKET, else /run/bureau/proxy.sock)
    #[argh(option)]
    proxy: Option<PathBuf>,

    /// log filter: error, warn, info, debug, trace (overrides RUST_LOG; default info)
    #[argh(option)]
    log_level: Option<String>,
}

pub fn run(invocation: &Invocation) -> ExitCode {
    let parsed: BridgeArgs = match args::parse(&invocation.command_name, &invocation.args) {
        Ok(parsed) => parsed,
        Err(status) => return status,
    };
    let name = &invocation.command_name;
    if let Err(status) = args::init_logging(name, parsed.log_level.as_deref(), "info") {
        return status;
    }
    let proxy_socket = proxy_socket_path(parsed.proxy);
    let runtime = match args::current_thread_runtime(name) {
        Ok(runtime) => runtime,
        Err(status) => return status,
    };
    runtime.block_on(serve_until_signalled(name, parsed.listen, proxy_socket))
}

async fn serve_until_signalled(name: &str, listen: SocketAddr, proxy_socket: PathBuf) -> ExitCode {
    let (mut terminate, mut interrupt) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(terminate), Ok(interrupt)) => (terminate, interrupt),
        (Err(error), _) | (_, Err(error)) => {
            eprintln!("{name}: cannot handle SIGTERM/SIGINT: {error}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match TcpListener::bind(listen).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!(
                "{name}: cannot listen on {listen}: {error}\nHint: {}",
                bind_hint(&error)
            );
            return ExitCode::FAILURE;
        }
    };
    let bound = listener.local_addr().unwrap_or(listen);
    if !bound.ip().is_loopback() {
        tracing::warn!(
            "listening on non-loopback address {bound}: anything that can reach it can use this \
             principal's proxy"
        );
    }
    tracing::info!(
        "listening on {bound}, forwarding to {}",
        proxy_socket.display()
    );
    tokio::select! {
        result = bridge::serve(listener, proxy_socket) => match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("{name}: accepting connections on {bound} failed: {error}");
                ExitCode::FAILURE
            }
        },
        _ = terminate.recv() => {
            tracing::info!("stopping on SIGTERM");
            ExitCode::SUCCESS
        }
        _ = interrupt.recv() => {
            tracing::info!("stopping on SIGINT");
            ExitCode::SUCCESS
        }
    }
}

fn bind_hint(error: &std::io::Error) -> &'static str {
    match error.kind() {
        std::io::ErrorKind::AddrInUse => {
            "another process (perhaps another bridge) holds this address; stop it or pass \
             --listen with a free address"
        }
        std::io::ErrorKind::AddrNotAvailable => {
            "this address is not configured on any interface here; pass --listen with a local \
             address such as 127.0.0.1:8642"
        }
        std::io::ErrorKind::PermissionDenied => {
            "binding is not permitted (a port below 1024, or a landlock rule without this port \
             in tcp_bind)"
        }
        _ => "pass --listen with another address",
    }
}
