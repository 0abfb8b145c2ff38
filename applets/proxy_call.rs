//! `bureau-proxy-call`: inside a sandbox, one HTTP request to the proxy over its Unix socket,
//! the response body streamed to stdout. For scripts without curl.
//!
//! A current-thread runtime: one connection, one request.

use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;

use argh::FromArgs;
use bureau::proxy_call::{self, ProxyRequest, proxy_socket_path};

use crate::{Invocation, args};

/// Inside a sandbox: send one HTTP request to the proxy over its Unix socket and stream the
/// response body to stdout as it arrives (server-sent events included).
#[derive(FromArgs)]
#[argh(
    example = "bureau-proxy-call GET /v1/identity",
    example = "bureau-proxy-call POST /v1/matrix/message --data @message.json",
    example = "echo '{{\"model\": \"m\"}}' | bureau-proxy-call POST /http/openai/v1/chat/completions --data -",
    note = "A request body is sent as application/json unless --header sets a Content-Type. \
Exit status: 0 for a 2xx response (its body on stdout); 1 for any other status (nothing on \
stdout; the status and the body's \"error\" on stderr) or when the proxy cannot be reached; 2 for \
a usage error."
)]
struct ProxyCallArgs {
    /// the HTTP method: GET, POST, PUT, DELETE, ... (case-insensitive)
    #[argh(positional)]
    method: String,

    /// the request path on the proxy, starting with / (e.g. /v1/identity)
    #[argh(positional)]
    path: String,

    /// the request body: @FILE, - for stdin, or the literal STRING
    #[argh(option)]
    data: Option<String>,

    /// a request header 'Name: value' (repeatable)
    #[argh(option)]
    header: Vec<String>,

    /// the proxy's Unix socket (default: $BUREAU_PROXY_SOCKET, else /run/bureau/proxy.sock)
    #[argh(option)]
    socket: Option<PathBuf>,

    /// log filter: error, warn, info, debug, trace (overrides RUST_LOG)
    #[argh(option)]
    log_level: Option<String>,
}

pub fn run(invocation: &Invocation) -> ExitCode {
    let parsed: ProxyCallArgs = match args::parse(&invocation.command_name, &invocation.args) {
        Ok(parsed) => parsed,
        Err(status) => return status,
    };
    let name = &invocation.command_name;
    if let Err(status) = args::init_logging(name, parsed.log_level.as_deref(), "warn") {
        return status;
    }
    let request = match build_request(&parsed) {
        Ok(request) => request,
        Err(error) => {
            eprintln!("{name}: {error}\nRun `{name} --help` for the options.");
            return ExitCode::from(2);
        }
    };
    let socket = proxy_socket_path(parsed.socket);
    let runtime = match args::current_thread_runtime(name) {
        Ok(runtime) => runtime,
        Err(status) => return status,
    };
    let method = request.method().clone();
    let path = request.path().to_owned();
    // stdout as an async writer (tokio's `io-std` is not enabled): a duplicate of fd 1 whose
    // writes run on the blocking pool, so a slow reader slows the download, not the runtime.
    let mut stdout = match std::io::stdout().as_fd().try_clone_to_owned() {
        Ok(fd) => tokio::fs::File::from_std(std::fs::File::from(fd)),
        Err(error) => {
            eprintln!("{name}: cannot use stdout: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(proxy_call::call(&socket, request, &mut stdout));
    match result {
        Ok(outcome) if outcome.is_success() => ExitCode::SUCCESS,
        Ok(outcome) => {
            eprintln!("{}", outcome.failure_line(name, &method, &path));
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("{name}: {method} {path}: {error}");
            ExitCode::FAILURE
        }
    }
}

fn build_request(parsed: &ProxyCallArgs) -> Result<ProxyRequest, proxy_call::UsageError> {
    let mut request = ProxyRequest::new(&parsed.method, &parsed.path)?;
    for line in &parsed.header {
        request.add_header(line)?;
    }
    if let Some(data) = &parsed.data {
        request.set_body(proxy_call::read_data(data, &mut std::io::stdin().lock())?);
    }
    Ok(request)
}
