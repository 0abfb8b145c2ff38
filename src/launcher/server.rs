//! The launcher's server: answers [`ipc::Request`]s by starting, watching and stopping each
//! principal's proxy and sandbox, and keeps a state file so a restarted launcher finds the
//! principals that kept running.
//!
//! Invariant: a create either leaves a running proxy + sandbox and a record, or nothing at all
//! (a failure after the proxy started stops it again and removes its sockets). Credential
//! values exist only in this process (decrypted, in [`Secret`]s) and in the proxy; they are
//! written to the proxy's stdin pipe and to its admin socket, never to a file or argv.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use rustix::process::Signal;
use serde::{Deserialize, Serialize};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

use super::children::{Watched, applet_command, has_exited, last_lines, process_start_time};
use super::ipc::{self, CreateSandbox, Request, Response, SandboxInfo};
use super::spec::{SpecInputs, build_spec};
use crate::machine::{MachineIdentity, MachinePaths};
use crate::naming::{Localpart, admin_socket_path, proxy_socket_path};
use crate::proxy::payload::Grant;
use crate::proxy::service::ServiceConfig;
use crate::proxy_call::{self, ProxyRequest};
use crate::schema::{Credentials, MATRIX_TOKEN_CREDENTIAL, now_ms};
use crate::sealed::{self, MachineKey};
use crate::secret::{Secret, zeroize};

/// How long a new proxy may take to open its sockets.
const PROXY_START_TIMEOUT: Duration = Duration::from_secs(10);

/// How the launcher is set up.
#[derive(Debug)]
pub struct LauncherConfig {
    /// Where its files live.
    pub paths: MachinePaths,
    /// The machine it runs on.
    pub identity: MachineIdentity,
    /// The machine's age key (decrypts credential bundles).
    pub key: MachineKey,
    /// The `bureau` executable to run proxies and sandboxes with.
    pub bureau_binary: PathBuf,
    /// The host uid/gid sandboxes map to (`None`: the launcher's own).
    pub host_ids: Option<(u32, u32)>,
    /// How long a sandbox gets between SIGTERM and SIGKILL.
    pub grace: Duration,
}

/// One principal's running (or exited, not yet destroyed) proxy and sandbox.
#[derive(Debug)]
struct Entry {
    info: SandboxInfo,
    sandbox_start_time: u64,
    proxy_start_time: u64,
    /// The sandbox's exit once known: `(exit_code, last_lines)`.
    exit: watch::Receiver<Option<(i32, Vec<String>)>>,
    /// The sandbox and its proxy; `None` once found gone (after a launcher restart).
    sandbox: Option<Arc<Watched>>,
    proxy: Option<Arc<Watched>>,
}

/// What the state file keeps per sandbox.
#[derive(Debug, Serialize, Deserialize)]
struct StateRecord {
    info: SandboxInfo,
    sandbox_start_time: u64,
    proxy_start_time: u64,
}

/// The launcher: its configuration and table of sandboxes.
#[derive(Debug)]
pub struct Launcher {
    config: LauncherConfig,
    table: Mutex<BTreeMap<Localpart, Entry>>,
    /// Principals a create or destroy is working on (across its awaits): a second request for
    /// the same principal is refused rather than interleaved.
    busy: Mutex<BTreeSet<Localpart>>,
}

/// Marks a principal busy until dropped.
struct BusyGuard<'a> {
    launcher: &'a Launcher,
    principal: Localpart,
}

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        self.launcher
            .busy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.principal);
    }
}

fn error(message: impl Into<String>) -> Response {
    Response::Error {
        message: message.into(),
    }
}

impl Launcher {
    /// A launcher that adopts whatever its state file says is still running.
    pub fn new(config: LauncherConfig) -> Arc<Self> {
        let launcher = Arc::new(Self {
            config,
            table: Mutex::new(BTreeMap::new()),
            busy: Mutex::new(BTreeSet::new()),
        });
        launcher.adopt_from_state_file();
        launcher
    }

