//! The bridge: a TCP → Unix-socket forwarder that runs inside a sandbox, so tools that only speak
//! TCP HTTP reach the principal's proxy (`OPENAI_BASE_URL=http://127.0.0.1:8642/http/openai/v1`).
//!
//! Invariant: bytes pass through unchanged in both directions, and a half-close is carried
//! across: when one side shuts down its write half, the other side's write half is shut down and
//! the opposite direction keeps flowing until it ends too. The bridge never parses, buffers
//! whole messages of, or logs the traffic; it logs one line per connection (at debug) with the
//! peer and byte counts.
//!
//! The proxy socket is connected afresh for every accepted connection, so the bridge may start
//! before the proxy and survives the proxy restarting: while the socket is missing, each
//! connection is closed at once and a warning names the socket path.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream, UnixStream};

/// Where the bridge listens unless told otherwise: loopback only, port 8642.
pub const DEFAULT_LISTEN_ADDRESS: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8642));

/// Buffer size for each direction of a connection. Large enough that a bulk transfer costs few
/// system calls, small enough that hundreds of idle connections stay cheap.
const COPY_BUFFER_BYTES: usize = 64 * 1024;

/// How long to pause accepting when the process is out of descriptors or memory, so the accept
/// loop does not spin while existing connections finish.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Byte counts of one forwarded connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forwarded {
    /// Bytes read from the TCP client and written to the proxy.
    pub to_proxy: u64,
    /// Bytes read from the proxy and written to the TCP client.
    pub from_proxy: u64,
}

/// Accepts connections on `listener` forever, forwarding each (in its own task) to a fresh
/// connection to `proxy_socket`.
///
/// Returns only when accepting fails in a way that will not heal (the listener itself is
/// broken); per-connection failures, a missing proxy socket and running out of descriptors are
/// logged and survived.
pub async fn serve(listener: TcpListener, proxy_socket: PathBuf) -> io::Result<()> {
    let proxy = Arc::new(ProxyTarget {
        socket_path: proxy_socket,
        unreachable_reported: AtomicBool::new(false),
    });
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => match classify_accept_error(&error) {
                AcceptError::Transient => {
                    tracing::debug!("accept failed (ignored): {error}");
                    continue;
                }
                AcceptError::Exhausted => {
                    tracing::warn!(
                        "accept failed: {error}; pausing {} ms before accepting again",
                        ACCEPT_BACKOFF.as_millis()
                    );
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
                AcceptError::Fatal => return Err(error),
            },
        };
        let proxy = Arc::clone(&proxy);
        tokio::spawn(async move { proxy.handle(tcp, peer).await });
    }
}

/// Forwards bytes between `tcp` and `unix` in both directions until both directions have ended,
/// carrying a half-close across (EOF on one side shuts down the other side's write half).
///
/// Errors are those of either socket (typically a reset); the byte counts of a failed
/// connection are not reported.
pub async fn forward(mut tcp: TcpStream, mut unix: UnixStream) -> io::Result<Forwarded> {
    // `copy_bidirectional` shuts down the opposite writer on EOF and keeps copying the other
    // direction until it ends too: exactly the half-close semantics HTTP clients rely on.
    let (to_proxy, from_proxy) = tokio::io::copy_bidirectional_with_sizes(
        &mut tcp,
        &mut unix,
        COPY_BUFFER_BYTES,
        COPY_BUFFER_BYTES,
    )
    .await?;
    Ok(Forwarded {
        to_proxy,
        from_proxy,
    })
}

/// The proxy socket and whether its absence has already been reported (so a client retrying in
/// a loop gets one warning per outage, not one per attempt).
struct ProxyTarget {
    socket_path: PathBuf,
    unreachable_reported: AtomicBool,
}

