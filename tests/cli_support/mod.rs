// Each test crate that includes this module uses part of it.
#![allow(dead_code)]

//! What the Matrix-backed CLI tests share: one homeserver per test binary, a runtime, unique
//! names, fresh accounts, and running the real `bureau` binary with a session file.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use bureau::homeserver::{HomeserverConfig, LocalHomeserver};
use bureau::matrix::{Client, ConnectOptions};
use bureau::secret::Secret;

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
    bureau::devstack::run_bureau(Path::new(BUREAU), session, args, input)
}

/// A fresh account (`admin` for a server admin) with the password `<name>-password`.
pub async fn new_user(server: &LocalHomeserver, prefix: &str, admin: bool) -> (Client, String) {
    let name = unique(prefix);
    let client = Client::connect(&server.base_url(), &ConnectOptions::default())
        .await
        .expect("connect");
    let secret = Secret::from_string(server.shared_secret().to_owned());
    let password = Secret::from_string(format!("{name}-password"));
    let user = client
        .register_with_shared_secret(&secret, &name, &password, admin)
        .await
        .expect("register");
    (user, name)
}

/// Logs `name` (made by [`new_user`]) in through the CLI; returns the session file and the
/// directory holding it (kept alive by the caller).
pub fn cli_login(server: &LocalHomeserver, name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let session = dir.path().join("session.json");
    let output = bureau(
        &session,
        &[
            "login",
            "--homeserver",
            &server.base_url(),
            "--user",
            name,
            "--password-stdin",
        ],
        Some(&format!("{name}-password\n")),
    );
    assert!(output.status.success(), "login: {}", text(&output.stderr));
    (dir, session)
}

/// Bytes as text (lossy), for messages.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