    fn table(&self) -> MutexGuard<'_, BTreeMap<Localpart, Entry>> {
        // A panic while holding the lock cannot leave the map half-updated (every update is a
        // single insert or remove), so a poisoned lock is still usable.
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Claims `principal` for one create or destroy; `Err` (a response) when another is under
    /// way.
    fn claim(&self, principal: &Localpart) -> Result<BusyGuard<'_>, Response> {
        let fresh = self
            .busy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(principal.clone());
        if fresh {
            Ok(BusyGuard {
                launcher: self,
                principal: principal.clone(),
            })
        } else {
            Err(error(format!(
                "another request for {principal} is under way; retry when it is done"
            )))
        }
    }

    fn status_file(&self, principal: &Localpart) -> PathBuf {
        self.config.paths.principal_dir(principal).join("status")
    }

    fn output_log(&self, principal: &Localpart) -> PathBuf {
        self.config
            .paths
            .principal_dir(principal)
            .join("output.log")
    }

    /// Serves `listener` until the task is dropped: one task per connection.
    pub async fn serve(self: Arc<Self>, listener: UnixListener) {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(accept_error) => {
                    tracing::warn!(%accept_error, "accepting a launcher connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let launcher = Arc::clone(&self);
            tokio::spawn(async move { launcher.connection(stream).await });
        }
    }

    async fn connection(self: Arc<Self>, mut stream: UnixStream) {
        let response = match ipc::read_message(&mut stream).await {
            Ok(bytes) => match ipc::decode::<Request>(&bytes) {
                Ok(request) => self.handle(request).await,
                Err(decode_error) => error(decode_error.to_string()),
            },
            Err(read_error) => error(read_error.to_string()),
        };
        match ipc::encode(&response) {
            Ok(bytes) => {
                if let Err(write_error) = ipc::write_message(&mut stream, &bytes).await {
                    tracing::debug!(%write_error, "launcher client went away before the answer");
                }
            }
            Err(encode_error) => tracing::error!(%encode_error, "cannot encode a response"),
        }
    }

    /// Answers one request.
    pub async fn handle(self: &Arc<Self>, request: Request) -> Response {
        match request {
            Request::Status => Response::Status {
                version: env!("CARGO_PKG_VERSION").to_owned(),
                pid: std::process::id(),
                machine: self.config.identity.machine.to_string(),
                sandboxes: u32::try_from(self.table().len()).unwrap_or(u32::MAX),
            },
            Request::ListSandboxes => Response::Sandboxes {
                sandboxes: self
                    .table()
                    .values()
                    .map(|entry| entry.info.clone())
                    .collect(),
            },
            Request::CreateSandbox(create) => self.create(*create).await,
            Request::DestroySandbox { principal, force } => self.destroy(&principal, force).await,
            Request::SignalSandbox { principal, signal } => self.signal(&principal, signal),
            Request::WaitSandbox { principal } => self.wait(&principal).await,
            Request::UpdatePayload {
                principal,
                payload_json,
            } => self.update_payload(&principal, &payload_json),
            Request::DecryptCredentials {
                principal,
                credentials,
            } => self.rotate_credentials(&principal, &credentials).await,
            Request::UpdateGrants { principal, grants } => {
                self.update_grants(&principal, &grants).await
            }
        }
    }

    async fn create(self: &Arc<Self>, create: CreateSandbox) -> Response {
        let principal = create.principal.clone();
        let _busy = match self.claim(&principal) {
            Ok(guard) => guard,
            Err(refusal) => return refusal,
        };
        let stale = {
            let table = self.table();
            match table.get(&principal) {
                Some(entry) if entry.info.exit_code.is_none() => {
                    return error(format!(
                        "{principal} already runs (pid {}); destroy it first",
                        entry.info.pid
                    ));
                }
                Some(_) => true,
                None => false,
            }
        };
        if stale {
            // An exited sandbox nobody destroyed yet: clear its proxy before starting anew.
            self.destroy_claimed(&principal, true).await;
        }
        match self.start(&create).await {
            Ok(entry) => {
                let sandbox = entry.info.clone();
                self.table().insert(principal, entry);
                self.save_state();
                Response::Created { sandbox }
            }
            Err(message) => error(format!("cannot start {principal}: {message}")),
        }
    }

    /// Starts the proxy, then the sandbox; undoes the proxy if the sandbox cannot start.
    async fn start(self: &Arc<Self>, create: &CreateSandbox) -> Result<Entry, String> {
        let principal = &create.principal;
        let paths = &self.config.paths;
        Localpart::parse_for_run_dir(principal.as_str(), &paths.run_dir)
            .map_err(|name_error| name_error.to_string())?;
        let principal_dir = paths.principal_dir(principal);
        let workspace = paths.workspace(principal);
        for dir in [&principal_dir, &workspace] {
            std::fs::create_dir_all(dir)
                .map_err(|io_error| format!("creating {}: {io_error}", dir.display()))?;
        }
        let payload_file = principal_dir.join("payload.json");
        write_in_place(&payload_file, create.payload_json.as_bytes())?;
        let _ = std::fs::remove_file(self.status_file(principal));

        let credentials = match &create.credentials {
            Some(bundle) => sealed::open(bundle, &self.config.key)
                .map_err(|seal_error| seal_error.to_string())?,
            None => BTreeMap::new(),
        };
        let proxy = self
            .start_proxy(principal, credentials, &create.grants, &principal_dir)
            .await?;
        match self
            .start_sandbox(create, &payload_file, &workspace, &principal_dir)
            .await
        {
            Ok((sandbox, sandbox_start_time)) => {
                let info = SandboxInfo {
                    principal: principal.clone(),
                    pid: sandbox.pid,
                    proxy_pid: proxy.pid,
                    config_hash: create.config_hash.clone(),
                    started_at_ms: now_ms(),
                    exit_code: None,
                };
                let proxy_start_time = process_start_time(proxy.pid).unwrap_or(0);
                Ok(self.entry(info, sandbox_start_time, proxy_start_time, sandbox, proxy))
            }
            Err(message) => {
                self.stop_proxy(principal, Some(&proxy)).await;
                Err(message)
            }
        }
    }

    async fn start_proxy(
        &self,
        principal: &Localpart,
        mut credentials: BTreeMap<String, Secret>,
        grants: &[Grant],
        principal_dir: &Path,
    ) -> Result<Watched, String> {
        let run_dir = &self.config.paths.run_dir;
        let socket = proxy_socket_path(run_dir, principal);
        let admin = admin_socket_path(run_dir, principal);
        if let Some(parent) = socket.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|io_error| format!("creating {}: {io_error}", parent.display()))?;
        }
        let token = credentials.remove(MATRIX_TOKEN_CREDENTIAL);
        let identity = &self.config.identity;
        let user_id = identity.user_id_of(principal);
        let mut payload = encode_proxy_payload(
            token
                .as_ref()
                .map(|token| (identity.homeserver_url.as_str(), user_id.as_str(), token)),
            &credentials,
            grants,
        )?;
        let log = principal_dir.join("proxy.log");
        let mut command = applet_command(&self.config.bureau_binary, "proxy", &log)
            .map_err(|io_error| format!("opening {}: {io_error}", log.display()))?;
        command
            .arg("--socket")
            .arg(&socket)
            .arg("--admin-socket")
            .arg(&admin)
            .stdin(std::process::Stdio::piped());
        let spawned = command.spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(spawn_error) => {
                zeroize(&mut payload);
                return Err(format!("starting its proxy: {spawn_error}"));
            }
        };
        let stdin = child.stdin.take();
        let watched = match Watched::spawned_or_killed(child, "its proxy") {
            Ok(watched) => watched,
            Err(message) => {
                zeroize(&mut payload);
                return Err(message);
            }
        };
        // Written without blocking the launcher's one thread: a proxy that does not read its
        // stdin must not freeze every other request.
        let written = match stdin {
            Some(stdin) => {
                tokio::time::timeout(PROXY_START_TIMEOUT, write_payload(stdin, &payload)).await
            }
            None => Ok(Err(std::io::Error::other("no stdin pipe"))),
        };
        zeroize(&mut payload);
        let write_error = match written {
            Ok(Ok(())) => None,
            Ok(Err(io_error)) => Some(io_error.to_string()),
            Err(_) => Some("it did not read it in time".to_owned()),
        };
        if let Some(write_error) = write_error {
            let _ = watched.signal(Signal::KILL);
            watched.exited(None).await;
            return Err(format!("handing the payload to its proxy: {write_error}"));
        }
        let deadline = tokio::time::Instant::now() + PROXY_START_TIMEOUT;
        // The proxy binds both sockets before it serves either; poll until the admin socket
        // answers (a fresh proxy takes a few milliseconds) or the proxy gives up. An exited
        // proxy is checked first, so a stale socket can never pass for the new proxy's.
        loop {
            if has_exited(watched.pid) || tokio::time::Instant::now() > deadline {
                let _ = watched.signal(Signal::KILL);
                watched.exited(None).await;
                return Err(format!(
                    "its proxy did not open {} ({}): {}",
                    admin.display(),
                    log.display(),
                    last_lines(&log).join(" | ")
                ));
            }
            if UnixStream::connect(&admin).await.is_ok() && socket.exists() {
                // The proxy's agent socket is 0600: hand it to the user the sandbox runs as.
                if let Some((uid, gid)) = self.config.host_ids {
                    use rustix::fs::{Gid, Uid};
                    let owner = (Uid::from_raw(uid), Gid::from_raw(gid));
                    if let Err(errno) = rustix::fs::chown(&socket, Some(owner.0), Some(owner.1)) {
                        let _ = watched.signal(Signal::KILL);
                        watched.exited(None).await;
                        return Err(format!(
                            "handing {} to uid {uid}: {errno}",
                            socket.display()
                        ));
                    }
                }
                return Ok(watched);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn start_sandbox(
        &self,
        create: &CreateSandbox,
        payload_file: &Path,
        workspace: &Path,
        principal_dir: &Path,
    ) -> Result<(Watched, u64), String> {
        let principal = &create.principal;
        // The services come from the template itself, never from a second list beside it.
        for (name, service) in &services_of(&create.template) {
            let body = serde_json::to_vec(service).map_err(|json| json.to_string())?;
            admin_put(
                &admin_socket_path(&self.config.paths.run_dir, principal),
                &format!("/v1/admin/services/{name}"),
                Bytes::from(body),
            )
            .await
            .map_err(|message| format!("configuring service {name:?} in its proxy: {message}"))?;
        }
        let proxy_socket = proxy_socket_path(&self.config.paths.run_dir, principal);
        let spec = build_spec(&SpecInputs {
            principal,
            template: &create.template,
            identity: &self.config.identity,
            workspace,
            proxy_socket: &proxy_socket,
            payload_file,
            bureau_binary: &self.config.bureau_binary,
            host_ids: self.config.host_ids,
            protected: &[&self.config.paths.state_dir, &self.config.paths.run_dir],
        })
        .map_err(|spec_error| spec_error.to_string())?;
        let spec_file = principal_dir.join("spec.json");
        let spec_json = serde_json::to_vec_pretty(&spec).map_err(|json| json.to_string())?;
        std::fs::write(&spec_file, spec_json)
            .map_err(|io_error| format!("writing {}: {io_error}", spec_file.display()))?;
        let log = self.output_log(principal);
        std::fs::write(&log, b"")
            .map_err(|io_error| format!("creating {}: {io_error}", log.display()))?;
        let mut command = applet_command(&self.config.bureau_binary, "sandbox", &log)
            .map_err(|io_error| format!("opening {}: {io_error}", log.display()))?;
        command
            .arg("run")
            .arg("--spec")
            .arg(&spec_file)
            .arg("--status-file")
            .arg(self.status_file(principal));
        let child = command
            .spawn()
            .map_err(|spawn_error| format!("starting its sandbox: {spawn_error}"))?;
        let start_time = process_start_time(child.id()).unwrap_or(0);
        let watched = Watched::spawned_or_killed(child, "its sandbox")?;
        Ok((watched, start_time))
    }

    /// Records a sandbox and spawns the task that notices its exit.
    fn entry(
        self: &Arc<Self>,
        info: SandboxInfo,
        sandbox_start_time: u64,
        proxy_start_time: u64,
        sandbox: Watched,
        proxy: Watched,
    ) -> Entry {
        let (exit_sender, exit) = watch::channel(None);
        let sandbox = Arc::new(sandbox);
        let launcher = Arc::clone(self);
        let principal = info.principal.clone();
        let watched = Arc::clone(&sandbox);
        tokio::spawn(async move {
            let status_file = launcher.status_file(&principal);
            let exit_code = watched.exited(Some(&status_file)).await;
            let lines = last_lines(&launcher.output_log(&principal));
            tracing::info!(%principal, pid = watched.pid, exit_code, "sandbox exited");
            if let Some(entry) = launcher.table().get_mut(&principal)
                && entry.info.pid == watched.pid
            {
                entry.info.exit_code = Some(exit_code);
            }
            launcher.save_state();
            let _ = exit_sender.send(Some((exit_code, lines)));
        });
        // A sandbox without its proxy is cut off from everything: when the proxy dies first,
        // stop the sandbox, so its exit takes the normal path (report, restart policy).
        let proxy = Arc::new(proxy);
        let (watched_proxy, signals, exited) =
            (Arc::clone(&proxy), Arc::clone(&sandbox), exit.clone());
        let principal = info.principal.clone();
        tokio::spawn(async move {
            let status = watched_proxy.exited(None).await;
            if exited.borrow().is_none() {
                tracing::warn!(%principal, status, "the proxy exited; stopping its sandbox");
                let _ = signals.signal(Signal::TERM);
            }
        });
        Entry {
            info,
            sandbox_start_time,
            proxy_start_time,
            exit,
            sandbox: Some(sandbox),
            proxy: Some(proxy),
        }
    }

    async fn destroy(self: &Arc<Self>, principal: &Localpart, force: bool) -> Response {
        let _busy = match self.claim(principal) {
            Ok(guard) => guard,
            Err(refusal) => return refusal,
        };
        self.destroy_claimed(principal, force).await
    }

    /// [`destroy`](Self::destroy) for a caller that holds the principal's claim.
    async fn destroy_claimed(&self, principal: &Localpart, force: bool) -> Response {
        let Some((pid, sandbox, proxy, mut exit)) = self.table().get(principal).map(|entry| {
            (
                entry.info.pid,
                entry.sandbox.clone(),
                entry.proxy.clone(),
                entry.exit.clone(),
            )
        }) else {
            return error(format!("no sandbox for {principal}"));
        };
        if let Some(signals) = sandbox
            && exit.borrow().is_none()
        {
            let first = if force { Signal::KILL } else { Signal::TERM };
            let _ = signals.signal(first);
            let in_time =
                tokio::time::timeout(self.config.grace, exit.wait_for(|exit| exit.is_some()))
                    .await
                    .is_ok();
            if !in_time {
                tracing::warn!(%principal, "sandbox ignored SIGTERM; killing it");
                let _ = signals.signal(Signal::KILL);
                let _ = exit.wait_for(|exit| exit.is_some()).await;
            }
        }
        self.stop_proxy(principal, proxy.as_deref()).await;
        let (exit_code, last_lines) = exit.borrow().clone().unwrap_or((255, Vec::new()));
        {
            let mut table = self.table();
            if table
                .get(principal)
                .is_some_and(|entry| entry.info.pid == pid)
            {
                table.remove(principal);
            }
        }
        self.save_state();
        Response::Exited {
            exit_code,
            last_lines,
        }
    }

    /// Stops a proxy (SIGTERM, SIGKILL after 2 s), reaps it, and removes its sockets.
    async fn stop_proxy(&self, principal: &Localpart, proxy: Option<&Watched>) {
        if let Some(proxy) = proxy {
            let _ = proxy.signal(Signal::TERM);
            if tokio::time::timeout(Duration::from_secs(2), proxy.exited(None))
                .await
                .is_err()
            {
                let _ = proxy.signal(Signal::KILL);
                proxy.exited(None).await;
            }
        }
        let run_dir = &self.config.paths.run_dir;
        for socket in [
            proxy_socket_path(run_dir, principal),
            admin_socket_path(run_dir, principal),
        ] {
            let _ = std::fs::remove_file(socket);
        }
    }

    fn running_sandbox(&self, principal: &Localpart) -> Option<Arc<Watched>> {
        self.table()
            .get(principal)
            .filter(|entry| entry.info.exit_code.is_none())
            .and_then(|entry| entry.sandbox.clone())
    }

    fn signal(&self, principal: &Localpart, signal: i32) -> Response {
        let Some(signals) = self.running_sandbox(principal) else {
            return error(format!("no running sandbox for {principal}"));
        };
        let Some(signal) = Signal::from_named_raw(signal) else {
            return error(format!("{signal} is not a signal number"));
        };
        match signals.signal(signal) {
            Ok(()) => Response::Ok,
            Err(io_error) => error(format!("signalling {principal}: {io_error}")),
        }
    }

    async fn wait(&self, principal: &Localpart) -> Response {
        let Some(mut exit) = self.table().get(principal).map(|entry| entry.exit.clone()) else {
            return error(format!("no sandbox for {principal}"));
        };
        match exit.wait_for(|exit| exit.is_some()).await {
            Ok(exit) => {
                let (exit_code, last_lines) = exit.clone().unwrap_or((255, Vec::new()));
                Response::Exited {
                    exit_code,
                    last_lines,
                }
            }
            Err(_) => error(format!("{principal} was destroyed while waiting")),
        }
    }

    fn update_payload(&self, principal: &Localpart, payload_json: &str) -> Response {
        match serde_json::from_str::<serde_json::Value>(payload_json) {
            Ok(value) if value.is_object() => {}
            _ => return error(format!("the payload for {principal} must be a JSON object")),
        }
        let Some(signals) = self.running_sandbox(principal) else {
            return error(format!("no running sandbox for {principal}"));
        };
        let file = self
            .config
            .paths
            .principal_dir(principal)
            .join("payload.json");
        if let Err(message) = write_in_place(&file, payload_json.as_bytes()) {
            return error(message);
        }
        match signals.signal(Signal::HUP) {
            Ok(()) => Response::Ok,
            Err(io_error) => error(format!("signalling {principal}: {io_error}")),
        }
    }

    async fn rotate_credentials(&self, principal: &Localpart, bundle: &Credentials) -> Response {
        if !self.table().contains_key(principal) {
            return error(format!("no sandbox for {principal}"));
        }
        let mut values = match sealed::open(bundle, &self.config.key) {
            Ok(values) => values,
            Err(seal_error) => return error(seal_error.to_string()),
        };
        values.remove(MATRIX_TOKEN_CREDENTIAL);
        let key_names: Vec<String> = values.keys().cloned().collect();
        let body = match crate::sealed::plaintext_json(&values) {
            Ok(body) => body,
            Err(reason) => return error(reason.to_string()),
        };
        drop(values);
        let admin = admin_socket_path(&self.config.paths.run_dir, principal);
        // The one buffer goes to the request as is and is zeroed when the request drops it.
        let body = Bytes::from_owner(SecretBody(body));
        match admin_put(&admin, "/v1/admin/credentials", body).await {
            Ok(()) => Response::KeyNames { key_names },
            Err(message) => error(format!("rotating {principal}'s credentials: {message}")),
        }
    }

    async fn update_grants(&self, principal: &Localpart, grants: &[Grant]) -> Response {
        if !self.table().contains_key(principal) {
            return error(format!("no sandbox for {principal}"));
        }
        let body = match serde_json::to_vec(grants) {
            Ok(body) => Bytes::from(body),
            Err(json) => return error(format!("encoding {principal}'s grants: {json}")),
        };
        let admin = admin_socket_path(&self.config.paths.run_dir, principal);
        match admin_put(&admin, "/v1/admin/grants", body).await {
            Ok(()) => Response::Ok,
            Err(message) => error(format!("updating {principal}'s grants: {message}")),
        }
    }

    fn save_state(&self) {
        let records: Vec<StateRecord> = self
            .table()
            .values()
            .map(|entry| StateRecord {
                info: entry.info.clone(),
                sandbox_start_time: entry.sandbox_start_time,
                proxy_start_time: entry.proxy_start_time,
            })
            .collect();
        let path = self.config.paths.launcher_state();
        let write = serde_json::to_vec_pretty(&records)
            .map_err(std::io::Error::other)
            .and_then(|json| {
                let temporary = path.with_extension("json.tmp");
                std::fs::write(&temporary, json)?;
                std::fs::rename(&temporary, &path)
            });
        if let Err(io_error) = write {
            tracing::error!(%io_error, path = %path.display(), "cannot save the launcher state");
        }
    }

    /// Re-attaches to sandboxes a previous launcher started (its state file); those that died
    /// meanwhile are kept as exited so the daemon hears about them.
    fn adopt_from_state_file(self: &Arc<Self>) {
        let path = self.config.paths.launcher_state();
        let records: Vec<StateRecord> = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(records) => records,
                Err(json) => {
                    tracing::error!(%json, path = %path.display(), "ignoring an unreadable state file");
                    return;
                }
            },
            Err(_) => return,
        };
        for record in records {
            let principal = record.info.principal.clone();
            let proxy = Watched::adopt(record.info.proxy_pid, record.proxy_start_time);
            let sandbox = Watched::adopt(record.info.pid, record.sandbox_start_time);
            if let (Some(sandbox), Some(proxy)) = (sandbox, proxy) {
                tracing::info!(%principal, pid = record.info.pid, "adopted a running sandbox");
                let entry = self.entry(
                    record.info,
                    record.sandbox_start_time,
                    record.proxy_start_time,
                    sandbox,
                    proxy,
                );
                self.table().insert(principal, entry);
                continue;
            }
            // Gone, or half gone (a sandbox without its proxy is useless): stop what is left and
            // keep the record as exited so the daemon hears about it.
            tracing::warn!(%principal, "a sandbox from the last run is gone or lost its proxy");
            for pid_and_start in [
                (record.info.pid, record.sandbox_start_time),
                (record.info.proxy_pid, record.proxy_start_time),
            ] {
                if let Some(left) = Watched::adopt(pid_and_start.0, pid_and_start.1) {
                    let _ = left.signal(Signal::KILL);
                }
            }
            let exit_code =
                super::children::read_status_file(&self.status_file(&principal)).unwrap_or(255);
            let (_, exit) =
                watch::channel(Some((exit_code, last_lines(&self.output_log(&principal)))));
            let mut info = record.info;
            info.exit_code = Some(exit_code);
            let entry = Entry {
                info,
                sandbox_start_time: record.sandbox_start_time,
                proxy_start_time: record.proxy_start_time,
                exit,
                sandbox: None,
                proxy: None,
            };
            self.table().insert(principal, entry);
        }
        self.save_state();
    }
}

