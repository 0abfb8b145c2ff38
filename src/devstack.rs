//! A whole Bureau on this machine, for the quickstart, the runtime tests and the runtime
//! benchmark: a local Synapse, an admin operator, a namespace and fleet, one provisioned
//! machine with its `bureau-launcher` and `bureau-daemon` running rootless under one
//! directory, and the demo template.
//!
//! Invariant: every step goes through the same commands an operator types (`bureau login`,
//! `bureau matrix setup`, `bureau machine provision`, `bureau template push`, `bureau agent
//! create`), run from the given `bureau` executable, so what this module proves works is what
//! a newcomer runs. The launcher and daemon die with the process that started them (they are
//! started through `setpriv --pdeathsig KILL` from a thread that lives as long as the process).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ruma::OwnedRoomId;
use serde_json::{Value, json};

use crate::demo::{DEMO_CREDENTIAL, DEMO_TEMPLATE, DemoService, demo_template};
use crate::homeserver::{HomeserverConfig, LocalHomeserver};
use crate::launcher::ipc::{self, Request, Response, SandboxInfo};
use crate::machine::{MachineIdentity, MachinePaths};
use crate::matrix::{Client, ConnectOptions, SyncStream};
use crate::naming::Localpart;
use crate::schema::{MACHINE_CONFIG, MACHINE_STATUS};
use crate::secret::Secret;

/// The operator account every stack makes (an admin of its homeserver).
pub const OPERATOR: &str = "operator";

/// The machine every stack provisions.
pub const MACHINE: &str = "acme/fleet/prod/machine/box1";

/// How a stack is set up.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// The `bureau` executable.
    pub bureau: PathBuf,
    /// Where everything lives (session, logs, the machine's `--dir`).
    pub dir: PathBuf,
    /// The operator's password (the quickstart prints it so a Matrix client can log in).
    pub operator_password: String,
    /// `--heartbeat-seconds` of the daemon.
    pub heartbeat_seconds: u64,
    /// `--backoff-max-seconds` of the daemon.
    pub backoff_max_seconds: u64,
    /// `--grace-seconds` of the launcher.
    pub grace_seconds: u64,
    /// `--log-level` of the launcher and daemon.
    pub log_level: String,
}

impl StackOptions {
    /// Defaults for tests: short heartbeat and back-off, debug logs.
    pub fn new(bureau: &Path, dir: &Path) -> Self {
        Self {
            bureau: bureau.to_owned(),
            dir: dir.to_owned(),
            operator_password: "operator-password".to_owned(),
            heartbeat_seconds: 2,
            backoff_max_seconds: 4,
            grace_seconds: 2,
            log_level: "debug".to_owned(),
        }
    }

    /// The operator's session file (for `bureau` commands as the operator).
    pub fn operator_session(&self) -> PathBuf {
        self.dir.join("operator-session.json")
    }

    /// The machine's rootless directory (`bureau-launcher --dir`, `bureau-daemon --dir`).
    pub fn machine_dir(&self) -> PathBuf {
        self.dir.join("machine")
    }
}

