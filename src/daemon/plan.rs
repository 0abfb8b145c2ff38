//! Reconciliation as a pure function: desired state (from Matrix), actual state (from the
//! launcher) and what the daemon remembers → the actions that converge them.
//!
//! Invariant: a running sandbox whose fingerprint matches its assignment is adopted, never
//! restarted (a restarted daemon leaves principals alone); a principal in back-off or stopped
//! by its restart policy is not started again until its back-off ends or its assignment
//! changes; every failure is reported once per distinct reason.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::desired::{Desired, DesiredEntry};
use crate::launcher::ipc::SandboxInfo;
use crate::naming::Localpart;
use crate::proxy::payload::Grant;
use crate::schema::RestartPolicy;

/// Where a principal is in its life, as the daemon knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Its sandbox runs (the daemon waits on it).
    Running {
        /// The sandbox's pid.
        pid: u32,
    },
    /// It exited or failed to start and will be started again at `until`.
    BackOff {
        /// When to try again.
        until: Instant,
    },
    /// It exited and its restart policy says to leave it.
    Stopped,
}

/// What the daemon remembers about one principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Memory {
    /// The fingerprint of the assignment the phase belongs to.
    pub config_hash: String,
    /// Where it is.
    pub phase: Phase,
    /// Consecutive failed starts or quick exits (drives the back-off).
    pub attempts: u32,
    /// The ciphertext of the credential bundle its proxy holds.
    pub installed_credentials: Option<String>,
    /// The grants its proxy holds (what the last create, adoption or update gave it).
    pub installed_grants: Vec<Grant>,
    /// Its restart policy when it started.
    pub restart_policy: RestartPolicy,
    /// When its current sandbox started (a long run resets the back-off).
    pub started: Instant,
    /// The sandbox whose exit was already reported (its record may outlive the report when
    /// the launcher could not be reached to clean it up).
    pub collected: Option<u32>,
}

/// One step towards the desired state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start it.
    Create(Box<Desired>),
    /// It runs and matches: wait on it, and push its grants and credentials to its proxy
    /// (they may have changed while nobody watched).
    Adopt(Box<Desired>, SandboxInfo),
    /// Its assignment or template changed: stop it, then start the new one.
    Restart(Box<Desired>),
    /// Its credential bundle changed: rotate the proxy's credentials live.
    RotateCredentials(Box<Desired>),
    /// Its grants changed (edited, renewed, expired): replace the proxy's grants live.
    UpdateGrants(Box<Desired>),
    /// It exited while nobody was waiting: collect and report the exit.
    CollectExit(Box<Desired>, SandboxInfo),
    /// Its exit was reported but the launcher still holds the record: clean up, silently.
    Cleanup(Localpart),
    /// The daemon remembers a principal that is neither assigned (validly) nor running:
    /// forget it (no more back-off timers or status for it).
    Forget(Localpart),
    /// It is no longer assigned: stop it.
    Remove(Localpart),
    /// It cannot start: report why.
    ReportInvalid {
        /// The principal as written.
        principal: String,
        /// Why.
        reason: String,
    },
}

/// The back-off before the `attempts`-th retry: 1 s, 2 s, 4 s, … capped at `max`.
///
/// Example: `backoff(1, 30 s)` → 1 s; `backoff(4, 30 s)` → 8 s; `backoff(9, 30 s)` → 30 s.
pub fn backoff(attempts: u32, max: Duration) -> Duration {
    let exponent = attempts.saturating_sub(1).min(16);
    Duration::from_secs(1u64 << exponent).min(max)
}

