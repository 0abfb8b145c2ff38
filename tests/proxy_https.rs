//! An https upstream signed by a private CA: trusted only through `bureau-proxy --ca-file`.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

const BUREAU: &str = env!("CARGO_BIN_EXE_bureau");

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A CA and a `localhost` certificate it signed, made with the openssl command.
fn make_certificates(dir: &Path) {
    let run = |args: &[&str]| {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl");
        assert!(status.success(), "openssl {args:?}");
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=bureau test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=DNS:localhost\n").expect("ext");
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "1",
        "-extfile",
        "ext.cnf",
    ]);
}

const SERVER: &str = r#"
import http.server, json, ssl, sys
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"key": self.headers.get("X-Key"), "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(sys.argv[1], sys.argv[2])
server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

fn get(socket: &Path, path: &str) -> (u16, Value) {
    let mut stream = std::os::unix::net::UnixStream::connect(socket).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or("");
    (
        status,
        serde_json::from_str(body.trim()).unwrap_or(Value::Null),
    )
}

fn start_proxy(
    dir: &Path,
    name: &str,
    services: &Value,
    ca_file: Option<&Path>,
) -> (Killed, std::path::PathBuf) {
    let socket = dir.join(format!("{name}.proxy.sock"));
    let admin = dir.join(format!("{name}.admin.sock"));
    let services_file = dir.join(format!("{name}.services.json"));
    std::fs::write(&services_file, services.to_string()).expect("services");
    let mut command = Command::new(BUREAU);
    command
        .arg("proxy")
        .arg("--socket")
        .arg(&socket)
        .arg("--admin-socket")
        .arg(&admin)
        .arg("--services")
        .arg(&services_file)
        .args(["--stdin-format", "json"]);
    if let Some(ca_file) = ca_file {
        command.arg("--ca-file").arg(ca_file);
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("proxy");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(
            json!({"credentials": {"KEY": "tls-secret"}})
                .to_string()
                .as_bytes(),
        )
        .expect("payload");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::os::unix::net::UnixStream::connect(&admin).is_err() {
        assert!(std::time::Instant::now() < deadline, "proxy never came up");
        std::thread::sleep(Duration::from_millis(10));
    }
    (Killed(child), socket)
}

#[test]
fn https_upstream_with_a_private_ca_is_trusted_only_through_ca_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    make_certificates(dir.path());
    let mut server = Command::new("python3")
        .args(["-c", SERVER])
        .arg(dir.path().join("server.pem"))
        .arg(dir.path().join("server.key"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("https server");
    let mut port = String::new();
    BufReader::new(server.stdout.take().expect("stdout"))
        .read_line(&mut port)
        .expect("port");
    let _server = Killed(server);
    let services = json!({"tls": {"upstream_url": format!("https://localhost:{}", port.trim()),
                                  "inject_headers": {"X-Key": "KEY"}}});

    let (_trusting, socket) = start_proxy(
        dir.path(),
        "trusting",
        &services,
        Some(&dir.path().join("ca.pem")),
    );
    let (status, body) = get(&socket, "/http/tls/hello?x=1");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["key"], "tls-secret");
    assert_eq!(body["path"], "/hello?x=1");

    let (_plain, socket) = start_proxy(dir.path(), "plain", &services, None);
    let (status, body) = get(&socket, "/http/tls/hello");
    assert_eq!(status, 502, "an unknown CA must not be trusted: {body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(error.contains("service tls is unreachable"), "{error}");
    assert!(!error.contains("tls-secret"));
}
