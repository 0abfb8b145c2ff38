//! Running instances: [`LocalHomeserver`] (owned: stopped on drop, or when its owner dies) and
//! [`InstanceInfo`] (a description that can be saved, and stops a detached instance).

use std::fmt;
use std::fs;
use std::io::{ErrorKind, PipeWriter, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

use rustix::process::Signal;
use serde::{Deserialize, Serialize};

use super::config::{self, HomeserverConfig};
use super::http::versions_ready;
use super::process::{file_tail, is_alive, output_detail, runs_config, signal_group, tail_lines};
use super::{HomeserverError, SYNAPSE_VERSION, cache_dir, install};

/// How long a stop waits after SIGTERM before it sends SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Prefix of the data directories made for instances without one; the rest is
/// `OWNER_PID-SEQUENCE`, so leftovers of dead owners can be recognised and removed.
const FRESH_PREFIX: &str = "bureau-homeserver-";

/// The data directory's record of the running Synapse's pid.
const PID_FILE: &str = "synapse.pid";

/// `DATA_DIR/launch.py MODE CONFIG`: runs Synapse's `synapse.app.homeserver` main module after
/// arranging its lifetime:
/// - `owned`: stdin is a pipe from the owner, which never writes; EOF means the owner closed it
///   or died (even by SIGKILL), and Synapse then stops itself with SIGTERM. Stdin is moved to a
///   private descriptor first so Synapse sees `/dev/null`.
/// - `detached`: a new session (no controlling terminal, no signals from the caller's terminal),
///   so the instance outlives the process that started it.
const LAUNCHER: &str = r#"# Written by bureau::homeserver (src/homeserver/instance.rs) on every start.
import os, runpy, signal, sys, threading
mode, config = sys.argv[1], sys.argv[2]
if mode == "detached":
    os.setsid()
else:
    lifeline = os.dup(0)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    def watch():
        try:
            while os.read(lifeline, 64):
                pass
        except OSError:
            pass
        os.kill(os.getpid(), signal.SIGTERM)
    threading.Thread(target=watch, name="bureau-lifeline", daemon=True).start()
sys.argv = ["synapse.app.homeserver", "-c", config]
runpy.run_module("synapse.app.homeserver", run_name="__main__", alter_sys=True)
"#;

/// A running instance, as data: enough to reach it, register users on it and stop it, from this
/// process or another one (see [`InstanceInfo::save`] and [`InstanceInfo::load`]).
#[derive(Clone, Serialize, Deserialize)]
pub struct InstanceInfo {
    /// Synapse's process id (it leads its own process group).
    pub pid: u32,
    /// The client-API port on `127.0.0.1`.
    pub port: u16,
    /// The Matrix server name.
    pub server_name: String,
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// The data directory (database, config, signing key, logs).
    pub data_dir: PathBuf,
    /// The venv Synapse runs from.
    pub venv: PathBuf,
    /// The `registration_shared_secret`.
    pub shared_secret: String,
    /// The Synapse version.
    pub synapse_version: String,
}

impl fmt::Debug for InstanceInfo {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("InstanceInfo")
            .field("pid", &self.pid)
            .field("port", &self.port)
            .field("server_name", &self.server_name)
            .field("base_url", &self.base_url)
            .field("data_dir", &self.data_dir)
            .field("venv", &self.venv)
            .field("shared_secret", &"<redacted>")
            .field("synapse_version", &self.synapse_version)
            .finish()
    }
}

impl InstanceInfo {
    /// `DATA_DIR/homeserver.yaml`.
    pub fn config_path(&self) -> PathBuf {
        self.data_dir.join("homeserver.yaml")
    }

    /// Synapse's own log, `DATA_DIR/homeserver.log`.
    pub fn log_path(&self) -> PathBuf {
        self.data_dir.join("homeserver.log")
    }

    /// Synapse's stdout and stderr (start-up errors land here), `DATA_DIR/stdout.log`.
    pub fn stdout_path(&self) -> PathBuf {
        self.data_dir.join("stdout.log")
    }

