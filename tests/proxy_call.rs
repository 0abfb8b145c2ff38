//! `bureau-proxy-call` as a script meets it: the real binary against a small HTTP server on a Unix
//! socket standing in for the proxy (plain threads and blocking I/O, so nothing here shares a
//! runtime with the child it waits for).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

const BINARY: &str = env!("CARGO_BIN_EXE_bureau");

/// One request as the server received it.
struct Request {
    method: String,
    path: String,
    /// Header names lowercased.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| header == name)
            .map(|(_, value)| value.as_str())
    }
}

type Handler = dyn Fn(Request, &mut UnixStream) + Send + Sync;

/// A Unix-socket HTTP server in a temporary directory; each connection serves one request with
/// `handler`, which writes the raw response.
struct Server {
    _dir: tempfile::TempDir,
    socket: PathBuf,
}

impl Server {
    fn start(handler: impl Fn(Request, &mut UnixStream) + Send + Sync + 'static) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("proxy.sock");
        let listener = UnixListener::bind(&socket).expect("bind");
        let handler: Arc<Handler> = Arc::new(handler);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let handler = Arc::clone(&handler);
                std::thread::spawn(move || {
                    if let Some(request) = read_request(&mut stream) {
                        handler(request, &mut stream);
                    }
                });
            }
        });
        Self { _dir: dir, socket }
    }

    fn socket(&self) -> &str {
        self.socket.to_str().expect("utf-8 path")
    }
}

fn read_request(stream: &mut UnixStream) -> Option<Request> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    let mut parts = request_line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let length = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .map_or(0, |(_, value)| value.parse().unwrap_or(0));
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

fn respond(stream: &mut UnixStream, status: &str, content_type: &str, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: \
         close\r\n\r\n",
        body.len()
    );
    drop(stream.write_all(head.as_bytes()));
    drop(stream.write_all(body));
}

fn proxy_call(args: &[&str]) -> Command {
    let mut command = Command::new(BINARY);
    command
        .arg("proxy-call")
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("BUREAU_PROXY_SOCKET")
        .stdin(Stdio::null());
    command
}

