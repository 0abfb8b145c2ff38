//! The whole runtime, end to end: a real Synapse, `bureau matrix setup`, `bureau machine
//! provision`, a real `bureau-launcher` and `bureau-daemon` (rootless mode, under a temporary
//! directory), templates and principals made with the CLI, real proxies and sandboxes. Outcomes
//! are read from the config room through `/sync`, as an operator's client would.
//!
//! One machine for the whole file; each test uses its own principal(s) and stops them when it
//! ends (even on failure), so tests can run in parallel.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use bureau::demo::{DEMO_TEMPLATE, DemoService, demo_template};
use bureau::homeserver::{HomeserverConfig, LocalHomeserver};
use bureau::launcher::ipc::{self, Request, Response, SandboxInfo};
use bureau::matrix::{Client, ConnectOptions, SyncStream};
use bureau::naming::Localpart;
use bureau::secret::Secret;
use ruma::OwnedRoomId;
use serde_json::{Value, json};

const BUREAU: &str = env!("CARGO_BIN_EXE_bureau");
const MACHINE: &str = "acme/fleet/prod/machine/box1";
const WAIT: Duration = Duration::from_secs(90);

/// The shared machine: homeserver, operator, launcher and daemon, the demo service.
struct Stack {
    server: LocalHomeserver,
    runtime: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
    session: PathBuf,
    operator: Client,
    config_room: OwnedRoomId,
    demo: DemoService,
    daemon: Mutex<Child>,
    _launcher: Child,
    /// Serialises read-modify-writes of `m.bureau.machine_config`.
    config_lock: Mutex<()>,
}