    /// Whether the process is alive and is this instance's Synapse (not a reused pid).
    pub fn is_running(&self) -> bool {
        runs_config(self.pid, &self.config_path())
    }

    /// Whether the process runs and `/_matrix/client/versions` answers 200.
    pub fn is_ready(&self) -> bool {
        self.is_running() && versions_ready(self.port)
    }

    /// Creates the account `@user:SERVER_NAME` with the shared secret, through the venv's
    /// `register_new_matrix_user`. A user that exists already is [`HomeserverError::UserExists`].
    /// Takes about a second (a Python start-up).
    pub fn register(&self, user: &str, password: &str, admin: bool) -> Result<(), HomeserverError> {
        let register_error = |detail: String| HomeserverError::Register {
            user: user.to_owned(),
            server_name: self.server_name.clone(),
            detail,
        };
        if !self.is_running() {
            return Err(register_error(format!(
                "the homeserver (pid {}) is not running",
                self.pid
            )));
        }
        // The password goes through a private file and the shared secret through the config
        // file, never through argv (which every local user can read in /proc).
        let password_file = self.data_dir.join(format!(
            "register-password-{}-{}.tmp",
            std::process::id(),
            SEQUENCE.fetch_add(1, Ordering::Relaxed)
        ));
        let write = fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode_private()
            .open(&password_file)
            .and_then(|mut file| file.write_all(password.as_bytes()));
        if let Err(source) = write {
            let _ = fs::remove_file(&password_file);
            return Err(HomeserverError::io("write", password_file, source));
        }
        let program = self.venv.join("bin/register_new_matrix_user");
        let output = Command::new(&program)
            .arg("--user")
            .arg(user)
            .arg("--password-file")
            .arg(&password_file)
            .arg(if admin { "--admin" } else { "--no-admin" })
            .arg("--config")
            .arg(self.config_path())
            .arg(&self.base_url)
            .stdin(Stdio::null())
            .output();
        let _ = fs::remove_file(&password_file);
        let output = output.map_err(|source| {
            register_error(format!("cannot run {}: {source}", program.display()))
        })?;
        if output.status.success() {
            return Ok(());
        }
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        if printed.contains("User ID already taken") || printed.contains("M_USER_IN_USE") {
            return Err(HomeserverError::UserExists {
                user: user.to_owned(),
                server_name: self.server_name.clone(),
            });
        }
        Err(register_error(format!(
            "{} {}",
            program.display(),
            output_detail(&output)
        )))
    }

    /// Stops the instance: SIGTERM to its process group, up to 10 s for a clean shutdown, then
    /// SIGKILL. Stopping an instance that does not run does nothing. For an instance that is not
    /// this process's child (a detached one) the exit is observed through `/proc`.
    pub fn stop(&self) -> Result<(), HomeserverError> {
        if !self.is_running() {
            return Ok(());
        }
        let stop_error = |source| HomeserverError::Stop {
            pid: self.pid,
            source,
        };
        signal_group(self.pid, Signal::TERM).map_err(stop_error)?;
        if wait_for_exit(self.pid, STOP_GRACE) {
            return Ok(());
        }
        // `runs_config` again: the pid may have been reused between the two checks.
        if self.is_running() {
            signal_group(self.pid, Signal::KILL).map_err(stop_error)?;
        }
        if wait_for_exit(self.pid, Duration::from_secs(5)) {
            Ok(())
        } else {
            Err(stop_error(std::io::Error::other(
                "still alive 5 s after SIGKILL",
            )))
        }
    }