/// A running local Bureau. Dropping it stops the homeserver; [`LocalStack::stop`] also stops
/// every sandbox, the daemon and the launcher.
pub struct LocalStack {
    /// How it was set up.
    pub options: StackOptions,
    /// The homeserver.
    pub server: LocalHomeserver,
    /// The runtime the stack's own async work (demo service, Matrix reads) runs on.
    pub runtime: tokio::runtime::Runtime,
    /// The operator's client.
    pub operator: Client,
    /// The machine's config room.
    pub config_room: OwnedRoomId,
    /// The machine's names (its rooms' aliases come from here).
    pub machine: MachineIdentity,
    /// The demo service.
    pub demo: DemoService,
    daemon: Mutex<Child>,
    launcher: Mutex<Child>,
    /// Serialises read-modify-writes of `m.bureau.machine_config` by this process.
    pub config_lock: Mutex<()>,
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl LocalStack {
    /// Starts everything; each step's failure names the step.
    pub fn start(options: StackOptions) -> Result<Self, String> {
        std::fs::create_dir_all(&options.dir)
            .map_err(|error| format!("creating {}: {error}", options.dir.display()))?;
        let server = LocalHomeserver::start(HomeserverConfig::default())
            .map_err(|error| format!("starting the homeserver: {error}"))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|error| format!("starting a runtime: {error}"))?;
        server
            .register(OPERATOR, &options.operator_password, true)
            .map_err(|error| format!("registering the operator: {error}"))?;
        let operator = runtime.block_on(async {
            let client = Client::connect(&server.base_url(), &ConnectOptions::default()).await?;
            let password = Secret::from_string(options.operator_password.clone());
            client
                .login_password(OPERATOR, &password)
                .await
                .map(|(client, _)| client)
        });
        let operator = operator.map_err(|error| format!("logging in the operator: {error}"))?;
        let session = options.operator_session();
        let login = run_bureau(
            &options.bureau,
            &session,
            &[
                "login",
                "--homeserver",
                &server.base_url(),
                "--user",
                OPERATOR,
                "--password-stdin",
            ],
            Some(&format!("{}\n", options.operator_password)),
        );
        if !login.status.success() {
            return Err(format!("bureau login: {}", text(&login.stderr)));
        }
        let cli = |args: &[&str]| cli_ok(&options.bureau, &session, args);
        cli(&["matrix", "setup", "acme", "--fleet", "prod"])?;
        let bootstrap = options.dir.join("bootstrap.json");
        let bootstrap_text = path_text(&bootstrap)?;
        cli(&[
            "machine",
            "provision",
            MACHINE,
            "--bootstrap-file",
            bootstrap_text,
        ])?;
        let demo = runtime
            .block_on(DemoService::start())
            .map_err(|error| format!("starting the demo service: {error}"))?;
        let template_file = options.dir.join("demo-template.json");
        std::fs::write(&template_file, demo_template(&demo.url()).to_string())
            .map_err(|error| format!("writing {}: {error}", template_file.display()))?;
        cli(&[
            "template",
            "push",
            DEMO_TEMPLATE,
            path_text(&template_file)?,
            "--namespace",
            "acme",
        ])?;

        let machine = MachineIdentity::new(&server.base_url(), server.server_name(), MACHINE)
            .map_err(|error| error.to_string())?;
        let launcher = spawn_launcher(&options, Some(&bootstrap))?;
        let daemon = spawn_daemon(&options)?;
        let config_room = runtime
            .block_on(operator.resolve_alias(&machine.config_room_alias()))
            .map_err(|error| format!("resolving the config room: {error}"))?
            .ok_or("the config room does not exist")?;
        Ok(Self {
            options,
            server,
            runtime,
            operator,
            config_room,
            machine,
            demo,
            daemon: Mutex::new(daemon),
            launcher: Mutex::new(launcher),
            config_lock: Mutex::new(()),
        })
    }

    /// The operator's session file (for `bureau` commands as the operator).
    pub fn session(&self) -> PathBuf {
        self.options.operator_session()
    }

    /// The machine's rootless directory (`bureau-launcher --dir`).
    pub fn machine_dir(&self) -> PathBuf {
        self.options.machine_dir()
    }

    /// The machine's paths.
    pub fn paths(&self) -> MachinePaths {
        MachinePaths::under(&self.machine_dir())
    }

    /// `bureau ARGS` as the operator; the output on success, the error text otherwise.
    pub fn cli(&self, args: &[&str]) -> Result<String, String> {
        cli_ok(&self.options.bureau, &self.session(), args)
    }

    /// One launcher exchange.
    pub fn launcher_call(&self, request: &Request) -> Result<Response, String> {
        self.runtime
            .block_on(ipc::call(&self.paths().launcher_socket(), request))
            .map_err(|error| error.to_string())
    }

