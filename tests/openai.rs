//! A real client nobody here wrote: the official `openai` Python SDK (from PyPI, pinned) talks
//! to the real `bureau-bridge`, which forwards to a real `bureau-proxy`, which injects the
//! credential and forwards to a small OpenAI-compatible server (`tests/interop/openai_server.py`,
//! Python stdlib). The agent holds only a placeholder key; the upstream must see the real one, and
//! the real one must appear nowhere the agent or an operator reading logs could see it.
//!
//! The SDK lives in a venv beside the homeserver's (`<cache>/openai-venv`), installed once under
//! a file lock; the first run needs PyPI, later runs reuse it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BUREAU: &str = env!("CARGO_BIN_EXE_bureau");

/// The SDK under test, pinned: a new release is a deliberate change here.
const OPENAI_SDK_VERSION: &str = "3.54.0";

/// What the agent is given instead of the real key.
const AGENT_KEY: &str = "not-the-real-key";

/// How long any one step (a process coming up, the client's whole run) may take.
const STEP_DEADLINE: Duration = Duration::from_secs(30);

/// The server's pause before each streamed event: long enough that a proxy or bridge buffering
/// the stream shows as all events arriving at once.
const STREAM_PAUSE_SECONDS: f64 = 0.2;

fn interop(script: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop")
        .join(script)
}

mod python_support;

/// A Python with the pinned `openai` SDK (see `python_support`).
fn openai_python() -> PathBuf {
    python_support::python_with("openai", OPENAI_SDK_VERSION, "openai")
}

/// A child process killed (and reaped) when the test ends, however it ends.
struct Running {
    child: Child,
    name: &'static str,
}

impl Drop for Running {
    fn drop(&mut self) {
        drop(self.child.kill());
        drop(self.child.wait());
    }
}

impl Running {
    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

/// Sends each line a reader produces to a channel, from a thread, until EOF.
fn lines_of(reader: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    receiver
}

/// The next line from `lines` containing `needle`, collecting every line seen into `seen`.
fn wait_for_line(
    lines: &mpsc::Receiver<String>,
    seen: &mut Vec<String>,
    needle: &str,
    what: &str,
) -> String {
    let deadline = Instant::now() + STEP_DEADLINE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                seen.push(line.clone());
                if line.contains(needle) {
                    return line;
                }
            }
            Err(error) => panic!("{what}: no line with {needle:?} ({error}); saw {seen:#?}"),
        }
    }
}

/// The OpenAI-compatible upstream: its port and the JSON record it prints for each request.
struct Upstream {
    port: u16,
    records: mpsc::Receiver<String>,
    _process: Running,
}

fn start_upstream(expected_key: &str, stderr: &Path) -> Upstream {
    let mut child = Command::new("python3")
        .arg(interop("openai_server.py"))
        .env("OPENAI_TEST_EXPECTED_KEY", expected_key)
        .env("OPENAI_TEST_STREAM_PAUSE", STREAM_PAUSE_SECONDS.to_string())
        // Its stdin stays open while the test runs: the server exits when it closes.
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(stderr).expect("server stderr file"))
        .spawn()
        .expect("start openai_server.py");
    let records = lines_of(child.stdout.take().expect("stdout is piped"));
    let process = Running {
        child,
        name: "openai_server.py",
    };
    let port = match records.recv_timeout(STEP_DEADLINE) {
        Ok(line) => line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("the server's first line is not a port: {line:?}")),
        Err(error) => panic!(
            "openai_server.py printed no port ({error}): {}",
            std::fs::read_to_string(stderr).unwrap_or_default()
        ),
    };
    Upstream {
        port,
        records,
        _process: process,
    }
}

mod proxy_support;
use proxy_support::RunningProxy;

/// The proxy under test, logging every request (its log is checked for the canary).
fn start_proxy(dir: &Path, services: &Value, payload: &Value) -> RunningProxy {
    RunningProxy::start(
        Some(dir),
        "agent",
        services,
        payload,
        &["--log-level", "debug"],
    )
}

/// A running `bureau bridge` on a port of its choosing, with every stderr line it printed.
struct Bridge {
    address: SocketAddr,
    stderr: mpsc::Receiver<String>,
    seen: Vec<String>,
    _process: Running,
}