    /// Writes this description as JSON to `path`, readable by the owner only (it holds the
    /// shared secret).
    pub fn save(&self, path: &Path) -> Result<(), HomeserverError> {
        let json = serde_json::to_string_pretty(self).map_err(|error| HomeserverError::State {
            path: path.to_path_buf(),
            detail: error.to_string(),
        })?;
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .map_err(|source| HomeserverError::io("create", parent, source))?;
        }
        let temporary = path.with_extension("tmp");
        fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode_private()
            .open(&temporary)
            .and_then(|mut file| file.write_all(format!("{json}\n").as_bytes()))
            .and_then(|()| fs::rename(&temporary, path))
            .map_err(|source| HomeserverError::io("write", path, source))
    }

    /// Reads a description written by [`InstanceInfo::save`]; `Ok(None)` when there is none.
    pub fn load(path: &Path) -> Result<Option<Self>, HomeserverError> {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(HomeserverError::io("read", path, source)),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|error| HomeserverError::State {
                path: path.to_path_buf(),
                detail: error.to_string(),
            })
    }
}

/// A Synapse instance owned by this process, stopped when dropped.
///
/// It also stops when this process dies without dropping it (a `static`, a panic that aborts, a
/// SIGKILL): Synapse watches a pipe from this process and shuts down at its EOF. A data directory
/// the instance made itself is removed on drop (and, if the owner died instead, by a later start).
pub struct LocalHomeserver {
    info: InstanceInfo,
    config: HomeserverConfig,
    child: Option<Child>,
    /// The write end of Synapse's stdin; never written, closed to say "the owner is gone".
    lifeline: Option<PipeWriter>,
    remove_data_dir: bool,
}

impl fmt::Debug for LocalHomeserver {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("LocalHomeserver")
            .field("info", &self.info)
            .field("running", &self.child.is_some())
            .finish_non_exhaustive()
    }
}

impl LocalHomeserver {
    /// Installs Synapse if needed, writes the configuration, starts Synapse and waits until
    /// `/_matrix/client/versions` answers (2–4 s on an installed venv; the first install adds
    /// 25–40 s). Errors carry the end of Synapse's logs.
    pub fn start(config: HomeserverConfig) -> Result<Self, HomeserverError> {
        let (venv, data_dir, created) = prepare(&config)?;
        let launched = launch(&config, &venv, &data_dir, Mode::Owned)
            .inspect_err(|error| discard_failed(&data_dir, created, error))?;
        Ok(Self {
            info: launched.info,
            config,
            child: Some(launched.child),
            lifeline: launched.lifeline,
            remove_data_dir: created,
        })
    }

    /// Starts an instance that outlives this process (own session, no lifeline); it keeps running
    /// until [`InstanceInfo::stop`]. A fresh data directory (no `data_dir` given) is removed by a
    /// later start once the instance has stopped. This is `cargo xtask homeserver up`.
    pub fn start_detached(config: HomeserverConfig) -> Result<InstanceInfo, HomeserverError> {
        let (venv, data_dir, created) = prepare(&config)?;
        let launched = launch(&config, &venv, &data_dir, Mode::Detached)
            .inspect_err(|error| discard_failed(&data_dir, created, error))?;
        // Dropping a `Child` neither kills nor waits: the instance runs on, and is reaped by
        // init once this process has exited.
        drop(launched.child);
        Ok(launched.info)
    }

    /// Everything needed to reach the instance.
    pub fn info(&self) -> &InstanceInfo {
        &self.info
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        self.info.base_url.clone()
    }

    /// The Matrix server name (`@user:SERVER_NAME`).
    pub fn server_name(&self) -> &str {
        &self.info.server_name
    }

    /// The client-API port on `127.0.0.1`.
    pub fn port(&self) -> u16 {
        self.info.port
    }

    /// The `registration_shared_secret` (for shared-secret registration over HTTP).
    pub fn shared_secret(&self) -> &str {
        &self.info.shared_secret
    }

    /// The data directory (database, config, signing key, `homeserver.log`, `stdout.log`).
    pub fn data_dir(&self) -> &Path {
        &self.info.data_dir
    }

    /// Synapse's process id (also its process group id). After [`LocalHomeserver::stop`] it is
    /// the pid the instance had.
    pub fn pid(&self) -> u32 {
        self.info.pid
    }

    /// Whether Synapse runs and answers `/_matrix/client/versions`.
    pub fn is_ready(&self) -> bool {
        self.child.is_some() && self.info.is_ready()
    }

