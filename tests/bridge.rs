//! `bureau-bridge` against real sockets: a TCP client on one side, a Unix-socket server standing in
//! for the proxy on the other. The library's `serve` runs in-process; the last tests run the
//! applet binary.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use bureau::bridge;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

const BINARY: &str = env!("CARGO_BIN_EXE_bureau");

/// Every test finishes well within this; a hang fails instead of blocking the suite.
const TEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A temporary directory holding the proxy socket's path (the socket itself is created by the
/// test when it wants a proxy there).
struct SocketDir {
    dir: tempfile::TempDir,
}

impl SocketDir {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn proxy_socket(&self) -> PathBuf {
        self.dir.path().join("proxy.sock")
    }
}

/// Starts the bridge in-process on a free loopback port, forwarding to `proxy_socket`.
async fn start_bridge(proxy_socket: &Path) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("local address");
    let proxy_socket = proxy_socket.to_path_buf();
    tokio::spawn(async move { bridge::serve(listener, proxy_socket).await });
    address
}

/// A Unix-socket echo server: each connection gets back what it sends; the write half is shut
/// down when the read half reaches EOF.
fn start_echo_server(socket: &Path) {
    let listener = UnixListener::bind(socket).expect("bind echo socket");
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.expect("accept");
            tokio::spawn(async move {
                let (mut reader, mut writer) = stream.into_split();
                tokio::io::copy(&mut reader, &mut writer)
                    .await
                    .expect("echo");
                writer.shutdown().await.expect("shutdown echo writer");
            });
        }
    });
}

/// A minimal HTTP/1.1 server on a Unix socket (keep-alive, `Content-Length` bodies): each
/// response is JSON naming the request's method, path and body length.
fn start_http_server(socket: &Path) {
    let listener = UnixListener::bind(socket).expect("bind http socket");
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.expect("accept");
            tokio::spawn(serve_http_connection(stream));
        }
    });
}

async fn serve_http_connection(stream: UnixStream) {
    let (reader, mut writer) = stream.into_split();
    let mut reader = tokio::io::BufReader::new(reader);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).await.expect("read") == 0 {
            return;
        }
        let mut content_length = 0usize;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).await.expect("read header");
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                content_length = value.trim().parse().expect("content-length");
            }
        }
        let mut body = vec![0; content_length];
        reader.read_exact(&mut body).await.expect("read body");
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or_default();
        let path = parts.next().unwrap_or_default();
        let reply = format!(
            r#"{{"method":"{method}","path":"{path}","body_bytes":{}}}"#,
            body.len()
        );
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{reply}",
            reply.len()
        );
        writer
            .write_all(response.as_bytes())
            .await
            .expect("write response");
    }
}