impl ProxyTarget {
    async fn handle(&self, tcp: TcpStream, peer: SocketAddr) {
        let started = Instant::now();
        // Streaming responses (SSE) must not wait for Nagle; failure only costs latency.
        drop(tcp.set_nodelay(true));
        let unix = match UnixStream::connect(&self.socket_path).await {
            Ok(unix) => {
                if self.unreachable_reported.swap(false, Ordering::Relaxed) {
                    tracing::info!(
                        "proxy socket {} is reachable again",
                        self.socket_path.display()
                    );
                }
                unix
            }
            Err(error) => {
                let message = unreachable_message(&self.socket_path, &error);
                if self.unreachable_reported.swap(true, Ordering::Relaxed) {
                    tracing::debug!("connection from {peer} closed: {message}");
                } else {
                    tracing::warn!("connection from {peer} closed: {message}");
                }
                return;
            }
        };
        match forward(tcp, unix).await {
            Ok(forwarded) => tracing::debug!(
                "connection from {peer} done after {} ms: {} bytes to the proxy, {} bytes back",
                started.elapsed().as_millis(),
                forwarded.to_proxy,
                forwarded.from_proxy
            ),
            Err(error) => tracing::debug!(
                "connection from {peer} ended with an error after {} ms: {error}",
                started.elapsed().as_millis()
            ),
        }
    }
}

/// Says why the proxy socket could not be reached and what usually causes it.
fn unreachable_message(socket_path: &Path, error: &io::Error) -> String {
    let cause = match error.kind() {
        io::ErrorKind::NotFound => {
            "it does not exist: the proxy is not running or its socket is not mounted here"
        }
        io::ErrorKind::ConnectionRefused => "nothing is listening: the proxy is not running",
        io::ErrorKind::PermissionDenied => "permission denied: check the socket's owner and mode",
        _ => "check that the proxy is running and its socket is mounted here",
    };
    format!(
        "cannot connect to proxy socket {}: {error}; {cause}",
        socket_path.display()
    )
}

enum AcceptError {
    /// The one pending connection failed (aborted, reset, interrupted): accept the next.
    Transient,
    /// Out of descriptors or memory: wait for connections to finish, then accept again.
    Exhausted,
    /// The listener itself is unusable.
    Fatal,
}

fn classify_accept_error(error: &io::Error) -> AcceptError {
    match error.kind() {
        io::ErrorKind::ConnectionAborted
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::Interrupted
        | io::ErrorKind::WouldBlock => return AcceptError::Transient,
        _ => {}
    }
    match error.raw_os_error() {
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => AcceptError::Exhausted,
        // accept(2): errors of the new connection that Linux passes through; retry.
        Some(libc::EPROTO | libc::EPERM | libc::ENETDOWN | libc::ENOPROTOOPT | libc::EHOSTDOWN)
        | Some(libc::ENONET | libc::EHOSTUNREACH | libc::EOPNOTSUPP | libc::ENETUNREACH) => {
            AcceptError::Transient
        }
        _ => AcceptError::Fatal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_listen_address_is_loopback_8642() {
        assert_eq!(DEFAULT_LISTEN_ADDRESS.to_string(), "127.0.0.1:8642");
    }

    #[test]
    fn missing_socket_message_names_the_path_and_the_cause() {
        let error = io::Error::from(io::ErrorKind::NotFound);
        let message = unreachable_message(Path::new("/run/bureau/proxy.sock"), &error);
        assert!(message.contains("/run/bureau/proxy.sock"), "{message}");
        assert!(message.contains("not running"), "{message}");
    }

    #[test]
    fn descriptor_exhaustion_backs_off_and_a_broken_listener_is_fatal() {
        let exhausted = io::Error::from_raw_os_error(libc::EMFILE);
        assert!(matches!(
            classify_accept_error(&exhausted),
            AcceptError::Exhausted
        ));
        let aborted = io::Error::from_raw_os_error(libc::ECONNABORTED);
        assert!(matches!(
            classify_accept_error(&aborted),
            AcceptError::Transient
        ));
        let broken = io::Error::from_raw_os_error(libc::EBADF);
        assert!(matches!(classify_accept_error(&broken), AcceptError::Fatal));
    }
}