    /// Creates `@user:SERVER_NAME` (see [`InstanceInfo::register`]).
    pub fn register(&self, user: &str, password: &str, admin: bool) -> Result<(), HomeserverError> {
        self.info.register(user, password, admin)
    }

    /// Stops Synapse: SIGTERM to its process group, up to 10 s, then SIGKILL; reaps it. The data
    /// directory stays until drop. Stopping a stopped instance does nothing.
    pub fn stop(&mut self) -> Result<(), HomeserverError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let result = stop_child(&mut child, self.info.pid);
        // Closed only now: Synapse would take EOF as a second SIGTERM.
        self.lifeline = None;
        result
    }

    /// Stops Synapse and starts it again on the same port with the same data directory: users,
    /// rooms and tokens survive. The pid changes.
    pub fn restart(&mut self) -> Result<(), HomeserverError> {
        self.stop()?;
        let config = HomeserverConfig {
            port: Some(self.info.port),
            data_dir: Some(self.info.data_dir.clone()),
            shared_secret: Some(self.info.shared_secret.clone()),
            ..self.config.clone()
        };
        let launched = launch(&config, &self.info.venv, &self.info.data_dir, Mode::Owned)?;
        self.info = launched.info;
        self.child = Some(launched.child);
        self.lifeline = launched.lifeline;
        Ok(())
    }
}

impl Drop for LocalHomeserver {
    fn drop(&mut self) {
        // Nothing to report to: a failed stop leaves a process the lifeline still ends.
        let _ = self.stop();
        if self.remove_data_dir {
            let _ = fs::remove_dir_all(&self.info.data_dir);
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Owned,
    Detached,
}

struct Launched {
    info: InstanceInfo,
    child: Child,
    lifeline: Option<PipeWriter>,
}

/// Distinguishes the names this process makes (data directories, password files).
static SEQUENCE: AtomicU32 = AtomicU32::new(0);

/// The venv (installed if needed) and the data directory (made if not given, with whether it
/// was made here).
fn prepare(config: &HomeserverConfig) -> Result<(PathBuf, PathBuf, bool), HomeserverError> {
    config.validate()?;
    let cache = config.cache_dir.clone().unwrap_or_else(cache_dir);
    let venv = install(&cache)?;
    match &config.data_dir {
        Some(dir) => {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|source| HomeserverError::io("create the data directory", dir, source))?;
            Ok((venv, dir.clone(), false))
        }
        None => Ok((venv, fresh_data_dir()?, true)),
    }
}

/// Removes a data directory made for a start that failed, unless it holds the logs the error
/// points to.
fn discard_failed(data_dir: &Path, created: bool, error: &HomeserverError) {
    let has_logs = matches!(
        error,
        HomeserverError::ExitedDuringStart { .. } | HomeserverError::StartTimeout { .. }
    );
    if created && !has_logs {
        let _ = fs::remove_dir_all(data_dir);
    }
}

/// A new private directory on tmpfs (SQLite's fsyncs dominate on disk), else in the temp dir.
fn fresh_data_dir() -> Result<PathBuf, HomeserverError> {
    let mut last_error = None;
    for base in [PathBuf::from("/dev/shm"), std::env::temp_dir()] {
        if !base.is_dir() {
            continue;
        }
        remove_abandoned_data_dirs(&base);
        loop {
            let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
            let dir = base.join(format!("{FRESH_PREFIX}{}-{sequence}", std::process::id()));
            match fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => return Ok(dir),
                Err(error) if error.kind() == ErrorKind::AlreadyExists => continue,
                Err(error) => {
                    last_error = Some((dir, error));
                    break;
                }
            }
        }
    }
    let (dir, source) = last_error.unwrap_or_else(|| {
        (
            std::env::temp_dir(),
            std::io::Error::from(ErrorKind::NotFound),
        )
    });
    Err(HomeserverError::io(
        "create the data directory",
        dir,
        source,
    ))
}