/// Writes the proxy's payload to its stdin pipe (non-blocking) and closes it.
async fn write_payload(stdin: std::process::ChildStdin, payload: &[u8]) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut pipe =
        tokio::net::unix::pipe::Sender::from_owned_fd(std::os::fd::OwnedFd::from(stdin))?;
    pipe.write_all(payload).await?;
    pipe.shutdown().await
}

/// Overwrites `path` in place (same inode): a bind mount of the file sees the new contents.
fn write_in_place(path: &Path, contents: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(|io_error| format!("writing {}: {io_error}", path.display()))?;
    file.write_all(contents)
        .map_err(|io_error| format!("writing {}: {io_error}", path.display()))
}

/// The proxy's stdin payload as CBOR (see `proxy::payload`). The caller zeroizes the result.
fn encode_proxy_payload(
    identity: Option<(&str, &str, &Secret)>,
    credentials: &BTreeMap<String, Secret>,
    grants: &[Grant],
) -> Result<Vec<u8>, String> {
    #[derive(Serialize)]
    struct IdentityWire<'a> {
        homeserver_url: &'a str,
        user_id: &'a str,
        access_token: &'a str,
    }
    #[derive(Serialize)]
    struct PayloadWire<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        identity: Option<IdentityWire<'a>>,
        credentials: BTreeMap<&'a str, &'a str>,
        grants: &'a [Grant],
    }
    let not_text = |name: &str| format!("credential {name} is not UTF-8 text");
    // The grants go after the secrets, so their size is counted too (they are not secret).
    let mut grants_size = Vec::new();
    grants
        .serialize(&mut minicbor_serde::Serializer::new(&mut grants_size))
        .map_err(|cbor| format!("encoding the proxy's grants: {cbor}"))?;
    let identity_size = identity.map_or(0, |(url, user_id, token)| {
        url.len() + user_id.len() + token.len() + 64
    });
    let identity = match identity {
        Some((homeserver_url, user_id, token)) => Some(IdentityWire {
            homeserver_url,
            user_id,
            access_token: token
                .expose_str()
                .ok_or_else(|| not_text(MATRIX_TOKEN_CREDENTIAL))?,
        }),
        None => None,
    };
    let mut values = BTreeMap::new();
    for (name, value) in credentials {
        values.insert(
            name.as_str(),
            value.expose_str().ok_or_else(|| not_text(name))?,
        );
    }
    // Sized up front so the buffer never grows (a reallocation would leave a copy of the
    // secrets in freed memory): every part, counted, plus room for the framing.
    let mut buffer =
        Vec::with_capacity(secret_capacity(credentials) + identity_size + grants_size.len() + 1024);
    let mut serializer = minicbor_serde::Serializer::new(&mut buffer);
    let encoded = PayloadWire {
        identity,
        credentials: values,
        grants,
    }
    .serialize(&mut serializer);
    match encoded {
        Ok(()) => Ok(buffer),
        Err(cbor) => {
            zeroize(&mut buffer);
            Err(format!("encoding the proxy payload: {cbor}"))
        }
    }
}