fn stack() -> &'static Stack {
    static STACK: OnceLock<Stack> = OnceLock::new();
    STACK.get_or_init(Stack::start)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl Stack {
    fn start() -> Self {
        let server = LocalHomeserver::start(HomeserverConfig::default()).expect("homeserver");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("tempdir");
        let session = dir.path().join("operator-session.json");
        server
            .register("operator", "operator-password", true)
            .expect("register operator");
        let operator = runtime.block_on(async {
            let client = Client::connect(&server.base_url(), &ConnectOptions::default())
                .await
                .expect("connect");
            client
                .login_password("operator", &Secret::from_string("operator-password".into()))
                .await
                .expect("login")
                .0
        });
        let login = run_cli(
            &session,
            &[
                "login",
                "--homeserver",
                &server.base_url(),
                "--user",
                "operator",
                "--password-stdin",
            ],
            Some("operator-password\n"),
        );
        assert!(login.status.success(), "login: {}", text(&login.stderr));
        cli_ok(&session, &["matrix", "setup", "acme", "--fleet", "prod"]);
        let bootstrap = dir.path().join("bootstrap.json");
        cli_ok(
            &session,
            &[
                "machine",
                "provision",
                MACHINE,
                "--bootstrap-file",
                bootstrap.to_str().expect("UTF-8 path"),
            ],
        );
        let demo = runtime
            .block_on(DemoService::start())
            .expect("demo service");
        let template_file = dir.path().join("demo-template.json");
        std::fs::write(&template_file, demo_template(&demo.url()).to_string())
            .expect("test harness");
        cli_ok(
            &session,
            &[
                "template",
                "push",
                DEMO_TEMPLATE,
                template_file.to_str().expect("UTF-8 path"),
                "--namespace",
                "acme",
            ],
        );

        let machine_dir = dir.path().join("machine");
        let launcher = spawn_logged(
            &dir.path().join("launcher.log"),
            &[
                "launcher",
                "--dir",
                machine_dir.to_str().expect("UTF-8 path"),
                "--bootstrap-file",
                bootstrap.to_str().expect("UTF-8 path"),
                "--grace-seconds",
                "2",
                "--log-level",
                "debug",
            ],
        );
        let socket = machine_dir.join("run/launcher.sock");
        wait_until("the launcher's socket", || socket.exists());
        let daemon = Mutex::new(start_daemon(dir.path()));
        let config_room = runtime.block_on(async {
            operator
                .resolve_alias(&format!("#{MACHINE}:{}", server.server_name()))
                .await
                .expect("resolve")
                .expect("the config room exists")
        });
        Stack {
            server,
            runtime,
            dir,
            session,
            operator,
            config_room,
            demo,
            daemon,
            _launcher: launcher,
            config_lock: Mutex::new(()),
        }
    }

    fn machine_dir(&self) -> PathBuf {
        self.dir.path().join("machine")
    }

    fn launcher(&self, request: &Request) -> Response {
        let socket = self.machine_dir().join("run/launcher.sock");
        self.runtime
            .block_on(ipc::call(&socket, request))
            .expect("launcher call")
    }

    fn sandbox(&self, principal: &str) -> Option<SandboxInfo> {
        match self.launcher(&Request::ListSandboxes) {
            Response::Sandboxes { sandboxes } => sandboxes
                .into_iter()
                .find(|sandbox| sandbox.principal.as_str() == principal),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn server_name(&self) -> &str {
        self.server.server_name()
    }

    /// `bureau agent create` for a demo principal.
    fn create_agent(&self, principal: &str, payload: Value, restart: &str, secret: &str) {
        // The operator's input file lives apart from what Bureau writes (the canary test scans
        // everything else for the secret).
        let inputs = self.dir.path().join("operator-input");
        std::fs::create_dir_all(&inputs).expect("test harness");
        let credentials = inputs.join(format!("{}.json", principal.replace('/', "_")));
        std::fs::write(&credentials, json!({"DEMO_TOKEN": secret}).to_string())
            .expect("test harness");
        let _config = self
            .config_lock
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        cli_ok(
            &self.session,
            &[
                "agent",
                "create",
                principal,
                "--template",
                DEMO_TEMPLATE,
                "--machine",
                MACHINE,
                "--credentials",
                credentials.to_str().expect("UTF-8 path"),
                "--payload",
                &payload.to_string(),
                "--grant",
                "matrix/send",
                "--restart-policy",
                restart,
            ],
        );
    }

    fn destroy_agent(&self, principal: &str) {
        let _config = self
            .config_lock
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        cli_ok(
            &self.session,
            &["agent", "destroy", principal, "--machine", MACHINE],
        );
    }

    /// Applies `edit` to the machine config (read-modify-write under the lock).
    fn edit_config(&self, edit: impl FnOnce(&mut Vec<Value>)) {
        let _config = self
            .config_lock
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        self.runtime.block_on(async {
            let mut config = self
                .operator
                .state_get(&self.config_room, "m.bureau.machine_config", "")
                .await
                .expect("read config")
                .unwrap_or_else(|| json!({"principals": []}));
            let mut principals = config["principals"].as_array().cloned().unwrap_or_default();
            edit(&mut principals);
            config["principals"] = Value::Array(principals);
            self.operator
                .state_put(&self.config_room, "m.bureau.machine_config", "", &config)
                .await
                .expect("write config");
        });
    }

    /// Waits (through /sync) for a config-room message matching `matches`; returns all the
    /// matching messages seen by then.
    fn wait_for_messages(
        &self,
        what: &str,
        count: usize,
        matches: impl Fn(&Value) -> bool,
    ) -> Vec<Value> {
        self.runtime.block_on(async {
            let filter = json!({"room": {"rooms": [self.config_room.to_string()],
                                         "timeline": {"limit": 500}}});
            let mut sync = SyncStream::new(self.operator.clone(), None, Some(filter))
                .with_poll_timeout(Duration::from_secs(2));
            let mut seen = Vec::new();
            let deadline = Instant::now() + WAIT;
            while Instant::now() < deadline {
                let batch = sync.next_batch().await.expect("sync");
                seen.extend(
                    batch
                        .timeline_of(&self.config_room)
                        .filter(|event| matches(event))
                        .cloned(),
                );
                if seen.len() >= count {
                    return seen;
                }
            }
            panic!(
                "timed out waiting for {what} (saw {seen:?}); daemon log:\n{}",
                self.daemon_log()
            );
        })
    }

    fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }
}

/// Stops a test's principals when the test ends, whatever happened.
struct Cleanup<'a>(&'a Stack, Vec<&'static str>);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for principal in &self.1 {
            let _config = self
                .0
                .config_lock
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            let _ = run_cli(
                &self.0.session,
                &["agent", "destroy", principal, "--machine", MACHINE],
                None,
            );
            if let Ok(name) = Localpart::parse(principal) {
                let socket = self.0.machine_dir().join("run/launcher.sock");
                let _ = self.0.runtime.block_on(ipc::call(
                    &socket,
                    &Request::DestroySandbox {
                        principal: name,
                        force: true,
                    },
                ));
            }
        }
    }
}