    /// Every sandbox the launcher knows.
    pub fn sandboxes(&self) -> Vec<SandboxInfo> {
        match self.launcher_call(&Request::ListSandboxes) {
            Ok(Response::Sandboxes { sandboxes }) => sandboxes,
            _ => Vec::new(),
        }
    }

    /// The launcher's record of `principal`.
    pub fn sandbox(&self, principal: &str) -> Option<SandboxInfo> {
        self.sandboxes()
            .into_iter()
            .find(|sandbox| sandbox.principal.as_str() == principal)
    }

    /// `bureau agent create` for a demo principal: its credential file holds `secret` as the
    /// demo token (in `dir/operator-input/`, apart from everything Bureau writes), it may send
    /// messages, and `payload` and `restart_policy` are passed through.
    pub fn create_agent(
        &self,
        principal: &str,
        payload: &Value,
        restart_policy: &str,
        secret: &str,
    ) -> Result<String, String> {
        let inputs = self.options.dir.join("operator-input");
        std::fs::create_dir_all(&inputs)
            .map_err(|error| format!("creating {}: {error}", inputs.display()))?;
        let credentials = inputs.join(format!("{}.json", principal.replace('/', "_")));
        // The demo secret, readable by its owner only (like every credential file).
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&credentials)
            .and_then(|mut file| {
                std::io::Write::write_all(
                    &mut file,
                    json!({DEMO_CREDENTIAL: secret}).to_string().as_bytes(),
                )
            })
            .map_err(|error| format!("writing {}: {error}", credentials.display()))?;
        let _config = self
            .config_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.cli(&[
            "agent",
            "create",
            principal,
            "--template",
            DEMO_TEMPLATE,
            "--machine",
            MACHINE,
            "--credentials",
            path_text(&credentials)?,
            "--payload",
            &payload.to_string(),
            "--grant",
            "matrix/send",
            "--restart-policy",
            restart_policy,
        ])
    }

    /// `bureau agent destroy`.
    pub fn destroy_agent(&self, principal: &str) -> Result<String, String> {
        let _config = self
            .config_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.cli(&["agent", "destroy", principal, "--machine", MACHINE])
    }

    /// A read-modify-write of the machine config's assignments, as raw JSON (so malformed ones
    /// can be written too), under [`config_lock`](Self::config_lock). Returns the instant just
    /// before the write was sent.
    pub fn edit_assignments(&self, edit: impl FnOnce(&mut Vec<Value>)) -> Result<Instant, String> {
        let _config = self
            .config_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.runtime.block_on(async {
            let mut config = self
                .operator
                .state_get(&self.config_room, MACHINE_CONFIG, "")
                .await
                .map_err(|error| format!("reading machine_config: {error}"))?
                .unwrap_or_else(|| json!({"principals": []}));
            let mut assignments = config["principals"].as_array().cloned().unwrap_or_default();
            edit(&mut assignments);
            config["principals"] = Value::Array(assignments);
            let published = Instant::now();
            self.operator
                .state_put(&self.config_room, MACHINE_CONFIG, "", &config)
                .await
                .map_err(|error| format!("writing machine_config: {error}"))?;
            Ok(published)
        })
    }

    /// Waits up to `timeout`, reading the config room through `/sync` as a client would, until
    /// `count` events match; returns the matching events.
    pub fn wait_for_events(
        &self,
        timeout: Duration,
        count: usize,
        matches: impl Fn(&Value) -> bool,
    ) -> Result<Vec<Value>, Vec<Value>> {
        self.runtime.block_on(async {
            let filter = json!({"room": {"rooms": [self.config_room.to_string()],
                                         "timeline": {"limit": 500}}});
            let mut sync = SyncStream::new(self.operator.clone(), None, Some(filter))
                .with_poll_timeout(Duration::from_secs(1));
            let mut seen = Vec::new();
            let deadline = Instant::now() + timeout;
            while Instant::now() < deadline {
                let Ok(batch) = sync.next_batch().await else {
                    break;
                };
                seen.extend(
                    batch
                        .timeline_of(&self.config_room)
                        .filter(|event| matches(event))
                        .cloned(),
                );
                if seen.len() >= count {
                    return Ok(seen);
                }
            }
            Err(seen)
        })
    }

    /// `principal`'s state in the machine's latest `m.bureau.machine_status` (`running`,
    /// `stopped`, `failed`), as `bureau list` shows it; `None` before the daemon reported it.
    pub fn reported_state(&self, principal: &str) -> Option<String> {
        self.runtime.block_on(async {
            let alias = self.machine.machine_room_alias();
            let room = self.operator.resolve_alias(&alias).await.ok()??;
            let status = self
                .operator
                .state_get(&room, MACHINE_STATUS, MACHINE)
                .await
                .ok()??;
            status["principals"]
                .as_array()?
                .iter()
                .find(|entry| entry["localpart"] == principal)
                .and_then(|entry| entry["state"].as_str().map(str::to_owned))
        })
    }

    /// The daemon's log so far.
    pub fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.options.dir.join("daemon.log")).unwrap_or_default()
    }

    /// Kills the daemon with SIGKILL (its principals keep running).
    pub fn kill_daemon(&self) -> Result<(), String> {
        let mut daemon = self
            .daemon
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        daemon
            .kill()
            .and_then(|()| daemon.wait().map(drop))
            .map_err(|error| format!("killing the daemon: {error}"))
    }

    /// Starts a new daemon (after [`kill_daemon`](Self::kill_daemon)).
    pub fn restart_daemon(&self) -> Result<(), String> {
        let daemon = spawn_daemon(&self.options)?;
        *self
            .daemon
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = daemon;
        Ok(())
    }

    /// Stops the launcher (SIGTERM: its sandboxes keep running) and starts a new one, which
    /// adopts them from its state file.
    pub fn restart_launcher(&self) -> Result<(), String> {
        let mut launcher = self
            .launcher
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        terminate(&mut launcher);
        *launcher = spawn_launcher(&self.options, None)?;
        Ok(())
    }

    /// Stops every sandbox (through the launcher), then the daemon and the launcher.
    pub fn stop(&self) {
        for sandbox in self.sandboxes() {
            let _ = self.launcher_call(&Request::DestroySandbox {
                principal: sandbox.principal,
                force: false,
            });
        }
        for child in [&self.daemon, &self.launcher] {
            terminate(
                &mut child
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            );
        }
    }

    /// Force-stops `principal`'s sandbox through the launcher (cleanup after a test).
    pub fn force_destroy(&self, principal: &str) {
        if let Ok(principal) = Localpart::parse(principal) {
            let _ = self.launcher_call(&Request::DestroySandbox {
                principal,
                force: true,
            });
        }
    }
}

