//! `bureau::homeserver` against a real Synapse: start, readiness, registration, isolation of
//! instances, restart, stop, detached instances and errors.
//!
//! The first run installs Synapse into the shared venv (25–40 s, needs PyPI); later runs start
//! an instance in 2–4 s. Tests that only need *a* server share one instance; a test that
//! restarts, stops or needs a second server starts its own.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bureau::homeserver::{
    HomeserverConfig, HomeserverError, InstanceInfo, LocalHomeserver, SYNAPSE_VERSION, install,
};

/// The instance shared by this test binary. A `static` is never dropped: Synapse stops itself
/// when this process exits (it watches a pipe from us), and the next start removes its data
/// directory.
fn shared() -> &'static LocalHomeserver {
    static SHARED: OnceLock<LocalHomeserver> = OnceLock::new();
    SHARED.get_or_init(|| {
        let started = Instant::now();
        let server = LocalHomeserver::start(HomeserverConfig::default())
            .unwrap_or_else(|error| panic!("cannot start the shared homeserver: {error}"));
        eprintln!("shared homeserver ready in {:?}", started.elapsed());
        server
    })
}

/// One HTTP/1.1 request to `127.0.0.1:port`, with a bearer token if given: the status and the
/// (de-chunked) body.
fn request(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2))
        .unwrap_or_else(|error| panic!("cannot connect to {address}: {error}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("set a read timeout");
    let authorization = token
        .map(|token| format!("Authorization: Bearer {token}\r\n"))
        .unwrap_or_default();
    let body = body.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{authorization}\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send the request");
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .expect("read the response");
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head in {response:?}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    (
        status,
        if chunked {
            dechunk(body)
        } else {
            body.to_owned()
        },
    )
}

fn get(port: u16, path: &str, token: Option<&str>) -> (u16, String) {
    request(port, "GET", path, token, None)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// `POST /_matrix/client/v3/login` with a password: the status and the body.
fn login(port: u16, user: &str, password: &str) -> (u16, serde_json::Value) {
    let body = serde_json::json!({
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user},
        "password": password,
    });
    let (status, body) = request(
        port,
        "POST",
        "/_matrix/client/v3/login",
        None,
        Some(&body.to_string()),
    );
    let json = serde_json::from_str(&body).unwrap_or_else(|_| panic!("login body {body:?}"));
    (status, json)
}

/// Whether `pid` has exited: no `/proc` entry, or a zombie nobody has reaped yet.
fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => true,
    }
}