/// Removes fresh data directories whose owner process is gone and whose Synapse does not run
/// (left by a test binary that was killed, or by a stopped detached instance).
fn remove_abandoned_data_dirs(base: &Path) {
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(owner) = name
            .to_str()
            .and_then(|name| name.strip_prefix(FRESH_PREFIX))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(owner, _)| owner.parse::<u32>().ok())
        else {
            continue;
        };
        let dir = entry.path();
        if owner == std::process::id() || is_alive(owner) {
            continue;
        }
        let synapse = fs::read_to_string(dir.join(PID_FILE))
            .ok()
            .and_then(|pid| pid.trim().parse::<u32>().ok());
        if synapse.is_some_and(|pid| runs_config(pid, &dir.join("homeserver.yaml"))) {
            continue;
        }
        let _ = fs::remove_dir_all(&dir);
    }
}

/// Writes the configuration, spawns Synapse and waits until it answers. Without a fixed port a
/// free one is picked, and picked again if another process took it before Synapse bound it.
fn launch(
    config: &HomeserverConfig,
    venv: &Path,
    data_dir: &Path,
    mode: Mode,
) -> Result<Launched, HomeserverError> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let port = match config.port {
            Some(port) => {
                check_port_free(port)?;
                port
            }
            None => free_port()?,
        };
        let written = config::write_files(config, venv, data_dir, port)?;
        let info = InstanceInfo {
            pid: 0,
            port,
            server_name: config.server_name.clone(),
            base_url: format!("http://127.0.0.1:{port}"),
            data_dir: data_dir.to_path_buf(),
            venv: venv.to_path_buf(),
            shared_secret: written.shared_secret,
            synapse_version: SYNAPSE_VERSION.to_owned(),
        };
        let (mut child, lifeline) = spawn(&info, &written.config, mode)?;
        let info = InstanceInfo {
            pid: child.id(),
            ..info
        };
        // For `remove_abandoned_data_dirs`: a directory whose Synapse runs is never removed.
        let pid_file = data_dir.join(PID_FILE);
        if let Err(source) = fs::write(&pid_file, format!("{}\n", info.pid)) {
            let _ = stop_child(&mut child, info.pid);
            return Err(HomeserverError::io("write", pid_file, source));
        }
        match wait_ready(&mut child, &info, config.start_timeout) {
            Ok(()) => {
                return Ok(Launched {
                    info,
                    child,
                    lifeline,
                });
            }
            Err(HomeserverError::ExitedDuringStart { log_tail, .. })
                if config.port.is_none()
                    && attempts < 3
                    && log_tail.contains("Address already in use") =>
            {
                continue;
            }
            Err(error) => return Err(error),
        }
    }
}

fn spawn(
    info: &InstanceInfo,
    config_path: &Path,
    mode: Mode,
) -> Result<(Child, Option<PipeWriter>), HomeserverError> {
    let stdout_path = info.stdout_path();
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&stdout_path)
        .and_then(|mut log| {
            writeln!(
                log,
                "--- bureau: starting Synapse {SYNAPSE_VERSION} on 127.0.0.1:{} ---",
                info.port
            )?;
            Ok(log)
        })
        .map_err(|source| HomeserverError::io("open", &stdout_path, source))?;
    let log_error = |source| HomeserverError::io("open", &stdout_path, source);
    // A file rather than `-c`, so `ps` shows `python …/launch.py owned …/homeserver.yaml`.
    let launcher = info.data_dir.join("launch.py");
    fs::write(&launcher, LAUNCHER)
        .map_err(|source| HomeserverError::io("write", &launcher, source))?;
    let mut command = Command::new(info.venv.join("bin/python"));
    command
        .arg(&launcher)
        .arg(match mode {
            Mode::Owned => "owned",
            Mode::Detached => "detached",
        })
        .arg(config_path)
        .current_dir(&info.data_dir)
        .stdout(log.try_clone().map_err(log_error)?)
        .stderr(log);
    let lifeline = match mode {
        Mode::Owned => {
            // Both ends are close-on-exec here, so no other child inherits the write end; the
            // read end becomes Synapse's stdin.
            let (reader, writer) = std::io::pipe()
                .map_err(|source| HomeserverError::io("create a pipe for", config_path, source))?;
            command.stdin(reader).process_group(0);
            Some(writer)
        }
        Mode::Detached => {
            command.stdin(Stdio::null());
            None
        }
    };
    let child = command.spawn().map_err(|source| HomeserverError::Tool {
        program: info.venv.join("bin/python").display().to_string(),
        detail: format!("cannot start Synapse: {source}"),
    })?;
    Ok((child, lifeline))
}