impl Bridge {
    /// Everything the bridge printed so far.
    fn output(&mut self) -> String {
        self.seen.extend(self.stderr.try_iter());
        self.seen.join("\n")
    }
}

fn start_bridge(proxy_socket: &Path) -> Bridge {
    let mut child = Command::new(BUREAU)
        .args(["bridge", "--listen", "127.0.0.1:0", "--proxy"])
        .arg(proxy_socket)
        .env_remove("RUST_LOG")
        .env_remove("JOURNAL_STREAM")
        .env_remove("BUREAU_PROXY_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start bureau bridge");
    let stderr = lines_of(child.stderr.take().expect("stderr is piped"));
    let process = Running {
        child,
        name: "bureau bridge",
    };
    let mut seen = Vec::new();
    // `listening on ADDRESS, forwarding to SOCKET` (info, the bridge's default level).
    let line = wait_for_line(&stderr, &mut seen, "listening on ", process.name);
    let address = line
        .split_once("listening on ")
        .and_then(|(_, rest)| rest.split_once(','))
        .and_then(|(address, _)| address.parse().ok())
        .unwrap_or_else(|| panic!("no address in the bridge's line {line:?}"));
    Bridge {
        address,
        stderr,
        seen,
        _process: process,
    }
}

/// Runs the SDK client script to completion (killed at the deadline); returns its exit status,
/// stdout and stderr.
fn run_client(
    python: &Path,
    base_url: &str,
    prompt: &str,
    dir: &Path,
) -> (ExitStatus, String, String) {
    let stdout_path = dir.join("client.stdout");
    let stderr_path = dir.join("client.stderr");
    let child = Command::new(python)
        .arg(interop("openai_client.py"))
        .args([base_url, prompt])
        // Nothing from the test's environment (no OPENAI_*, no HTTP proxy settings): the agent
        // has only what it is given on the command line.
        .env_clear()
        .env("LANG", "C.UTF-8")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).expect("client stdout file"))
        .stderr(std::fs::File::create(&stderr_path).expect("client stderr file"))
        .spawn()
        .expect("start openai_client.py");
    let mut process = Running {
        child,
        name: "openai_client.py",
    };
    let deadline = Instant::now() + STEP_DEADLINE;
    let status = loop {
        if let Some(status) = process.exited() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "{} did not finish within {STEP_DEADLINE:?}: {}",
            process.name,
            std::fs::read_to_string(&stderr_path).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |path: &Path| std::fs::read_to_string(path).expect("client output");
    (status, read(&stdout_path), read(&stderr_path))
}

/// A value unique to this run, so a leak cannot be confused with another test's.
fn canary() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or_default();
    format!("sk-canary-{}-{nanos:x}", std::process::id())
}

