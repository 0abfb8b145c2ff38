//! `bureau-daemon`'s library side: follow the machine's rooms on Matrix and make the launcher
//! run what `m.bureau.machine_config` says, reporting what happens as outcome messages.
//!
//! One concern per file: [`desired`] (Matrix state → launcher requests), [`plan`] (desired +
//! actual + memory → actions, pure), [`host`] (machine info and status figures), and this
//! module, the loop that reads Matrix, asks the launcher and applies the plan.
//!
//! Invariant: the daemon never holds a secret: credential bundles pass through it sealed, and
//! the launcher decrypts them. A failure to reach Matrix or the launcher is retried; it never
//! stops principals that are running.

pub mod desired;
pub mod host;
pub mod plan;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ruma::OwnedRoomId;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use self::desired::{Desired, DesiredEntry, TemplateRooms, desired_state, template_room_alias};
use self::plan::{Action, Memory, Phase, backoff, next_deadline, plan};
use crate::launcher::ipc::{self, Request, Response, SandboxInfo};
use crate::machine::{MachineIdentity, MachinePaths};
use crate::matrix::{Client, ConnectOptions, MatrixError, Session, SyncStream};
use crate::naming::Localpart;
use crate::schema::{
    CREDENTIALS, MACHINE_CONFIG, MACHINE_CONFIG_STATE_KEY, MACHINE_INFO, MACHINE_STATUS,
    MachineStatus, Outcome, OutcomeMessage, PrincipalState, PrincipalStatus, TEMPLATE, TemplateRef,
};

/// How long a launcher request may take (a create starts a proxy and a sandbox; a destroy
/// waits for the grace period).
const LAUNCHER_TIMEOUT: Duration = Duration::from_secs(60);

/// A sandbox that ran at least this long before exiting resets its back-off.
const STABLE_RUN: Duration = Duration::from_secs(60);

/// How the daemon is set up.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// Where the machine's files are (identity and session under `state_dir`, the launcher's
    /// socket under `run_dir`).
    pub paths: MachinePaths,
    /// How often `m.bureau.machine_status` is published.
    pub heartbeat: Duration,
    /// The longest restart back-off.
    pub backoff_max: Duration,
    /// How often the daemon reconciles even when nothing arrives.
    pub resync: Duration,
}

impl DaemonConfig {
    /// Production intervals: heartbeat 60 s, back-off up to 30 s, resync 30 s.
    pub fn new(paths: MachinePaths) -> Self {
        Self {
            paths,
            heartbeat: Duration::from_secs(60),
            backoff_max: Duration::from_secs(30),
            resync: Duration::from_secs(30),
        }
    }
}

/// Why the daemon could not start (once running, it retries instead of failing).
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// A file the launcher writes at first boot is missing or unreadable.
    #[error(
        "{what} {path}: {reason}\nHint: start bureau-launcher once first: it provisions the machine"
    )]
    MachineFile {
        /// Which file.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// The error.
        reason: String,
    },
    /// Matrix refused or could not be reached at start.
    #[error("{0}")]
    Matrix(#[from] MatrixError),
    /// A room the machine needs does not exist.
    #[error("room {alias} does not exist; provision the machine with `bureau machine provision`")]
    MissingRoom {
        /// The alias.
        alias: String,
    },
}

/// An exit reported by a waiter task: (principal, pid, exit code, last lines), or `None` when
/// the wait was lost (launcher restarted).
type ExitReport = (Localpart, u32, Option<(i32, Vec<String>)>);

/// The running daemon.
struct Daemon {
    config: DaemonConfig,
    identity: MachineIdentity,
    client: Client,
    config_room: OwnedRoomId,
    machine_room: OwnedRoomId,
    template_rooms: BTreeMap<String, OwnedRoomId>,
    memory: BTreeMap<Localpart, Memory>,
    reported: BTreeMap<String, String>,
    exits: mpsc::UnboundedSender<ExitReport>,
    cpu: host::CpuSample,
}