fn path_text(path: &Path) -> Result<&str, String> {
    path.to_str()
        .ok_or_else(|| format!("{} is not UTF-8", path.display()))
}

/// `bureau ARGS` (the binary at `bureau`) with `session` as its session file and `input` on
/// stdin; a binary that cannot be started gives status 127 and says why on stderr. The tests'
/// CLI runner is this too.
pub fn run_bureau(bureau: &Path, session: &Path, args: &[&str], input: Option<&str>) -> Output {
    use std::io::Write;
    let child = Command::new(bureau)
        .args(args)
        .env("BUREAU_SESSION_FILE", session)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(error) => {
            return Output {
                status: std::os::unix::process::ExitStatusExt::from_raw(127 << 8),
                stdout: Vec::new(),
                stderr: format!("cannot run {}: {error}", bureau.display()).into_bytes(),
            };
        }
    };
    if let (Some(mut stdin), Some(input)) = (child.stdin.take(), input) {
        let _ = stdin.write_all(input.as_bytes());
    }
    child.wait_with_output().unwrap_or_else(|error| Output {
        status: std::os::unix::process::ExitStatusExt::from_raw(1 << 8),
        stdout: Vec::new(),
        stderr: error.to_string().into_bytes(),
    })
}

fn cli_ok(bureau: &Path, session: &Path, args: &[&str]) -> Result<String, String> {
    let output = run_bureau(bureau, session, args, None);
    if output.status.success() {
        Ok(text(&output.stdout))
    } else {
        Err(format!(
            "bureau {} failed:\n{}{}",
            args.join(" "),
            text(&output.stdout),
            text(&output.stderr)
        ))
    }
}