fn run_cli(session: &Path, args: &[&str], input: Option<&str>) -> Output {
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
        stdin.write_all(input.as_bytes()).expect("stdin");
    }
    drop(stdin);
    child.wait_with_output().expect("wait")
}

fn cli_ok(session: &Path, args: &[&str]) -> String {
    let output = run_cli(session, args, None);
    assert!(
        output.status.success(),
        "bureau {args:?} failed:\n{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

/// Spawns `bureau ARGS` with stdout and stderr appended to `log`. The child dies with the test
/// process: it is spawned from a thread that lives as long as the process, with
/// `PR_SET_PDEATHSIG` set by `setpriv`.
fn spawn_logged(log: &Path, args: &[&str]) -> Child {
    let log = log.to_path_buf();
    let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let output = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("test harness");
        let child = Command::new("setpriv")
            .args(["--pdeathsig", "KILL", "--", BUREAU])
            .args(&args)
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("test harness"))
            .stderr(output)
            .spawn()
            .expect("spawn");
        sender.send(child).expect("test harness");
        loop {
            std::thread::park();
        }
    });
    receiver.recv().expect("spawned")
}

fn start_daemon(dir: &Path) -> Child {
    spawn_logged(
        &dir.join("daemon.log"),
        &[
            "daemon",
            "--dir",
            dir.join("machine").to_str().expect("UTF-8 path"),
            "--heartbeat-seconds",
            "2",
            "--backoff-max-seconds",
            "4",
            "--log-level",
            "debug",
        ],
    )
}

fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn outcome_is(event: &Value, kind: &str, principal: &str) -> bool {
    let outcome = &event["content"]["m.bureau.outcome"];
    outcome["kind"] == kind && outcome["principal"] == principal
}

fn unique_secret() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("test harness")
        .as_nanos();
    format!("canary-{}-{nanos:x}", std::process::id())
}

/// Every pid below `pid` (children, recursively).
fn descendants(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let mut queue = vec![pid];
    while let Some(next) = queue.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{next}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let children =
                std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            for child in children
                .split_whitespace()
                .filter_map(|pid| pid.parse().ok())
            {
                found.push(child);
                queue.push(child);
            }
        }
    }
    found
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            files.extend(files_under(&path));
        } else if kind.is_file() {
            files.push(path);
        }
    }
    files
}

#[test]
fn a_published_principal_greets_its_room_and_uses_a_secret_it_never_sees() {
    let stack = stack();
    let principal = "acme/agent/greeter";
    let _cleanup = Cleanup(stack, vec![principal]);
    let secret = unique_secret();
    stack.create_agent(
        principal,
        json!({"room": stack.config_room.to_string()}),
        "never",
        &secret,
    );

    let user = format!("@{principal}:{}", stack.server_name());
    let greeting = format!("hello from {principal}");
    stack.wait_for_messages("the principal's greeting", 1, |event| {
        event["sender"] == user.as_str() && event["content"]["body"] == greeting.as_str()
    });
    stack.wait_for_messages("principal_started", 1, |event| {
        outcome_is(event, "principal_started", principal)
    });
    wait_until("the demo service to see the injected token", || {
        stack
            .demo
            .authorizations()
            .contains(&format!("Bearer {secret}"))
    });

    // The secret is in no process's command line, in no environment of the principal's
    // processes, and in no file the launcher, daemon, proxy or sandbox wrote.
    let sandbox = stack.sandbox(principal).expect("the sandbox runs");
    let log = stack
        .machine_dir()
        .join("state/principals")
        .join(principal)
        .join("output.log");
    wait_until("the script's report", || {
        std::fs::read_to_string(&log).is_ok_and(|output| output.contains("demo service: called"))
    });
    for entry in std::fs::read_dir("/proc").expect("test harness").flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        assert!(
            !text(&cmdline).contains(&secret),
            "secret in {:?} cmdline",
            entry.path()
        );
    }
    let principal_pids = descendants(sandbox.pid);
    assert!(!principal_pids.is_empty(), "the sandbox has processes");
    for pid in principal_pids.iter().chain([&sandbox.pid]) {
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        assert!(
            !text(&environ).contains(&secret),
            "secret in pid {pid}'s environment"
        );
    }
    let mut files = files_under(stack.dir.path());
    let inputs = stack.dir.path().join("operator-input");
    files.retain(|file| !file.starts_with(&inputs));
    assert!(files.iter().any(|file| file.ends_with("proxy.log")));
    for file in files {
        let contents = std::fs::read(&file).unwrap_or_default();
        assert!(
            !text(&contents).contains(&secret),
            "secret in {}",
            file.display()
        );
    }
    let output = std::fs::read_to_string(&log).expect("test harness");
    assert!(output.contains("greeting: sent"), "{output}");
    assert!(
        !output.contains("DEMO_TOKEN"),
        "the credential's name is not in the environment: {output}"
    );
}