/// Polls `/_matrix/client/versions` until it answers 200, Synapse exits, or `timeout` passes
/// (then Synapse is killed).
fn wait_ready(
    child: &mut Child,
    info: &InstanceInfo,
    timeout: Duration,
) -> Result<(), HomeserverError> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                return Err(HomeserverError::ExitedDuringStart {
                    pid: info.pid,
                    status: describe_status(status),
                    data_dir: info.data_dir.clone(),
                    log_tail: logs_tail(info),
                });
            }
            Ok(None) => {}
            Err(source) => return Err(HomeserverError::io("wait for", &info.data_dir, source)),
        }
        if versions_ready(info.port) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let _ = stop_child(child, info.pid);
            return Err(HomeserverError::StartTimeout {
                pid: info.pid,
                url: info.base_url.clone(),
                seconds: timeout.as_secs(),
                data_dir: info.data_dir.clone(),
                log_tail: logs_tail(info),
            });
        }
        sleep(Duration::from_millis(50));
    }
}

/// The ends of `stdout.log` and `homeserver.log`, labelled.
fn logs_tail(info: &InstanceInfo) -> String {
    format!(
        "== stdout.log ==\n{}\n== homeserver.log ==\n{}",
        file_tail(&info.stdout_path(), 25),
        tail_lines(&file_tail(&info.log_path(), 25), 25)
    )
}

fn describe_status(status: std::process::ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => status.to_string(),
    }
}

/// SIGTERM to the child's process group, up to [`STOP_GRACE`] for it to exit, then SIGKILL;
/// always reaps it.
fn stop_child(child: &mut Child, pid: u32) -> Result<(), HomeserverError> {
    let stop_error = |source| HomeserverError::Stop { pid, source };
    if child.try_wait().map_err(stop_error)?.is_some() {
        return Ok(());
    }
    // ESRCH: it exited between the check and the signal; the wait below reaps it.
    let _ = signal_group(pid, Signal::TERM);
    let deadline = Instant::now() + STOP_GRACE;
    while Instant::now() < deadline {
        if child.try_wait().map_err(stop_error)?.is_some() {
            return Ok(());
        }
        sleep(Duration::from_millis(20));
    }
    let _ = signal_group(pid, Signal::KILL);
    child.wait().map_err(stop_error)?;
    Ok(())
}

/// Polls `/proc` until `pid` has exited (or is a zombie), at most `timeout`.
fn wait_for_exit(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while is_alive(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        sleep(Duration::from_millis(20));
    }
    true
}

/// A port on 127.0.0.1 that was free a moment ago (the kernel's pick for port 0).
fn free_port() -> Result<u16, HomeserverError> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(|source| HomeserverError::io("bind", "127.0.0.1:0", source))
}

fn check_port_free(port: u16) -> Result<(), HomeserverError> {
    match TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == ErrorKind::AddrInUse => {
            Err(HomeserverError::PortInUse { port })
        }
        Err(source) => Err(HomeserverError::io(
            "bind",
            format!("127.0.0.1:{port}"),
            source,
        )),
    }
}

/// `mode(0o600)` for the files that hold secrets.
trait PrivateMode {
    fn mode_private(&mut self) -> &mut Self;
}

impl PrivateMode for fs::OpenOptions {
    fn mode_private(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::mode(self, 0o600)
    }
}