/// Waits until `pid` no longer exists. The harness reaps its child when it stops it, so the
/// `/proc` entry goes away (no zombie); the deadline only bounds a broken stop.
fn wait_gone(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Path::new(&format!("/proc/{pid}")).exists() {
        assert!(
            Instant::now() < deadline,
            "pid {pid} still exists 15 s after the stop"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn serves_the_client_api_on_loopback() {
    let server = shared();
    assert_eq!(
        server.base_url(),
        format!("http://127.0.0.1:{}", server.port())
    );
    assert_eq!(server.server_name(), "bureau.local");
    assert!(server.is_ready());
    if Path::new("/dev/shm").is_dir() {
        assert!(
            server.data_dir().starts_with("/dev/shm"),
            "{:?}",
            server.data_dir()
        );
    }
    let (status, body) = get(server.port(), "/_matrix/client/versions", None);
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let versions: Vec<&str> = json["versions"]
        .as_array()
        .unwrap_or_else(|| panic!("no versions in {body}"))
        .iter()
        .filter_map(serde_json::Value::as_str)
        .collect();
    // Current spec versions (v1.1 … v1.15), plus the legacy r0.x ones Synapse still lists.
    assert!(versions.contains(&"v1.1"), "{versions:?}");
    assert!(
        versions
            .iter()
            .all(|version| version.starts_with("v1.") || version.starts_with("r0.")),
        "{versions:?}"
    );
    // Only the client resource: no federation listener.
    let (status, _) = get(server.port(), "/_matrix/federation/v1/version", None);
    assert_eq!(status, 404);
    // The process is Synapse from our venv, pinned.
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", server.pid())).unwrap();
    assert!(String::from_utf8_lossy(&cmdline).contains("homeserver.yaml"));
    assert_eq!(server.info().synapse_version, SYNAPSE_VERSION);
}

#[test]
fn register_creates_a_user_and_refuses_a_duplicate() {
    let server = shared();
    let started = Instant::now();
    server.register("alice", "alice-password", false).unwrap();
    eprintln!("register took {:?}", started.elapsed());
    let (status, body) = login(server.port(), "alice", "alice-password");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user_id"], "@alice:bureau.local");
    assert!(body["access_token"].is_string());

    let error = server
        .register("alice", "another-password", false)
        .unwrap_err();
    assert!(
        matches!(&error, HomeserverError::UserExists { user, .. } if user == "alice"),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "cannot register @alice:bureau.local: the user already exists"
    );

    server.register("root", "root-password", true).unwrap();
    let (status, body) = login(server.port(), "root", "root-password");
    assert_eq!(status, 200, "{body}");
    // `admin` decides who may use the admin API.
    let admin_api = "/_synapse/admin/v2/users/@root:bureau.local";
    let (status, body) = get(server.port(), admin_api, body["access_token"].as_str());
    assert_eq!(status, 200, "{body}");
    let (_, alice) = login(server.port(), "alice", "alice-password");
    let (status, body) = get(server.port(), admin_api, alice["access_token"].as_str());
    assert_eq!(status, 403, "{body}");
}

#[test]
fn two_instances_run_side_by_side_and_drop_stops_one() {
    let first = shared();
    let started = Instant::now();
    let second = LocalHomeserver::start(HomeserverConfig::default()).unwrap();
    eprintln!("second homeserver ready in {:?}", started.elapsed());
    assert_ne!(first.port(), second.port());
    assert_ne!(first.data_dir(), second.data_dir());
    assert_ne!(first.shared_secret(), second.shared_secret());

    second.register("bob", "bob-password", false).unwrap();
    assert_eq!(login(second.port(), "bob", "bob-password").0, 200);
    // Separate databases: bob does not exist on the first instance.
    assert_eq!(login(first.port(), "bob", "bob-password").0, 403);

    let (pid, port, data_dir) = (second.pid(), second.port(), second.data_dir().to_owned());
    let stopping = Instant::now();
    drop(second);
    eprintln!("drop (stop) took {:?}", stopping.elapsed());
    wait_gone(pid);
    assert!(
        TcpStream::connect_timeout(
            &SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            Duration::from_secs(1)
        )
        .is_err(),
        "port {port} still answers after drop"
    );
    assert!(!data_dir.exists(), "{data_dir:?} survived the drop");
    assert!(first.is_ready());
}

#[test]
fn restart_keeps_users_and_the_port() {
    let mut server = LocalHomeserver::start(HomeserverConfig::default()).unwrap();
    server.register("carol", "carol-password", false).unwrap();
    let (status, body) = login(server.port(), "carol", "carol-password");
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap().to_owned();
    let (pid, port) = (server.pid(), server.port());

    let started = Instant::now();
    server.restart().unwrap();
    eprintln!("restart took {:?}", started.elapsed());
    wait_gone(pid);
    assert_ne!(server.pid(), pid);
    assert_eq!(server.port(), port);
    assert!(server.is_ready());

    assert!(matches!(
        server.register("carol", "other", false),
        Err(HomeserverError::UserExists { .. })
    ));
    assert_eq!(login(server.port(), "carol", "carol-password").0, 200);
    // Access tokens survive too.
    let (status, whoami) = get(
        server.port(),
        "/_matrix/client/v3/account/whoami",
        Some(&token),
    );
    assert_eq!(status, 200, "{whoami}");
    assert!(whoami.contains("@carol:bureau.local"));

    server.stop().unwrap();
    wait_gone(server.pid());
    assert!(!server.is_ready());
    server.stop().unwrap(); // stopping twice is fine
}

#[test]
fn detached_instance_is_stopped_through_its_saved_info() {
    let state_dir = tempfile::tempdir().unwrap();
    let state = state_dir.path().join("instance.json");
    let config = HomeserverConfig {
        data_dir: Some(state_dir.path().join("data")),
        server_name: "detached.test".to_owned(),
        ..HomeserverConfig::default()
    };
    let info = LocalHomeserver::start_detached(config).unwrap();
    // A detached instance outlives us unless stopped: stop it even if an assertion fails.
    let _guard = StopOnDrop(info.clone());
    info.save(&state).unwrap();
    let saved = std::fs::read_to_string(&state).unwrap();
    assert!(saved.contains(&format!("\"pid\": {}", info.pid)), "{saved}");
    assert!(!format!("{info:?}").contains(&info.shared_secret));

    let loaded = InstanceInfo::load(&state).unwrap().unwrap();
    assert!(loaded.is_ready());
    // A new session of its own: not in our process group or session.
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", loaded.pid)).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    assert_eq!(
        fields[3],
        loaded.pid.to_string(),
        "session id is its own pid: {stat}"
    );

    loaded.register("dave", "dave-password", true).unwrap();
    assert_eq!(login(loaded.port, "dave", "dave-password").0, 200);
    loaded.stop().unwrap();
    assert!(!loaded.is_running());
    loaded.stop().unwrap();
    assert!(matches!(
        loaded.register("erin", "erin-password", false),
        Err(HomeserverError::Register { .. })
    ));
    assert!(
        InstanceInfo::load(&state_dir.path().join("missing.json"))
            .unwrap()
            .is_none()
    );
}

struct StopOnDrop(InstanceInfo);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let _ = self.0.stop();
    }
}

/// Set in the environment of the re-executed test binary that plays a killed owner.
const OWNER_ENV: &str = "BUREAU_TEST_HOMESERVER_OWNER";

/// Not a test: the owner process of `synapse_stops_when_its_owner_is_killed` (run only there).
#[test]
#[ignore = "helper process of synapse_stops_when_its_owner_is_killed"]
fn owner_process() {
    if std::env::var_os(OWNER_ENV).is_none() {
        return;
    }
    let server = LocalHomeserver::start(HomeserverConfig::default()).unwrap();
    println!("SYNAPSE {} {}", server.pid(), server.data_dir().display());
    std::io::stdout().flush().unwrap();
    std::thread::sleep(Duration::from_secs(120));
}