/// Spawns `bureau ARGS` with output appended to `log`, dying with this process (see the module
/// documentation).
fn spawn_with_owner(bureau: &Path, log: &Path, args: &[&str]) -> Result<Child, String> {
    let output = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|error| format!("opening {}: {error}", log.display()))?;
    let mut command = Command::new("setpriv");
    // Their own process group: a Ctrl-C in the terminal reaches only the process that owns the
    // stack, which then stops the sandboxes through the launcher before stopping it.
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    command
        .args(["--pdeathsig", "KILL", "--"])
        .arg(bureau)
        .args(args)
        .stdin(Stdio::null())
        .stderr(
            output
                .try_clone()
                .map_err(|error| format!("opening {}: {error}", log.display()))?,
        )
        .stdout(output);
    let (sender, receiver) = std::sync::mpsc::channel();
    // PR_SET_PDEATHSIG fires when the spawning *thread* ends: spawn from one that never does.
    std::thread::spawn(move || {
        let _ = sender.send(command.spawn());
        loop {
            std::thread::park();
        }
    });
    receiver
        .recv()
        .map_err(|_| "the spawning thread died".to_owned())?
        .map_err(|error| format!("running setpriv {}: {error}", args.join(" ")))
}

/// SIGTERM, then waits for the exit.
fn terminate(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id())
        && let Some(pid) = rustix::process::Pid::from_raw(pid)
    {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
    let _ = child.wait();
}

/// Starts the launcher (first boot when `bootstrap` is given) and waits for its socket.
fn spawn_launcher(options: &StackOptions, bootstrap: Option<&Path>) -> Result<Child, String> {
    let machine_dir = options.machine_dir();
    let socket = MachinePaths::under(&machine_dir).launcher_socket();
    let _ = std::fs::remove_file(&socket);
    let grace = options.grace_seconds.to_string();
    let mut args = vec![
        "launcher",
        "--dir",
        path_text(&machine_dir)?,
        "--grace-seconds",
        &grace,
        "--log-level",
        &options.log_level,
    ];
    if let Some(bootstrap) = bootstrap {
        args.extend(["--bootstrap-file", path_text(bootstrap)?]);
    }
    let log = options.dir.join("launcher.log");
    let launcher = spawn_with_owner(&options.bureau, &log, &args)?;
    if !wait_until(Duration::from_secs(60), Duration::from_millis(20), || {
        socket.exists()
    }) {
        return Err(format!(
            "the launcher did not open {} (see {})",
            socket.display(),
            log.display()
        ));
    }
    Ok(launcher)
}

fn spawn_daemon(options: &StackOptions) -> Result<Child, String> {
    let machine_dir = options.machine_dir();
    let heartbeat = options.heartbeat_seconds.to_string();
    let backoff = options.backoff_max_seconds.to_string();
    spawn_with_owner(
        &options.bureau,
        &options.dir.join("daemon.log"),
        &[
            "daemon",
            "--dir",
            path_text(&machine_dir)?,
            "--heartbeat-seconds",
            &heartbeat,
            "--backoff-max-seconds",
            &backoff,
            "--log-level",
            &options.log_level,
        ],
    )
}

/// Polls `condition` every `interval` until it holds (`true`) or `timeout` passes (`false`).
pub fn wait_until(timeout: Duration, interval: Duration, condition: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while !condition() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(interval);
    }
    true
}

/// Whether `event` is an outcome message of `kind` about `principal`.
pub fn is_outcome(event: &Value, kind: &str, principal: &str) -> bool {
    let outcome = &event["content"]["m.bureau.outcome"];
    outcome["kind"] == kind && outcome["principal"] == principal
}