#[test]
fn the_openai_sdk_chats_and_streams_through_bridge_and_proxy_with_the_injected_key() {
    let python = openai_python();
    let started = Instant::now();
    let canary = canary();
    let dir = tempfile::tempdir().expect("tempdir");

    let upstream = start_upstream(&canary, &dir.path().join("server.stderr"));
    let proxy = start_proxy(
        dir.path(),
        &json!({"openai": {
            "upstream_url": format!("http://127.0.0.1:{}", upstream.port),
            "inject_headers": {"Authorization": "OPENAI_API_KEY"},
            "auth_scheme": "Bearer",
            "rules": [{"methods": ["POST"], "paths": ["/v1/chat/completions"]}],
        }}),
        &json!({"credentials": {"OPENAI_API_KEY": canary}, "grants": []}),
    );
    let mut bridge = start_bridge(&proxy.socket);

    let prompt = format!("hello through bureau {:x}", started.elapsed().as_nanos());
    let base_url = format!("http://{}/http/openai/v1", bridge.address);
    let (status, stdout, stderr) = run_client(&python, &base_url, &prompt, dir.path());
    let proxy_log = std::fs::read_to_string(&proxy.log).expect("proxy log");
    assert!(
        status.success(),
        "the openai client failed ({status}):\n{stderr}\nproxy log:\n{proxy_log}"
    );
    let result: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|error| panic!("client output is not JSON ({error}): {stdout}"));
    assert_eq!(result["sdk_version"], OPENAI_SDK_VERSION, "{result}");

    // The plain completion came back whole, as the SDK parsed it.
    let expected = format!("echo: {prompt}");
    let chat = &result["chat"];
    assert_eq!(chat["content"], expected.as_str(), "{result}");
    assert_eq!(chat["object"], "chat.completion", "{result}");
    assert_eq!(chat["role"], "assistant", "{result}");
    assert_eq!(chat["finish_reason"], "stop", "{result}");
    assert_eq!(chat["model"], "test-model", "{result}");

    // The stream came back whole, as chunks, and as the server sent them: spread over time.
    let stream = &result["stream"];
    assert_eq!(stream["content"], expected.as_str(), "{result}");
    assert_eq!(
        stream["objects"],
        json!(["chat.completion.chunk"]),
        "{result}"
    );
    assert_eq!(stream["finish_reason"], "stop", "{result}");
    let arrivals: Vec<f64> = stream["arrivals"]
        .as_array()
        .expect("arrivals")
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    let words = expected.split(' ').count();
    assert_eq!(
        arrivals.len(),
        words,
        "one content chunk per word: {result}"
    );
    let spread = arrivals.last().copied().unwrap_or_default() - arrivals[0];
    let sent_over = STREAM_PAUSE_SECONDS * (words - 1) as f64;
    assert!(
        spread >= sent_over / 2.0,
        "the events were sent over {sent_over:.1} s but arrived within {spread:.2} s: \
         something on the way buffered the stream ({arrivals:?})"
    );

    // The proxy's rules refused what they do not allow, in a form the SDK understands.
    let denied = &result["denied"];
    assert_eq!(denied["status"], 403, "{result}");
    assert_eq!(denied["error_type"], "PermissionDeniedError", "{result}");
    assert!(
        denied["body"]
            .as_str()
            .is_some_and(|message| message.contains("rules do not allow GET /v1/models")),
        "{result}"
    );

    // What reached the upstream: both chat calls, each with exactly one Authorization header,
    // the injected one, never the agent's; the refused call never got there.
    let mut records = Vec::new();
    while records.len() < 2 {
        match upstream.records.recv_timeout(STEP_DEADLINE) {
            Ok(line) => records.push(line),
            Err(error) => panic!("the server reported {records:?}, then nothing ({error})"),
        }
    }
    // Anything more the server reported by now (it reports before it answers).
    records.extend(upstream.records.try_iter());
    let records: Vec<Value> = records
        .iter()
        .map(|line| serde_json::from_str(line).expect("server record"))
        .collect();
    assert_eq!(records.len(), 2, "{records:#?}");
    for (record, streamed) in records.iter().zip([false, true]) {
        assert_eq!(record["method"], "POST", "{record}");
        assert_eq!(record["path"], "/v1/chat/completions", "{record}");
        assert_eq!(
            record["authorized"], true,
            "the upstream did not get the key: {record}"
        );
        assert_eq!(
            record["agent_key_seen"], false,
            "the agent's key leaked: {record}"
        );
        assert_eq!(record["authorization_headers"], 1, "{record}");
        assert_eq!(record["stream"], streamed, "{record}");
        assert_eq!(record["user_text"], prompt.as_str(), "{record}");
        assert!(
            record["user_agent"]
                .as_str()
                .is_some_and(|agent| agent.starts_with("OpenAI/Python")),
            "the request was not the SDK's: {record}"
        );
    }

    // The real key is nowhere the agent or a log reader sees it.
    assert!(
        proxy_log.contains("/http/openai/v1/chat/completions"),
        "the proxy logs each request: {proxy_log}"
    );
    let bridge_output = bridge.output();
    for (what, text) in [
        ("the client's stdout", &stdout),
        ("the client's stderr", &stderr),
        ("the proxy's log", &proxy_log),
        ("the bridge's log", &bridge_output),
    ] {
        assert!(
            !text.contains(&canary),
            "the real key is in {what}:\n{text}"
        );
    }
    // Nor are header values logged at all (the agent's own key included).
    for (what, text) in [
        ("the proxy's log", &proxy_log),
        ("the bridge's log", &bridge_output),
    ] {
        assert!(
            !text.contains(AGENT_KEY),
            "the agent's key is in {what}:\n{text}"
        );
    }
    eprintln!(
        "openai SDK {OPENAI_SDK_VERSION} through bridge and proxy: {:.2} s",
        started.elapsed().as_secs_f64()
    );
}