/// The actions that take `actual` towards `desired`. `reported` holds the last failure
/// reported per principal (as written), so a failure is not reported twice.
pub fn plan(
    desired: &[DesiredEntry],
    actual: &[SandboxInfo],
    memory: &BTreeMap<Localpart, Memory>,
    reported: &BTreeMap<String, String>,
    now: Instant,
) -> Vec<Action> {
    let mut actions = Vec::new();
    for entry in desired {
        let desired = match entry {
            DesiredEntry::Ready(desired) => desired,
            DesiredEntry::Invalid { principal, reason } => {
                if reported.get(principal) != Some(reason) {
                    actions.push(Action::ReportInvalid {
                        principal: principal.clone(),
                        reason: reason.clone(),
                    });
                }
                continue;
            }
        };
        let principal = &desired.create.principal;
        let remembered = memory.get(principal);
        let sandbox = actual
            .iter()
            .find(|sandbox| sandbox.principal == *principal);
        match sandbox {
            Some(sandbox) if sandbox.config_hash != desired.create.config_hash => {
                actions.push(Action::Restart(desired.clone()));
            }
            Some(sandbox) if sandbox.exit_code.is_some() => {
                let waiting = remembered
                    .is_some_and(|memory| memory.phase == Phase::Running { pid: sandbox.pid });
                let collected =
                    remembered.is_some_and(|memory| memory.collected == Some(sandbox.pid));
                // When the daemon waits on it, the waiter reports the exit.
                if collected {
                    actions.push(Action::Cleanup(principal.clone()));
                } else if !waiting {
                    actions.push(Action::CollectExit(desired.clone(), sandbox.clone()));
                }
            }
            Some(sandbox) => {
                let adopted = remembered
                    .is_some_and(|memory| memory.phase == Phase::Running { pid: sandbox.pid });
                if !adopted {
                    actions.push(Action::Adopt(desired.clone(), sandbox.clone()));
                    continue;
                }
                if remembered.and_then(|memory| memory.installed_credentials.as_deref())
                    != desired
                        .create
                        .credentials
                        .as_ref()
                        .map(|bundle| bundle.ciphertext.as_str())
                {
                    actions.push(Action::RotateCredentials(desired.clone()));
                }
                if remembered.map(|memory| &memory.installed_grants) != Some(&desired.create.grants)
                {
                    actions.push(Action::UpdateGrants(desired.clone()));
                }
            }
            None => {
                let held = remembered.is_some_and(|memory| {
                    memory.config_hash == desired.create.config_hash
                        && match memory.phase {
                            Phase::BackOff { until } => now < until,
                            Phase::Stopped => true,
                            Phase::Running { .. } => false,
                        }
                });
                if !held {
                    actions.push(Action::Create(desired.clone()));
                }
            }
        }
    }
    for sandbox in actual {
        let still_named = desired
            .iter()
            .any(|entry| entry.principal_name() == sandbox.principal.as_str());
        if !still_named {
            actions.push(Action::Remove(sandbox.principal.clone()));
        }
    }
    for principal in memory.keys() {
        let ready = desired.iter().any(|entry| {
            matches!(entry, DesiredEntry::Ready(desired) if desired.create.principal == *principal)
        });
        let running = actual.iter().any(|sandbox| sandbox.principal == *principal);
        if !ready && !running {
            actions.push(Action::Forget(principal.clone()));
        }
    }
    actions
}