/// Runs the daemon until `shutdown` completes.
pub async fn run(
    config: DaemonConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), DaemonError> {
    let identity_path = config.paths.machine_identity();
    let identity =
        MachineIdentity::load(&identity_path).map_err(|reason| DaemonError::MachineFile {
            what: "machine identity",
            path: identity_path.clone(),
            reason,
        })?;
    let session_path = config.paths.session();
    let session = Session::load(&session_path).map_err(|error| DaemonError::MachineFile {
        what: "machine session",
        path: session_path.clone(),
        reason: error.to_string(),
    })?;
    let client = session.connect(&ConnectOptions::default()).await?;
    let config_room = join_alias(&client, &identity.config_room_alias()).await?;
    let machine_room = join_alias(&client, &identity.machine_room_alias()).await?;
    let (exits, mut exit_reports) = mpsc::unbounded_channel();
    let mut daemon = Daemon {
        config,
        identity,
        client,
        config_room,
        machine_room,
        template_rooms: BTreeMap::new(),
        memory: BTreeMap::new(),
        reported: BTreeMap::new(),
        exits,
        cpu: (0, 0),
    };
    daemon.publish_info().await;
    let filter = json!({
        "presence": {"not_types": ["*"]},
        "account_data": {"not_types": ["*"]},
        "room": {
            "not_rooms": [daemon.machine_room.to_string()],
            "timeline": {"limit": 20},
            "ephemeral": {"not_types": ["*"]},
            "account_data": {"not_types": ["*"]},
        },
    });
    // The long-poll runs in its own task, so a reconcile, an exit or a heartbeat never cancels
    // a /sync in flight (a new one would cost a round trip before the next event arrives).
    let mut sync = SyncStream::new(daemon.client.clone(), None, Some(filter));
    let (batch_sender, mut batches) = mpsc::unbounded_channel();
    let syncing = tokio::spawn(async move {
        loop {
            let batch = sync.next_batch().await;
            let failed = batch.is_err();
            if batch_sender.send(batch).is_err() {
                break;
            }
            if failed {
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
        }
    });
    let mut heartbeat = tokio::time::interval(daemon.config.heartbeat);
    tokio::pin!(shutdown);
    tracing::info!(machine = %daemon.identity.machine, "daemon running");
    loop {
        let deadline = next_deadline(&daemon.memory)
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(|| tokio::time::Instant::now() + daemon.config.resync);
        tokio::select! {
            () = &mut shutdown => break,
            Some(batch) = batches.recv() => match batch {
                Ok(batch) => {
                    let relevant = batch.joined.iter().any(|room| {
                        room.state.iter().chain(room.timeline.iter())
                            .any(|event| event.get("state_key").is_some())
                    }) || !batch.invited.is_empty();
                    for room in &batch.invited {
                        if let Err(error) = daemon.client.join(room.as_str()).await {
                            tracing::warn!(%error, %room, "cannot join a room the machine was invited to");
                        }
                    }
                    if relevant {
                        daemon.reconcile().await;
                    }
                }
                Err(error) => tracing::error!(%error, "sync failed for good; retrying in 30 s"),
            },
            Some(report) = exit_reports.recv() => {
                if daemon.exited(report).await {
                    daemon.reconcile().await;
                }
            }
            () = tokio::time::sleep_until(deadline) => daemon.reconcile().await,
            _ = heartbeat.tick() => daemon.publish_status().await,
        }
    }
    syncing.abort();
    tracing::info!("daemon stopping; principals keep running");
    Ok(())
}

async fn join_alias(client: &Client, alias: &str) -> Result<OwnedRoomId, DaemonError> {
    let room = client
        .resolve_alias(alias)
        .await?
        .ok_or_else(|| DaemonError::MissingRoom {
            alias: alias.to_owned(),
        })?;
    client.join(room.as_str()).await?;
    Ok(room)
}

impl Daemon {
    fn socket(&self) -> PathBuf {
        self.config.paths.launcher_socket()
    }

    /// One launcher exchange (not `wait-sandbox`, which waiters make): a launcher that does not
    /// answer within [`LAUNCHER_TIMEOUT`] is treated as unreachable, so the daemon keeps going.
    async fn launcher(&self, request: &Request) -> Result<Response, String> {
        match tokio::time::timeout(LAUNCHER_TIMEOUT, ipc::call(&self.socket(), request)).await {
            Ok(Ok(Response::Error { message })) => Err(message),
            Ok(Ok(response)) => Ok(response),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err(format!(
                "the launcher did not answer within {} s",
                LAUNCHER_TIMEOUT.as_secs()
            )),
        }
    }

    async fn post(&self, outcome: Outcome) {
        tracing::info!(body = %outcome.body(), "outcome");
        let content = match serde_json::to_value(OutcomeMessage::from(outcome)) {
            Ok(content) => content,
            Err(error) => return tracing::error!(%error, "cannot encode an outcome"),
        };
        if let Err(error) = self
            .client
            .send_event(&self.config_room, "m.room.message", &content)
            .await
        {
            tracing::warn!(%error, "cannot post an outcome to the config room");
        }
    }

    /// Reads the desired state from Matrix; `None` (logged) when Matrix cannot be read now.
    async fn desired(&mut self) -> Option<Vec<DesiredEntry>> {
        let state = match self.client.room_state(&self.config_room).await {
            Ok(state) => state,
            Err(error) => {
                tracing::warn!(%error, "cannot read the config room; will retry");
                return None;
            }
        };
        let mut config = None;
        let mut credentials = BTreeMap::new();
        for event in state {
            let key = event["state_key"].as_str().unwrap_or_default().to_owned();
            match event["type"].as_str() {
                Some(MACHINE_CONFIG) if key == MACHINE_CONFIG_STATE_KEY => {
                    config = Some(event["content"].clone())
                }
                Some(CREDENTIALS) => {
                    credentials.insert(key, event["content"].clone());
                }
                _ => {}
            }
        }
        let templates = self.templates(config.as_ref()).await?;
        Some(desired_state(
            config.as_ref(),
            &credentials,
            &templates,
            &self.identity,
        ))
    }

    /// Every template in the rooms the assignments point into; `None` when a room exists but
    /// cannot be read now (the pass is skipped rather than reporting templates as missing). A
    /// room that does not exist simply contributes no templates.
    async fn templates(&mut self, config: Option<&Value>) -> Option<TemplateRooms> {
        let mut aliases = vec![self.identity.template_room_alias()];
        let references = config
            .and_then(|content| content["principals"].as_array())
            .into_iter()
            .flatten()
            .filter_map(|assignment| assignment["template"].as_str())
            .filter_map(|text| TemplateRef::parse(text).ok());
        for reference in references {
            let alias = template_room_alias(&reference, &self.identity);
            if !aliases.contains(&alias) {
                aliases.push(alias);
            }
        }
        let mut templates = TemplateRooms::new();
        for alias in aliases {
            let room = match self.template_rooms.get(&alias) {
                Some(room) => room.clone(),
                None => match join_alias(&self.client, &alias).await {
                    Ok(room) => {
                        self.template_rooms.insert(alias.clone(), room.clone());
                        room
                    }
                    Err(DaemonError::MissingRoom { .. }) => continue,
                    Err(error) => {
                        tracing::warn!(%error, %alias, "cannot open a template room; will retry");
                        return None;
                    }
                },
            };
            match self.client.room_state(&room).await {
                Ok(state) => {
                    for event in state {
                        if event["type"] == TEMPLATE
                            && event["content"]
                                .as_object()
                                .is_some_and(|map| !map.is_empty())
                            && let Some(name) = event["state_key"].as_str()
                        {
                            templates
                                .insert((alias.clone(), name.to_owned()), event["content"].clone());
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, %alias, "cannot read a template room; will retry");
                    return None;
                }
            }
        }
        Some(templates)
    }

    /// One reconciliation pass.
    async fn reconcile(&mut self) {
        let Some(desired) = self.desired().await else {
            return;
        };
        let actual = match self.launcher(&Request::ListSandboxes).await {
            Ok(Response::Sandboxes { sandboxes }) => sandboxes,
            Ok(other) => return tracing::error!(?other, "unexpected launcher answer"),
            Err(error) => return tracing::warn!(%error, "cannot list sandboxes; will retry"),
        };
        let actions = plan(
            &desired,
            &actual,
            &self.memory,
            &self.reported,
            Instant::now(),
        );
        let changed = !actions.is_empty();
        for action in actions {
            self.apply(action).await;
        }
        if changed {
            // Operators (`bureau list`) see the new state now, not at the next heartbeat.
            self.publish_status().await;
        }
    }

    async fn apply(&mut self, action: Action) {
        match action {
            Action::Create(desired) => self.create(*desired).await,
            Action::Adopt(desired, sandbox) => self.adopt(*desired, sandbox).await,
            Action::Restart(desired) => {
                self.restart(*desired, "its assignment or template changed")
                    .await;
            }
            Action::RotateCredentials(desired) => self.rotate(&desired, true).await,
            Action::UpdateGrants(desired) => self.update_grants(*desired).await,
            Action::CollectExit(desired, sandbox) => {
                let principal = desired.create.principal.clone();
                self.memory
                    .insert(principal.clone(), running_memory(&desired, &sandbox));
                self.exited((
                    principal,
                    sandbox.pid,
                    sandbox.exit_code.map(|code| (code, Vec::new())),
                ))
                .await;
            }
            Action::Remove(principal) => self.stop(&principal, "removed from machine_config").await,
            Action::Cleanup(principal) => {
                let request = Request::DestroySandbox {
                    principal,
                    force: true,
                };
                if let Err(error) = self.launcher(&request).await {
                    tracing::warn!(%error, "cannot clean up an exited sandbox; will retry");
                }
            }
            Action::Forget(principal) => {
                self.memory.remove(&principal);
            }
            Action::ReportInvalid { principal, reason } => {
                self.reported.insert(principal.clone(), reason.clone());
                self.post(Outcome::PrincipalStartFailed { principal, reason })
                    .await;
            }
        }
    }

    async fn create(&mut self, desired: Desired) {
        let principal = desired.create.principal.clone();
        let attempts = self
            .memory
            .get(&principal)
            .map_or(0, |memory| memory.attempts);
        let request = Request::CreateSandbox(Box::new(desired.create.clone()));
        match self.launcher(&request).await {
            Ok(Response::Created { sandbox }) => {
                let mut memory = running_memory(&desired, &sandbox);
                memory.attempts = attempts;
                self.memory.insert(principal.clone(), memory);
                self.reported.remove(principal.as_str());
                self.wait_on(&principal, sandbox.pid);
                self.post(Outcome::PrincipalStarted {
                    principal,
                    pid: sandbox.pid,
                })
                .await;
            }
            Ok(other) => tracing::error!(?other, "unexpected launcher answer"),
            Err(reason) => {
                let attempts = attempts + 1;
                let delay = backoff(attempts, self.config.backoff_max);
                tracing::warn!(%principal, %reason, ?delay, "start failed; retrying later");
                self.memory.insert(
                    principal.clone(),
                    Memory {
                        config_hash: desired.create.config_hash.clone(),
                        phase: Phase::BackOff {
                            until: Instant::now() + delay,
                        },
                        attempts,
                        installed_credentials: None,
                        installed_grants: Vec::new(),
                        restart_policy: desired.restart_policy,
                        started: Instant::now(),
                        collected: None,
                    },
                );
                if self.reported.get(principal.as_str()) != Some(&reason) {
                    self.reported.insert(principal.to_string(), reason.clone());
                    self.post(Outcome::PrincipalStartFailed {
                        principal: principal.to_string(),
                        reason,
                    })
                    .await;
                }
            }
        }
    }

    /// Takes over a sandbox that runs as desired (its services are part of its fingerprint,
    /// so they match): installs its current credentials and grants, which may have changed
    /// while no daemon watched, and waits on it.
    async fn adopt(&mut self, desired: Desired, sandbox: SandboxInfo) {
        let principal = desired.create.principal.clone();
        tracing::info!(%principal, pid = sandbox.pid, "adopting a running sandbox");
        self.memory
            .insert(principal.clone(), running_memory(&desired, &sandbox));
        self.rotate(&desired, false).await;
        self.wait_on(&principal, sandbox.pid);
        self.update_grants(desired).await;
    }

    /// Replaces the grants the principal's proxy enforces. Fails closed: a proxy that cannot
    /// be given its current grants (e.g. a launcher from before live grants) is restarted
    /// with them instead of running on with the old ones.
    async fn update_grants(&mut self, desired: Desired) {
        let principal = desired.create.principal.clone();
        let request = Request::UpdateGrants {
            principal: principal.clone(),
            grants: desired.create.grants.clone(),
        };
        match self.launcher(&request).await {
            Ok(Response::Ok) => {
                tracing::info!(%principal, grants = desired.create.grants.len(), "grants updated");
                if let Some(memory) = self.memory.get_mut(&principal) {
                    memory.installed_grants = desired.create.grants;
                }
            }
            answer => {
                tracing::warn!(%principal, ?answer, "cannot update its grants live; restarting it");
                self.restart(desired, "its grants changed and could not be updated live")
                    .await;
            }
        }
    }

    /// Stops the principal, saying why, and starts it again as `desired`.
    async fn restart(&mut self, desired: Desired, reason: &str) {
        self.stop(&desired.create.principal, reason).await;
        self.create(desired).await;
    }

    /// Installs the principal's current bundle in its proxy; reports it when `announce`.
    async fn rotate(&mut self, desired: &Desired, announce: bool) {
        let principal = &desired.create.principal;
        let Some(bundle) = &desired.create.credentials else {
            return;
        };
        let request = Request::DecryptCredentials {
            principal: principal.clone(),
            credentials: bundle.clone(),
        };
        match self.launcher(&request).await {
            Ok(Response::KeyNames { key_names }) => {
                if let Some(memory) = self.memory.get_mut(principal) {
                    memory.installed_credentials = Some(bundle.ciphertext.clone());
                }
                if announce {
                    self.post(Outcome::CredentialsRotated {
                        principal: principal.clone(),
                        key_names,
                    })
                    .await;
                }
            }
            Ok(other) => tracing::error!(?other, "unexpected launcher answer"),
            Err(reason) => {
                tracing::warn!(%principal, %reason, "credential rotation failed");
                if self.reported.get(principal.as_str()) != Some(&reason) {
                    self.reported.insert(principal.to_string(), reason.clone());
                    self.post(Outcome::CredentialsRotationFailed {
                        principal: principal.clone(),
                        reason,
                    })
                    .await;
                }
            }
        }
    }

    /// Stops a principal on purpose and reports it.
    async fn stop(&mut self, principal: &Localpart, reason: &str) {
        // Forgotten first: the waiter's report of this exit is then ignored.
        self.memory.remove(principal);
        let request = Request::DestroySandbox {
            principal: principal.clone(),
            force: false,
        };
        match self.launcher(&request).await {
            Ok(Response::Exited { exit_code, .. }) => {
                self.post(Outcome::PrincipalStopped {
                    principal: principal.clone(),
                    reason: reason.to_owned(),
                    exit_code,
                })
                .await;
            }
            Ok(other) => tracing::error!(?other, "unexpected launcher answer"),
            Err(error) => tracing::warn!(%principal, %error, "cannot stop a principal"),
        }
    }

    fn wait_on(&self, principal: &Localpart, pid: u32) {
        let socket = self.socket();
        let exits = self.exits.clone();
        let principal = principal.clone();
        tokio::spawn(async move {
            let request = Request::WaitSandbox {
                principal: principal.clone(),
            };
            let exit = match ipc::call(&socket, &request).await {
                Ok(Response::Exited {
                    exit_code,
                    last_lines,
                }) => Some((exit_code, last_lines)),
                _ => None,
            };
            let _ = exits.send((principal, pid, exit));
        });
    }

    /// A sandbox the daemon waited on exited (or the wait was lost). Returns whether that
    /// changed anything (an exit of a principal the daemon stopped on purpose does not).
    async fn exited(&mut self, (principal, pid, exit): ExitReport) -> bool {
        let Some(memory) = self.memory.get(&principal).cloned() else {
            return false; // stopped on purpose
        };
        if memory.phase != (Phase::Running { pid }) {
            return false;
        }
        let Some((exit_code, _)) = exit else {
            // The launcher went away mid-wait: forget, so the next pass adopts it again.
            self.memory.remove(&principal);
            return true;
        };
        // Destroying collects the last lines and stops the proxy.
        let destroyed = self
            .launcher(&Request::DestroySandbox {
                principal: principal.clone(),
                force: true,
            })
            .await;
        let last_lines = match destroyed {
            Ok(Response::Exited { last_lines, .. }) if exit_code != 0 => last_lines,
            _ => Vec::new(),
        };
        self.post(Outcome::SandboxExited {
            principal: principal.clone(),
            exit_code,
            last_lines,
        })
        .await;
        let attempts = if memory.started.elapsed() >= STABLE_RUN {
            1
        } else {
            memory.attempts + 1
        };
        let phase = if memory.restart_policy.restarts_after(exit_code) {
            Phase::BackOff {
                until: Instant::now() + backoff(attempts, self.config.backoff_max),
            }
        } else {
            Phase::Stopped
        };
        self.memory.insert(
            principal,
            Memory {
                phase,
                attempts,
                installed_credentials: None,
                collected: Some(pid),
                ..memory
            },
        );
        self.publish_status().await;
        true
    }

    /// Publishes one of the machine's own state events in the fleet's machine room (state
    /// key: the machine's localpart).
    async fn put_machine_state(&self, event_type: &str, content: Result<Value, serde_json::Error>) {
        let content = match content {
            Ok(content) => content,
            Err(error) => return tracing::error!(%error, event_type, "cannot encode"),
        };
        if let Err(error) = self
            .client
            .state_put(
                &self.machine_room,
                event_type,
                self.identity.machine.as_str(),
                &content,
            )
            .await
        {
            tracing::warn!(%error, event_type, "cannot publish");
        }
    }

    async fn publish_info(&self) {
        self.put_machine_state(MACHINE_INFO, serde_json::to_value(host::machine_info()))
            .await;
    }

    async fn publish_status(&mut self) {
        let principals = self
            .memory
            .iter()
            .map(|(principal, memory)| PrincipalStatus {
                localpart: principal.clone(),
                state: match memory.phase {
                    Phase::Running { .. } => PrincipalState::Running,
                    Phase::BackOff { .. } => PrincipalState::Failed,
                    Phase::Stopped => PrincipalState::Stopped,
                },
                pid: match memory.phase {
                    Phase::Running { pid } => Some(pid),
                    _ => None,
                },
            })
            .collect();
        let status = MachineStatus {
            principals,
            ..host::machine_status(&mut self.cpu)
        };
        self.put_machine_state(MACHINE_STATUS, serde_json::to_value(&status))
            .await;
    }
}

fn running_memory(desired: &Desired, sandbox: &SandboxInfo) -> Memory {
    Memory {
        config_hash: desired.create.config_hash.clone(),
        phase: Phase::Running { pid: sandbox.pid },
        attempts: 0,
        installed_credentials: desired
            .create
            .credentials
            .as_ref()
            .map(|bundle| bundle.ciphertext.clone()),
        installed_grants: desired.create.grants.clone(),
        restart_policy: desired.restart_policy,
        started: started_instant(sandbox.started_at_ms),
        collected: None,
    }
}

/// When a sandbox the launcher says started at `started_at_ms` (Unix ms) started, on this
/// process's clock: an adopted sandbox's stable run counts from its start, not its adoption.
fn started_instant(started_at_ms: u64) -> Instant {
    // Capped: any start older than two stable runs counts alike, and the cap keeps the
    // subtraction representable (the monotonic clock starts near boot).
    let age = Duration::from_millis(crate::schema::now_ms().saturating_sub(started_at_ms));
    let now = Instant::now();
    now.checked_sub(age.min(2 * STABLE_RUN))
        .or_else(|| now.checked_sub(STABLE_RUN))
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_adopted_sandbox_has_run_since_its_launcher_start() {
        let started = started_instant(crate::schema::now_ms() - 90_000);
        assert!(
            started.elapsed() >= Duration::from_secs(89),
            "counts from its start"
        );
        assert!(started_instant(crate::schema::now_ms() + 5_000).elapsed() < STABLE_RUN);
        // A start time from before this machine booted counts as a stable run.
        assert!(started_instant(0).elapsed() >= STABLE_RUN);
    }
}