/// Room for every credential's name and value, with JSON or CBOR framing and escaping.
fn secret_capacity(values: &BTreeMap<String, Secret>) -> usize {
    values
        .iter()
        .map(|(name, value)| name.len() + value.len() * 6 + 16)
        .sum::<usize>()
        + 4096
}

/// Secret bytes handed to hyper as a request body: zeroed when the request drops them.
struct SecretBody(Secret);

impl AsRef<[u8]> for SecretBody {
    fn as_ref(&self) -> &[u8] {
        self.0.expose()
    }
}

/// `PUT path` with a JSON body on a proxy's admin socket; a non-2xx answer is an error carrying
/// the proxy's message.
pub async fn admin_put(socket: &Path, path: &str, body: Bytes) -> Result<(), String> {
    let mut request = ProxyRequest::new("PUT", path).map_err(|usage| usage.to_string())?;
    request
        .add_header("Content-Type: application/json")
        .map_err(|usage| usage.to_string())?;
    request.set_body(body);
    let mut sink = Vec::new();
    let outcome = proxy_call::call(socket, request, &mut sink)
        .await
        .map_err(|call_error| call_error.to_string())?;
    if outcome.is_success() {
        Ok(())
    } else {
        Err(outcome
            .error_text()
            .unwrap_or_else(|| "the proxy refused the request".to_owned()))
    }
}

