//! An https upstream signed by a private CA: trusted only through `bureau-proxy --ca-file`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

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

mod proxy_support;
use proxy_support::{RunningProxy, raw_call};

fn start_proxy(dir: &Path, name: &str, services: &Value, ca_file: Option<&Path>) -> RunningProxy {
    let payload = json!({"credentials": {"KEY": "tls-secret"}});
    let ca_file = ca_file.map(|path| path.to_str().expect("utf-8 path").to_owned());
    let extra: Vec<&str> = match &ca_file {
        Some(path) => vec!["--ca-file", path],
        None => Vec::new(),
    };
    RunningProxy::start(Some(dir), name, services, &payload, &extra)
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

    let trusting = start_proxy(
        dir.path(),
        "trusting",
        &services,
        Some(&dir.path().join("ca.pem")),
    );
    let (status, body) = raw_call(&trusting.socket, "GET", "/http/tls/hello?x=1", None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["key"], "tls-secret");
    assert_eq!(body["path"], "/hello?x=1");

    let plain = start_proxy(dir.path(), "plain", &services, None);
    let (status, body) = raw_call(&plain.socket, "GET", "/http/tls/hello", None);
    assert_eq!(status, 502, "an unknown CA must not be trusted: {body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(error.contains("service tls is unreachable"), "{error}");
    assert!(!error.contains("tls-secret"));
}