fn run(command: &mut Command) -> Output {
    command.output().expect("run bureau proxy-call")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn get_prints_the_body_and_exits_0() {
    let server = Server::start(|request, stream| {
        let body = format!(
            "{} {} host={:?}",
            request.method,
            request.path,
            request.header("host")
        );
        respond(stream, "200 OK", "text/plain", body.as_bytes());
    });
    let output = run(&mut proxy_call(&[
        "GET",
        "/v1/identity?verbose=1",
        "--socket",
        server.socket(),
    ]));
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(
        text(&output.stdout),
        "GET /v1/identity?verbose=1 host=Some(\"localhost\")"
    );
    assert_eq!(text(&output.stderr), "");
}

#[test]
fn socket_comes_from_bureau_proxy_socket_when_not_given() {
    let server = Server::start(|_, stream| respond(stream, "200 OK", "text/plain", b"via env"));
    let output = run(proxy_call(&["get", "/health"]).env("BUREAU_PROXY_SOCKET", server.socket()));
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(text(&output.stdout), "via env");
}

#[test]
fn post_data_from_stdin_is_sent_as_the_body() {
    let server = Server::start(|request, stream| {
        assert_eq!(request.method, "POST");
        assert_eq!(request.header("content-type"), Some("application/json"));
        respond(stream, "200 OK", "application/octet-stream", &request.body);
    });
    let stdin_bytes: Vec<u8> = [b"{\"line\": 1}\n".as_slice(), &[0, 255, 10], b"tail"].concat();
    let mut child = proxy_call(&["POST", "/echo", "--data", "-", "--socket", server.socket()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start bureau proxy-call");
    let mut stdin = child.stdin.take().expect("stdin is piped");
    stdin.write_all(&stdin_bytes).expect("write stdin");
    drop(stdin);
    let output = child.wait_with_output().expect("wait");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(output.stdout, stdin_bytes);
}

#[test]
fn literal_data_and_headers_reach_the_proxy() {
    let server = Server::start(|request, stream| {
        let body = format!(
            "type={:?} trace={:?} body={}",
            request.header("content-type"),
            request.header("x-trace"),
            text(&request.body)
        );
        respond(stream, "201 Created", "text/plain", body.as_bytes());
    });
    let output = run(&mut proxy_call(&[
        "PUT",
        "/v1/thing",
        "--data",
        "plain words",
        "--header",
        "Content-Type: text/plain",
        "--header",
        "X-Trace: t-1",
        "--socket",
        server.socket(),
    ]));
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(
        text(&output.stdout),
        "type=Some(\"text/plain\") trace=Some(\"t-1\") body=plain words"
    );
}

#[test]
fn forbidden_json_error_exits_1_with_the_error_on_stderr() {
    let server = Server::start(|_, stream| {
        respond(
            stream,
            "403 Forbidden",
            "application/json",
            br#"{"error": "no grant for matrix/join", "errcode": "M_FORBIDDEN"}"#,
        );
    });
    let output = run(&mut proxy_call(&[
        "POST",
        "/v1/matrix/join",
        "--data",
        "{}",
        "--socket",
        server.socket(),
    ]));
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        text(&output.stdout),
        "",
        "a failure writes nothing to stdout"
    );
    assert_eq!(
        text(&output.stderr).trim_end(),
        "bureau-proxy-call: POST /v1/matrix/join: 403 Forbidden: no grant for matrix/join \
         (M_FORBIDDEN)"
    );
}

#[test]
fn streamed_response_arrives_incrementally() {
    let (release_sender, release) = mpsc::channel::<()>();
    let release = Mutex::new(release);
    let server = Server::start(move |_, stream| {
        let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: \
                    chunked\r\n\r\n";
        let first = "data: first\n\n";
        drop(stream.write_all(format!("{head}{:x}\r\n{first}\r\n", first.len()).as_bytes()));
        drop(stream.flush());
        // Hold the rest until the test has seen the first event on the child's stdout (or give
        // up after a while, so a broken client fails the assertion instead of hanging).
        let release = release.lock().expect("lock");
        let _ = release.recv_timeout(Duration::from_secs(20));
        let second = "data: second\n\n";
        drop(stream.write_all(format!("{:x}\r\n{second}\r\n0\r\n\r\n", second.len()).as_bytes()));
    });
    let mut child = proxy_call(&["GET", "/http/llm/v1/stream", "--socket", server.socket()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start bureau proxy-call");
    let mut stdout = child.stdout.take().expect("stdout is piped");

    let mut seen = Vec::new();
    let mut buffer = [0u8; 256];
    while !text(&seen).contains("data: first\n\n") {
        let count = stdout.read(&mut buffer).expect("read stdout");
        assert!(count > 0, "stdout ended early: {:?}", text(&seen));
        seen.extend_from_slice(&buffer[..count]);
    }
    assert!(
        !text(&seen).contains("second"),
        "the first event only arrived with the rest: {:?}",
        text(&seen)
    );
    release_sender.send(()).expect("release the rest");
    stdout.read_to_end(&mut seen).expect("read the rest");
    let output = child.wait_with_output().expect("wait");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(text(&seen), "data: first\n\ndata: second\n\n");
}

#[test]
fn missing_socket_exits_1_with_the_hint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("absent.sock");
    let socket = socket.to_str().expect("utf-8 path");
    let output = run(&mut proxy_call(&["GET", "/health", "--socket", socket]));
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(socket), "{stderr}");
    assert!(stderr.contains("the proxy is not running"), "{stderr}");
    assert!(stderr.contains("not mounted"), "{stderr}");
}

#[test]
fn usage_errors_exit_2() {
    let cases: [&[&str]; 5] = [
        &[],
        &["GET"],
        &["GET", "v1/identity"],
        &["GET", "/x", "--header", "no colon here"],
        &["POST", "/x", "--data", "@/nonexistent/body.json"],
    ];
    for args in cases {
        let output = run(proxy_call(args)
            .arg("--socket")
            .arg(Path::new("/nonexistent.sock")));
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&output.stderr)
        );
        assert!(!output.stderr.is_empty(), "{args:?} says what is wrong");
    }
    let output = run(&mut proxy_call(&["GET", "v1/identity"]));
    assert!(
        text(&output.stderr).contains("must start with \"/\""),
        "{}",
        text(&output.stderr)
    );
}
