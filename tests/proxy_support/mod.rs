// Each test crate that includes this module uses part of it.
#![allow(dead_code)]

//! Starting a real `bureau proxy` for the proxy tests, one way for all of them: a services file,
//! the JSON payload on stdin, stderr (its log) in a file — a pipe nobody reads would fill and
//! stall the proxy — and a wait until the admin socket accepts. Dropping it kills the proxy.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BUREAU: &str = env!("CARGO_BIN_EXE_bureau");

/// A running proxy.
pub struct RunningProxy {
    pub child: Child,
    /// The agent socket.
    pub socket: PathBuf,
    pub admin: PathBuf,
    /// The proxy's stderr.
    pub log: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for RunningProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RunningProxy {
    /// Starts `bureau proxy` named `name` with its files in `dir` (a fresh temporary directory
    /// when `None`), `services` as its `--services` file, `payload` on stdin and `extra`
    /// arguments (e.g. `--ca-file`, `--log-level`).
    pub fn start(
        dir: Option<&Path>,
        name: &str,
        services: &Value,
        payload: &Value,
        extra: &[&str],
    ) -> Self {
        let owned = match dir {
            Some(_) => None,
            None => Some(tempfile::tempdir().expect("tempdir")),
        };
        let dir = dir
            .map(Path::to_path_buf)
            .or_else(|| owned.as_ref().map(|owned| owned.path().to_path_buf()))
            .expect("a directory");
        let socket = dir.join(format!("{name}.proxy.sock"));
        let admin = dir.join(format!("{name}.admin.sock"));
        let services_file = dir.join(format!("{name}.services.json"));
        let log = dir.join(format!("{name}.proxy.log"));
        std::fs::write(&services_file, services.to_string()).expect("services file");
        let mut child = Command::new(BUREAU)
            .arg("proxy")
            .arg("--socket")
            .arg(&socket)
            .arg("--admin-socket")
            .arg(&admin)
            .arg("--services")
            .arg(&services_file)
            .args(["--stdin-format", "json"])
            .args(extra)
            .env_remove("RUST_LOG")
            .env_remove("JOURNAL_STREAM")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start bureau proxy");
        child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(payload.to_string().as_bytes())
            .expect("write the payload");
        let mut proxy = Self {
            child,
            socket,
            admin,
            log,
            _dir: owned,
        };
        // The proxy binds both sockets right after reading its payload.
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::os::unix::net::UnixStream::connect(&proxy.admin).is_err() {
            if let Ok(Some(status)) = proxy.child.try_wait() {
                panic!(
                    "bureau proxy exited early ({status}): {}",
                    std::fs::read_to_string(&proxy.log).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "bureau proxy never came up");
            std::thread::sleep(Duration::from_millis(10));
        }
        proxy
    }
}

/// One request over a Unix socket with `Connection: close`; the status and the JSON body
/// (`Null` when the body is not JSON).
pub fn raw_call(socket: &Path, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    use std::io::Read;
    let mut stream = std::os::unix::net::UnixStream::connect(socket).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("status");
    let json = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body)
        .and_then(|body| serde_json::from_str(body.trim()).ok())
        .unwrap_or(Value::Null);
    (status, json)
}