#[test]
fn synapse_stops_when_its_owner_is_killed() {
    use std::io::BufRead;
    let mut owner = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["owner_process", "--exact", "--ignored", "--nocapture"])
        .env(OWNER_ENV, "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(owner.stdout.take().unwrap());
    let line = stdout
        .lines()
        .map(Result::unwrap)
        .find(|line| line.starts_with("SYNAPSE "))
        .unwrap_or_else(|| panic!("the owner process printed no SYNAPSE line"));
    let mut fields = line.split(' ').skip(1);
    let pid: u32 = fields.next().unwrap().parse().unwrap();
    let data_dir = std::path::PathBuf::from(fields.next().unwrap());
    assert!(!exited(pid));

    // SIGKILL: the owner runs no destructor. Synapse sees EOF on its lifeline and stops itself;
    // it is no child of ours, so we watch /proc (a zombie awaiting init counts as exited).
    owner.kill().unwrap();
    owner.wait().unwrap();
    let killed = Instant::now();
    while !exited(pid) {
        assert!(
            killed.elapsed() < Duration::from_secs(15),
            "Synapse (pid {pid}) still runs 15 s after its owner was killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "orphaned Synapse exited {:?} after its owner",
        killed.elapsed()
    );
    // A later start would remove the directory; do it now.
    std::fs::remove_dir_all(data_dir).unwrap();
}

#[test]
fn an_unusable_cache_dir_is_a_clear_error() {
    // A path below a regular file can never be created, even by root.
    let bad = Path::new("/dev/null/bureau-cache");
    let error = install(bad).unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, HomeserverError::Cache { .. }), "{error:?}");
    assert!(message.contains("/dev/null/bureau-cache"), "{message}");
    assert!(message.contains("BUREAU_HOMESERVER_CACHE"), "{message}");

    let error = LocalHomeserver::start(HomeserverConfig {
        cache_dir: Some(bad.to_owned()),
        ..HomeserverConfig::default()
    })
    .unwrap_err();
    assert!(matches!(error, HomeserverError::Cache { .. }), "{error:?}");
}

/// Set in the environment of the re-executed test binary that installs into a given cache.
const INSTALL_CACHE_ENV: &str = "BUREAU_TEST_HOMESERVER_INSTALL_CACHE";

/// Not a test: runs `install` in a separate process for `a_python_without_venv_is_a_clear_error`
/// (so `BUREAU_HOMESERVER_PYTHON` can be set for it alone).
#[test]
#[ignore = "helper process of a_python_without_venv_is_a_clear_error"]
fn install_process() {
    let Some(cache) = std::env::var_os(INSTALL_CACHE_ENV) else {
        return;
    };
    match install(Path::new(&cache)) {
        Ok(venv) => println!("INSTALLED {}", venv.display()),
        Err(error) => println!("ERROR {}", error.to_string().replace('\n', "\\n")),
    }
}

#[test]
fn a_python_without_venv_is_a_clear_error() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    // Debian's python3 without python3-venv: `-m venv` fails with this message (verbatim from
    // Debian 12), anything else is the real interpreter.
    let python = dir.path().join("python3");
    std::fs::write(
        &python,
        "#!/bin/sh\n\
         if [ \"$1\" = -m ] && [ \"$2\" = venv ]; then\n\
           mkdir -p \"$3/bin\"\n\
           echo 'The virtual environment was not created successfully because ensurepip is not' >&2\n\
           echo 'available.  On Debian/Ubuntu systems, you need to install the python3-venv' >&2\n\
           echo 'package using the following command.' >&2\n\
           exit 1\n\
         fi\n\
         exec python3 \"$@\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cache = dir.path().join("cache");
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["install_process", "--exact", "--ignored", "--nocapture"])
        .env(INSTALL_CACHE_ENV, &cache)
        .env("BUREAU_HOMESERVER_PYTHON", &python)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let error = stdout
        .lines()
        .find_map(|line| line.strip_prefix("ERROR "))
        .unwrap_or_else(|| panic!("install did not fail: {stdout}"))
        .replace("\\n", "\n");
    assert!(
        error.contains("venv/ensurepip support is not installed"),
        "{error}"
    );
    assert!(
        error.ends_with("Hint: apt-get install python3-venv"),
        "{error}"
    );
    // The half-made venv is gone, so the next attempt starts clean.
    assert!(!bureau::homeserver::venv_dir(&cache).exists());
}

#[test]
fn an_occupied_port_is_refused_before_synapse_starts() {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let error = LocalHomeserver::start(HomeserverConfig {
        port: Some(port),
        ..HomeserverConfig::default()
    })
    .unwrap_err();
    assert!(
        matches!(error, HomeserverError::PortInUse { port: p } if p == port),
        "{error:?}"
    );
    assert!(error.to_string().contains("Hint:"), "{error}");
}