/// The earliest back-off deadline, for the daemon's timer.
pub fn next_deadline(memory: &BTreeMap<Localpart, Memory>) -> Option<Instant> {
    memory
        .values()
        .filter_map(|memory| match memory.phase {
            Phase::BackOff { until } => Some(until),
            _ => None,
        })
        .min()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::launcher::ipc::CreateSandbox;
    use crate::schema::Template;

    fn name(text: &str) -> Localpart {
        Localpart::parse(text).unwrap()
    }

    fn ready(principal: &str, hash: &str) -> DesiredEntry {
        DesiredEntry::Ready(Box::new(Desired {
            create: CreateSandbox {
                principal: name(principal),
                template: Template::base(),
                payload_json: "{}".into(),
                credentials: None,
                grants: Vec::new(),
                config_hash: hash.into(),
            },
            restart_policy: RestartPolicy::OnFailure,
        }))
    }

    fn running(principal: &str, hash: &str, pid: u32) -> SandboxInfo {
        SandboxInfo {
            principal: name(principal),
            pid,
            proxy_pid: pid - 1,
            config_hash: hash.into(),
            started_at_ms: 0,
            exit_code: None,
        }
    }

    fn remembered(hash: &str, phase: Phase) -> Memory {
        Memory {
            config_hash: hash.into(),
            phase,
            attempts: 0,
            installed_credentials: None,
            installed_grants: Vec::new(),
            restart_policy: RestartPolicy::OnFailure,
            started: Instant::now(),
            collected: None,
        }
    }

    fn kinds(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .map(|action| {
                let text = format!("{action:?}");
                text[..text.find('(').or(text.find(' ')).unwrap_or(text.len())].to_owned()
            })
            .collect()
    }

    #[test]
    fn converges_from_nothing_and_removes_what_is_no_longer_assigned() {
        let now = Instant::now();
        let actions = plan(
            &[ready("a/x", "h1")],
            &[running("a/gone", "h", 10)],
            &BTreeMap::new(),
            &BTreeMap::new(),
            now,
        );
        assert_eq!(kinds(&actions), ["Create", "Remove"]);
    }

    #[test]
    fn a_restarted_daemon_adopts_matching_sandboxes_and_restarts_changed_ones() {
        let now = Instant::now();
        let actual = [running("a/same", "h1", 10), running("a/changed", "old", 20)];
        let actions = plan(
            &[ready("a/same", "h1"), ready("a/changed", "new")],
            &actual,
            &BTreeMap::new(),
            &BTreeMap::new(),
            now,
        );
        assert_eq!(kinds(&actions), ["Adopt", "Restart"]);
        // Once adopted, nothing more happens.
        let memory =
            BTreeMap::from([(name("a/same"), remembered("h1", Phase::Running { pid: 10 }))]);
        assert!(
            plan(
                &[ready("a/same", "h1")],
                &actual[..1],
                &memory,
                &BTreeMap::new(),
                now
            )
            .is_empty()
        );
    }

    #[test]
    fn back_off_and_stopped_principals_wait_until_their_time_or_a_change() {
        let now = Instant::now();
        let later = now + Duration::from_secs(5);
        let memory = BTreeMap::from([
            (
                name("a/backoff"),
                remembered("h", Phase::BackOff { until: later }),
            ),
            (name("a/stopped"), remembered("h", Phase::Stopped)),
        ]);
        let desired = [ready("a/backoff", "h"), ready("a/stopped", "h")];
        assert!(plan(&desired, &[], &memory, &BTreeMap::new(), now).is_empty());
        assert_eq!(
            kinds(&plan(&desired, &[], &memory, &BTreeMap::new(), later)),
            ["Create"],
            "back-off over"
        );
        let changed = [ready("a/backoff", "h"), ready("a/stopped", "h2")];
        assert_eq!(
            kinds(&plan(&changed, &[], &memory, &BTreeMap::new(), now)),
            ["Create"]
        );
        assert_eq!(next_deadline(&memory), Some(later));
    }

    #[test]
    fn failures_are_reported_once_per_reason() {
        let now = Instant::now();
        let invalid = DesiredEntry::Invalid {
            principal: "a/bad".into(),
            reason: "unknown template".into(),
        };
        let memory = BTreeMap::new();
        let mut reported = BTreeMap::new();
        assert_eq!(
            kinds(&plan(
                std::slice::from_ref(&invalid),
                &[],
                &memory,
                &reported,
                now
            )),
            ["ReportInvalid"]
        );
        reported.insert("a/bad".to_owned(), "unknown template".to_owned());
        assert!(plan(&[invalid], &[], &memory, &reported, now).is_empty());
    }

    #[test]
    fn exits_nobody_waited_for_are_collected_and_credentials_rotate() {
        let now = Instant::now();
        let mut exited = running("a/x", "h", 10);
        exited.exit_code = Some(3);
        assert_eq!(
            kinds(&plan(
                &[ready("a/x", "h")],
                &[exited.clone()],
                &BTreeMap::new(),
                &BTreeMap::new(),
                now
            )),
            ["CollectExit"]
        );
        let waiting = BTreeMap::from([(name("a/x"), remembered("h", Phase::Running { pid: 10 }))]);
        assert!(
            plan(
                &[ready("a/x", "h")],
                &[exited],
                &waiting,
                &BTreeMap::new(),
                now
            )
            .is_empty()
        );

        let mut with_bundle = ready("a/x", "h");
        if let DesiredEntry::Ready(desired) = &mut with_bundle {
            desired.create.credentials = Some(crate::schema::Credentials {
                version: 1,
                recipients: vec![],
                key_names: vec![],
                ciphertext: "new".into(),
                updated_at: 0,
            });
        }
        assert_eq!(
            kinds(&plan(
                &[with_bundle],
                &[running("a/x", "h", 10)],
                &waiting,
                &BTreeMap::new(),
                now
            )),
            ["RotateCredentials"]
        );
    }

    #[test]
    fn changed_grants_go_live_without_a_restart() {
        let now = Instant::now();
        let waiting = BTreeMap::from([(name("a/x"), remembered("h", Phase::Running { pid: 10 }))]);
        let mut granted = ready("a/x", "h");
        if let DesiredEntry::Ready(desired) = &mut granted {
            desired.create.grants = vec![Grant {
                actions: vec!["matrix/join".into()],
                targets: vec![],
                expires_at: Some(2_000),
            }];
        }
        let actions = plan(
            std::slice::from_ref(&granted),
            &[running("a/x", "h", 10)],
            &waiting,
            &BTreeMap::new(),
            now,
        );
        assert_eq!(kinds(&actions), ["UpdateGrants"]);
        // Once the proxy holds them, nothing is left to do.
        let DesiredEntry::Ready(desired) = &granted else {
            unreachable!()
        };
        let mut installed = waiting.clone();
        if let Some(memory) = installed.get_mut(&name("a/x")) {
            memory.installed_grants = desired.create.grants.clone();
        }
        assert!(
            plan(
                &[granted],
                &[running("a/x", "h", 10)],
                &installed,
                &BTreeMap::new(),
                now
            )
            .is_empty()
        );
    }

    #[test]
    fn a_reported_exit_is_cleaned_up_silently_and_unassigned_memory_is_forgotten() {
        let now = Instant::now();
        let mut exited = running("a/x", "h", 10);
        exited.exit_code = Some(3);
        let mut collected = remembered("h", Phase::Stopped);
        collected.collected = Some(10);
        let memory = BTreeMap::from([(name("a/x"), collected)]);
        assert_eq!(
            kinds(&plan(
                &[ready("a/x", "h")],
                &[exited],
                &memory,
                &BTreeMap::new(),
                now
            )),
            ["Cleanup"]
        );
        // Removed while backing off: forgotten, so no timer fires for it any more.
        let later = now + Duration::from_secs(5);
        let backing_off = BTreeMap::from([(
            name("a/gone"),
            remembered("h", Phase::BackOff { until: later }),
        )]);
        assert_eq!(
            kinds(&plan(&[], &[], &backing_off, &BTreeMap::new(), now)),
            ["Forget"]
        );
    }

    #[test]
    fn backoff_doubles_to_its_cap() {
        let max = Duration::from_secs(30);
        let delays: Vec<u64> = (1..=7)
            .map(|attempt| backoff(attempt, max).as_secs())
            .collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30]);
    }
}