/// `count` pseudo-random bytes (xorshift), so a transfer that reorders or drops bytes is caught.
fn pseudo_random_bytes(count: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut bytes = Vec::with_capacity(count + 8);
    while bytes.len() < count {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(count);
    bytes
}

/// Sends `payload` through the bridge to the echo server and returns what came back.
async fn echo_through(bridge: SocketAddr, payload: Vec<u8>) -> Vec<u8> {
    let stream = TcpStream::connect(bridge).await.expect("connect to bridge");
    let (mut reader, mut writer) = stream.into_split();
    let sender = tokio::spawn(async move {
        writer.write_all(&payload).await.expect("send");
        writer.shutdown().await.expect("shutdown write");
    });
    let mut received = Vec::new();
    reader.read_to_end(&mut received).await.expect("receive");
    sender.await.expect("sender task");
    received
}

#[tokio::test]
async fn http_requests_through_the_bridge_reach_the_unix_socket_server() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let dir = SocketDir::new();
        start_http_server(&dir.proxy_socket());
        let bridge = start_bridge(&dir.proxy_socket()).await;

        // A real HTTP client, as an SDK would use it: keep-alive across requests.
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<bytes::Bytes>>();
        for (method, path, body) in [
            ("GET", "/http/openai/v1/models", ""),
            (
                "POST",
                "/http/openai/v1/chat/completions",
                r#"{"model":"m"}"#,
            ),
            ("GET", "/v1/identity", ""),
        ] {
            let request = http::Request::builder()
                .method(method)
                .uri(format!("http://{bridge}{path}"))
                .body(Full::new(bytes::Bytes::from(body)))
                .expect("request");
            let response = client.request(request).await.expect("response");
            assert_eq!(response.status(), 200);
            let reply = response
                .into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes();
            let expected = format!(
                r#"{{"method":"{method}","path":"{path}","body_bytes":{}}}"#,
                body.len()
            );
            assert_eq!(std::str::from_utf8(&reply).expect("utf-8"), expected);
        }
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn half_close_is_carried_across_in_both_directions() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let dir = SocketDir::new();
        let listener = UnixListener::bind(dir.proxy_socket()).expect("bind");
        let bridge = start_bridge(&dir.proxy_socket()).await;

        // Client → proxy: the client shuts down its write half; the proxy side sees EOF and
        // still replies, and the reply reaches the client.
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.expect("accept");
            let mut request = Vec::new();
            stream.read_to_end(&mut request).await.expect("read to EOF");
            let reply = [b"seen EOF after: ".as_slice(), &request].concat();
            stream.write_all(&reply).await.expect("reply after EOF");
            stream.shutdown().await.expect("shutdown");
            listener
        });
        let mut client = TcpStream::connect(bridge).await.expect("connect");
        client.write_all(b"the whole request").await.expect("send");
        client.shutdown().await.expect("shutdown client write");
        let mut reply = Vec::new();
        client.read_to_end(&mut reply).await.expect("read reply");
        assert_eq!(reply, b"seen EOF after: the whole request");
        let listener = server.await.expect("server task");

        // Proxy → client: the proxy side shuts down its write half first; the client sees EOF
        // and can still send, and that reaches the proxy side.
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.expect("accept");
            stream.write_all(b"greeting").await.expect("greet");
            stream.shutdown().await.expect("shutdown proxy write");
            let mut late = Vec::new();
            stream
                .read_to_end(&mut late)
                .await
                .expect("read after shutdown");
            late
        });
        let mut client = TcpStream::connect(bridge).await.expect("connect");
        let mut greeting = Vec::new();
        client
            .read_to_end(&mut greeting)
            .await
            .expect("read greeting");
        assert_eq!(greeting, b"greeting");
        client
            .write_all(b"sent after EOF")
            .await
            .expect("send late");
        client.shutdown().await.expect("shutdown client write");
        assert_eq!(server.await.expect("server task"), b"sent after EOF");
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_connections_all_succeed() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let dir = SocketDir::new();
        start_echo_server(&dir.proxy_socket());
        let bridge = start_bridge(&dir.proxy_socket()).await;

        let mut clients = Vec::new();
        for index in 0..50u64 {
            clients.push(tokio::spawn(async move {
                let payload = pseudo_random_bytes(64 * 1024, index);
                let received = echo_through(bridge, payload.clone()).await;
                assert!(
                    received == payload,
                    "connection {index} got other bytes back"
                );
            }));
        }
        for client in clients {
            client.await.expect("client task");
        }
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_megabytes_round_trip_intact() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let dir = SocketDir::new();
        start_echo_server(&dir.proxy_socket());
        let bridge = start_bridge(&dir.proxy_socket()).await;

        let payload = pseudo_random_bytes(20 * 1024 * 1024, 42);
        let received = echo_through(bridge, payload.clone()).await;
        assert_eq!(received.len(), payload.len());
        assert!(received == payload, "the 20 MB came back altered");
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn missing_proxy_socket_closes_the_connection_and_the_bridge_keeps_serving() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let dir = SocketDir::new();
        let bridge = start_bridge(&dir.proxy_socket()).await;

        for _ in 0..2 {
            let mut client = TcpStream::connect(bridge).await.expect("connect");
            let mut buffer = [0u8; 16];
            match client.read(&mut buffer).await {
                Ok(0) => {}
                Ok(count) => panic!("expected the connection closed, got {count} bytes"),
                Err(error) => assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset),
            }
        }

        // The proxy appears: the same bridge now forwards.
        start_echo_server(&dir.proxy_socket());
        assert_eq!(echo_through(bridge, b"hello".to_vec()).await, b"hello");
    })
    .await
    .expect("test timed out");
}