/// Starts serving `launcher.sock` (mode 0660) for `launcher`: replaces a stale socket file,
/// refuses to replace a live one.
pub async fn bind_socket(path: &Path) -> Result<UnixListener, String> {
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(format!(
                "{} is in use: another bureau-launcher runs for this machine",
                path.display()
            ));
        }
        std::fs::remove_file(path)
            .map_err(|io_error| format!("removing the stale {}: {io_error}", path.display()))?;
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|io_error| format!("creating {}: {io_error}", parent.display()))?;
    }
    let listener = UnixListener::bind(path)
        .map_err(|io_error| format!("binding {}: {io_error}", path.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(|io_error| format!("setting the mode of {}: {io_error}", path.display()))?;
    Ok(listener)
}

/// The services a template's `proxy_services` describe, as the proxy's admin API takes them.
fn services_of(template: &crate::schema::Template) -> BTreeMap<String, ServiceConfig> {
    template
        .proxy_services
        .iter()
        .map(|(name, service)| {
            (
                name.clone(),
                ServiceConfig {
                    upstream_url: Some(service.upstream_url.clone()),
                    upstream_unix: None,
                    inject_headers: service.inject_headers.clone(),
                    auth_scheme: service.auth_scheme.clone(),
                    strip_headers: service.strip_headers.clone(),
                    rules: Vec::new(),
                    rate: None,
                    timeout_ms: None,
                    max_body_bytes: None,
                },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::payload::{self, PayloadFormat};

    #[test]
    fn the_proxy_decodes_what_the_launcher_encodes_grant_expiry_included() {
        let credentials = BTreeMap::from([("API_KEY".to_owned(), Secret::from_string("k".into()))]);
        let grants = [
            Grant {
                actions: vec!["matrix/join".into()],
                targets: vec!["#acme/**".into()],
                expires_at: Some(1_795_600_000_000),
            },
            Grant {
                actions: vec!["matrix/send".into()],
                targets: vec![],
                expires_at: None,
            },
        ];
        let mut encoded = encode_proxy_payload(None, &credentials, &grants).expect("encodes");
        let decoded = payload::decode(&mut encoded, PayloadFormat::Cbor).expect("decodes");
        assert_eq!(decoded.grants, grants);
        assert_eq!(decoded.credentials["API_KEY"].expose_str(), Some("k"));
    }
}