#[test]
fn a_killed_daemon_leaves_principals_running_and_its_successor_adopts_them() {
    let stack = stack();
    let principal = "acme/agent/steady";
    let _cleanup = Cleanup(stack, vec![principal]);
    stack.create_agent(principal, json!({}), "on-failure", &unique_secret());
    stack.wait_for_messages("principal_started", 1, |event| {
        outcome_is(event, "principal_started", principal)
    });
    let before = stack.sandbox(principal).expect("running");

    let mut daemon = stack.daemon.lock().expect("test harness");
    daemon.kill().expect("kill -9 the daemon");
    daemon.wait().expect("reap");
    std::thread::sleep(Duration::from_millis(500));
    let during = stack
        .sandbox(principal)
        .expect("still known to the launcher");
    assert_eq!(during.pid, before.pid);
    assert_eq!(
        during.exit_code, None,
        "the principal keeps running without its daemon"
    );

    let log_before = stack.daemon_log().len();
    *daemon = start_daemon(stack.dir.path());
    drop(daemon);
    wait_until("the new daemon to adopt the principal", || {
        stack.daemon_log()[log_before..]
            .lines()
            .any(|line| line.contains("adopting a running sandbox") && line.contains(principal))
    });
    let after = stack.sandbox(principal).expect("running");
    assert_eq!(after.pid, before.pid, "adopted, not restarted");
    assert_eq!(after.exit_code, None);
    let started = stack.wait_for_messages("principal_started", 1, |event| {
        outcome_is(event, "principal_started", principal)
    });
    assert_eq!(started.len(), 1, "started once only: {started:?}");
}

#[test]
fn exit_3_with_restart_never_reports_the_code_and_last_lines() {
    let stack = stack();
    let principal = "acme/agent/quitter";
    let _cleanup = Cleanup(stack, vec![principal]);
    stack.create_agent(
        principal,
        json!({"exit_code": 3}),
        "never",
        &unique_secret(),
    );
    let exited = stack.wait_for_messages("sandbox_exited", 1, |event| {
        outcome_is(event, "sandbox_exited", principal)
    });
    let outcome = &exited[0]["content"]["m.bureau.outcome"];
    assert_eq!(outcome["exit_code"], 3);
    let lines: Vec<&str> = outcome["last_lines"]
        .as_array()
        .expect("last lines")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        lines.contains(&"exiting with 3 as the payload asks"),
        "{lines:?}"
    );
    assert!(
        exited[0]["content"]["body"]
            .as_str()
            .expect("test harness")
            .contains("exited with code 3")
    );
    // Never restarted.
    std::thread::sleep(Duration::from_secs(3));
    let started = stack.wait_for_messages("principal_started", 1, |event| {
        outcome_is(event, "principal_started", principal)
    });
    assert_eq!(started.len(), 1, "{started:?}");
}

#[test]
fn exit_3_with_restart_on_failure_restarts_with_growing_backoff() {
    let stack = stack();
    let principal = "acme/agent/phoenix";
    let _cleanup = Cleanup(stack, vec![principal]);
    stack.create_agent(
        principal,
        json!({"exit_code": 3}),
        "on-failure",
        &unique_secret(),
    );
    let starts = stack.wait_for_messages("three starts", 3, |event| {
        outcome_is(event, "principal_started", principal)
    });
    let times: Vec<i64> = starts
        .iter()
        .map(|event| event["origin_server_ts"].as_i64().expect("timestamp"))
        .collect();
    let gaps: Vec<i64> = times.windows(2).map(|pair| pair[1] - pair[0]).collect();
    assert!(gaps[0] >= 1000, "first back-off is at least 1 s: {gaps:?}");
    assert!(gaps[1] >= 2000, "second back-off is at least 2 s: {gaps:?}");
    stack.destroy_agent(principal);
}