/// The applet as started from a shell, its stderr lines delivered to a channel.
struct RunningBridge {
    child: Child,
    stderr_lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl RunningBridge {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(BINARY)
            .arg("bridge")
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("JOURNAL_STREAM")
            .env_remove("BUREAU_PROXY_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start bureau bridge");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (sender, stderr_lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            stderr_lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a stderr line containing `needle` and returns it.
    fn wait_for_line(&mut self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.stderr_lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("no stderr line with {needle:?}; saw: {:#?}", self.seen),
            }
        }
    }

    /// The address from the `listening on ADDRESS, forwarding to …` line.
    fn listening_address(&mut self) -> SocketAddr {
        let line = self.wait_for_line("listening on ");
        let (_, rest) = line.split_once("listening on ").expect("marker");
        let (address, _) = rest.split_once(',').expect("address, then the socket");
        address.parse().expect("a socket address")
    }
}

impl Drop for RunningBridge {
    fn drop(&mut self) {
        drop(self.child.kill());
        drop(self.child.wait());
    }
}

#[tokio::test]
async fn applet_serves_reports_a_missing_socket_and_exits_on_sigterm() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let dir = SocketDir::new();
        let socket = dir.proxy_socket();
        let socket_text = socket.to_str().expect("utf-8 path");
        let mut running = RunningBridge::start(&[
            "--listen",
            "127.0.0.1:0",
            "--proxy",
            socket_text,
            "--log-level",
            "debug",
        ]);
        let bridge = running.listening_address();

        // No proxy yet: the connection is closed and a log line names the socket.
        let mut client = TcpStream::connect(bridge).await.expect("connect");
        let mut buffer = [0u8; 16];
        let closed = client.read(&mut buffer).await;
        assert!(matches!(closed, Ok(0)) || closed.is_err(), "{closed:?}");
        let warning = running.wait_for_line("cannot connect to proxy socket");
        assert!(warning.contains(socket_text), "{warning}");
        assert!(warning.contains("not running"), "{warning}");

        // The proxy appears: the same bridge forwards, and logs one line for the connection.
        start_echo_server(&socket);
        assert_eq!(echo_through(bridge, b"ping".to_vec()).await, b"ping");
        let done = running.wait_for_line("bytes to the proxy");
        assert!(
            done.contains("4 bytes to the proxy, 4 bytes back"),
            "{done}"
        );
        assert!(!done.contains("ping"), "payloads are never logged: {done}");

        let pid =
            nix::unistd::Pid::from_raw(i32::try_from(running.child.id()).expect("pid fits in i32"));
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("send SIGTERM");
        let status = running.child.wait().expect("wait for the bridge");
        assert_eq!(status.code(), Some(0), "exit after SIGTERM: {status:?}");
    })
    .await
    .expect("test timed out");
}

#[test]
fn applet_that_cannot_bind_exits_1_naming_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = taken.local_addr().expect("address").to_string();
    let output = Command::new(BINARY)
        .args([
            "bridge",
            "--listen",
            &address,
            "--proxy",
            "/nonexistent.sock",
        ])
        .env_remove("RUST_LOG")
        .output()
        .expect("run bureau bridge");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {address}")),
        "{stderr}"
    );
    assert!(stderr.contains("Hint:"), "{stderr}");
}

#[test]
fn applet_refuses_a_malformed_address_as_a_usage_error() {
    let output = Command::new(BINARY)
        .args(["bridge", "--listen", "localhost"])
        .env_remove("RUST_LOG")
        .output()
        .expect("run bureau bridge");
    assert_eq!(output.status.code(), Some(2));
}
