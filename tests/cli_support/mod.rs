// Each test crate that includes this module uses part of it.
#![allow(dead_code)]

//! What the Matrix-backed CLI tests share: one homeserver per test binary, a runtime, unique
//! names, and running the real `bureau` binary with a session file.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use bureau::homeserver::{HomeserverConfig, LocalHomeserver};

pub const BUREAU: &str = env!("CARGO_BIN_EXE_bureau");

/// The test binary's shared homeserver (stopped when the test process exits).
pub fn homeserver() -> &'static LocalHomeserver {
    static SERVER: OnceLock<LocalHomeserver> = OnceLock::new();
    SERVER.get_or_init(|| {
        LocalHomeserver::start(HomeserverConfig::default()).expect("start the test homeserver")
    })
}

/// A current-thread runtime for one test's async part.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// A unique lowercase name per call (tests share one homeserver).
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// `bureau ARGS` with a session file, stdin from `input`.
pub fn bureau(session: &Path, args: &[&str], input: Option<&str>) -> Output {
    use std::io::Write;
    let mut child = Command::new(BUREAU)
        .args(args)
        .env("BUREAU_SESSION_FILE", session)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run bureau");
    let mut stdin = child.stdin.take().expect("stdin");
    if let Some(input) = input {
        stdin.write_all(input.as_bytes()).expect("write stdin");
    }
    drop(stdin);
    child.wait_with_output().expect("wait bureau")
}

/// Bytes as text (lossy), for messages.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