#[test]
fn malformed_assignments_fail_alone_with_a_reason() {
    let stack = stack();
    let good = "acme/agent/bystander";
    let _cleanup = Cleanup(stack, vec![good]);
    stack.create_agent(good, json!({}), "on-failure", &unique_secret());
    stack.wait_for_messages("principal_started", 1, |event| {
        outcome_is(event, "principal_started", good)
    });
    let before = stack.sandbox(good).expect("running");
    stack.runtime.block_on(async {
        let room = stack
            .operator
            .resolve_alias(&format!("#acme/template:{}", stack.server_name()))
            .await
            .expect("test harness")
            .expect("test harness");
        for (name, parent) in [("loop-a", "loop-b"), ("loop-b", "loop-a")] {
            stack
                .operator
                .state_put(
                    &room,
                    "m.bureau.template",
                    name,
                    &json!({"inherits": parent, "command": ["/bin/true"]}),
                )
                .await
                .expect("test harness");
        }
    });
    let bad = [
        json!({"principal": "acme/../escape", "template": DEMO_TEMPLATE}),
        json!({"principal": "acme/agent/ghost", "template": "no-such-template"}),
        json!({"principal": "acme/agent/cycle", "template": "loop-a"}),
    ];
    stack.edit_config(|principals| principals.extend(bad.iter().cloned()));
    let failures = stack.wait_for_messages("three start failures", 3, |event| {
        let outcome = &event["content"]["m.bureau.outcome"];
        outcome["kind"] == "principal_start_failed"
            && ["acme/../escape", "acme/agent/ghost", "acme/agent/cycle"]
                .contains(&outcome["principal"].as_str().unwrap_or_default())
    });
    let reason = |principal: &str| -> String {
        failures
            .iter()
            .map(|event| &event["content"]["m.bureau.outcome"])
            .find(|outcome| outcome["principal"] == principal)
            .map(|outcome| outcome["reason"].as_str().unwrap_or_default().to_owned())
            .unwrap_or_default()
    };
    assert!(
        reason("acme/../escape").contains(".."),
        "{}",
        reason("acme/../escape")
    );
    assert!(
        reason("acme/agent/ghost").contains("no-such-template"),
        "{}",
        reason("acme/agent/ghost")
    );
    assert!(
        reason("acme/agent/cycle").contains("loop-a"),
        "{}",
        reason("acme/agent/cycle")
    );
    let after = stack.sandbox(good).expect("still running");
    assert_eq!(after.pid, before.pid, "other principals are unaffected");
    stack.edit_config(|principals| {
        principals.retain(|assignment| !bad.contains(assignment));
    });
}

#[test]
fn removing_a_principal_stops_its_sandbox_and_proxy_and_says_so() {
    let stack = stack();
    let principal = "acme/agent/leaver";
    let _cleanup = Cleanup(stack, vec![principal]);
    stack.create_agent(principal, json!({}), "always", &unique_secret());
    stack.wait_for_messages("principal_started", 1, |event| {
        outcome_is(event, "principal_started", principal)
    });
    let sandbox = stack.sandbox(principal).expect("running");
    let socket = stack
        .machine_dir()
        .join("run")
        .join(format!("{principal}.proxy.sock"));
    assert!(socket.exists());

    stack.destroy_agent(principal);
    let stopped = stack.wait_for_messages("principal_stopped", 1, |event| {
        outcome_is(event, "principal_stopped", principal)
    });
    assert!(
        stopped[0]["content"]["body"]
            .as_str()
            .expect("test harness")
            .contains("removed from machine_config"),
        "{stopped:?}"
    );
    assert!(stack.sandbox(principal).is_none());
    for pid in [sandbox.pid, sandbox.proxy_pid] {
        let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| !stat.contains(") Z"));
        assert!(!alive, "pid {pid} is gone");
    }
    assert!(!socket.exists(), "the proxy's socket is removed");
}
