//! `bureau list`: per machine, the principals its `machine_config` assigns and their state from
//! its latest `m.bureau.machine_status` heartbeat.
//!
//! Invariant: read-only. A machine whose rooms or events cannot be read is listed with the
//! reason rather than failing the whole listing; an assignment that does not parse or validate
//! is listed `invalid` with the reason rather than hiding the machine's other principals; a
//! principal without a reported state is `unknown`.

use serde::Serialize;
use serde_json::Value;

use super::Operator;
use super::agents::read_config;
use super::error::OperatorError;
use super::rooms::{fleet_machine_room_alias, read_state, room_state};
use crate::machine::MachineIdentity;
use crate::naming::Localpart;
use crate::schema::{
    MACHINE_KEY, MACHINE_STATUS, MachineStatus, PrincipalAssignment, PrincipalState, RestartPolicy,
};

/// One principal of a [`MachineListing`].
///
/// Example: `{"principal": "acme/agent/pm", "template": "claude", "restart_policy":
/// "on-failure", "state": "running", "pid": 4242}`; a principal the heartbeat reports but the
/// config no longer assigns (being stopped) has no template; a malformed assignment is
/// `{"principal": "acme/agent/qa", "template": "claude", "state": "invalid", "error":
/// "malformed assignment: unknown variant `sometimes` …"}` (`principal` is
/// `principals[INDEX]` when the entry names none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrincipalListing {
    /// The principal's localpart.
    pub principal: String,
    /// Its template, when it is assigned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Its restart policy, when it is assigned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<RestartPolicy>,
    /// `starting`, `running`, `stopped`, `failed`, `unknown` (no heartbeat names it), or
    /// `invalid` (its assignment does not parse or validate; see `error`).
    pub state: String,
    /// Its sandbox's host PID, when running.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Why its assignment is `invalid`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One machine in `bureau list`.
///
/// Example (as `--json`): `{"machine": "acme/fleet/prod/machine/box1", "config_room":
/// "#acme/fleet/prod/machine/box1:bureau.local", "has_key": true, "status_reported_at":
/// 1718000000000, "principals": [{"principal": "acme/agent/pm", …}]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MachineListing {
    /// The machine's localpart.
    pub machine: String,
    /// Its config room (alias).
    pub config_room: String,
    /// Whether its launcher has published its key (it has booted at least once).
    pub has_key: bool,
    /// When its latest heartbeat was taken (ms since the epoch); `None` before the first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_reported_at: Option<u64>,
    /// Its principals: assigned ones in config order, then reported-only ones.
    pub principals: Vec<PrincipalListing>,
    /// Why part of it could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The machines of `fleet` that have published a key (`m.bureau.machine_key` in the fleet
/// machine room), sorted by name.
///
/// Example: fleet `acme/fleet/prod` with box1 booted and box2 only provisioned → `[box1]`.
pub async fn fleet_machines(
    operator: &Operator,
    fleet: &Localpart,
) -> Result<Vec<MachineIdentity>, OperatorError> {
    let alias = fleet_machine_room_alias(operator.server_name(), fleet)?;
    let room_id = super::rooms::require_room(operator, &alias, || {
        format!("is the fleet set up? (`bureau matrix setup NAMESPACE --fleet NAME` makes {alias})")
    })
    .await?;
    let mut machines: Vec<MachineIdentity> = room_state(operator, &room_id, &alias)
        .await?
        .into_iter()
        .filter(|event| event.event_type == MACHINE_KEY)
        .filter(|event| {
            event
                .content
                .as_object()
                .is_some_and(|fields| !fields.is_empty())
        })
        .filter_map(|event| operator.machine(&event.state_key).ok())
        .collect();
    machines.sort_by(|left, right| left.machine.cmp(&right.machine));
    Ok(machines)
}

/// Lists each machine's principals with their reported state (see [`MachineListing`]).
///
/// Example: box1 assigned `acme/agent/pm`, no heartbeat yet → `acme/agent/pm` `unknown`.
pub async fn list_machines(
    operator: &Operator,
    machines: &[MachineIdentity],
) -> Result<Vec<MachineListing>, OperatorError> {
    let mut listings = Vec::with_capacity(machines.len());
    for machine in machines {
        let mut listing = MachineListing {
            machine: machine.machine.to_string(),
            config_room: machine.config_room_alias(),
            has_key: false,
            status_reported_at: None,
            principals: Vec::new(),
            error: None,
        };
        if let Err(error) = fill(operator, machine, &mut listing).await {
            listing.error = Some(error.to_string());
        }
        listings.push(listing);
    }
    Ok(listings)
}

/// Reads one machine's key, status and config into `listing`.
async fn fill(
    operator: &Operator,
    machine: &MachineIdentity,
    listing: &mut MachineListing,
) -> Result<(), OperatorError> {
    let machine_alias = machine.machine_room_alias();
    let state_key = machine.machine.as_str();
    let mut status = MachineStatus::default();
    if let Some(room_id) = resolve(operator, &machine_alias).await? {
        listing.has_key = read_state::<serde_json::Value>(
            operator,
            &room_id,
            &machine_alias,
            MACHINE_KEY,
            state_key,
        )
        .await?
        .is_some();
        if let Some(reported) = read_state::<MachineStatus>(
            operator,
            &room_id,
            &machine_alias,
            MACHINE_STATUS,
            state_key,
        )
        .await?
        {
            listing.status_reported_at = Some(reported.reported_at);
            status = reported;
        }
    }
    let config_alias = machine.config_room_alias();
    let Some(config_room) = resolve(operator, &config_alias).await? else {
        return Err(OperatorError::RoomMissing {
            alias: config_alias,
            hint: format!(
                "the machine is not provisioned: `bureau machine provision {}`",
                machine.machine
            ),
        });
    };
    let config = read_config(operator, &config_room, &config_alias).await?;
    listing.principals = principals(&config.principals, &status);
    Ok(())
}

async fn resolve(
    operator: &Operator,
    alias: &str,
) -> Result<Option<ruma::OwnedRoomId>, OperatorError> {
    use super::error::MatrixContext;
    operator
        .client()
        .resolve_alias(alias)
        .await
        .doing(|| format!("looking up the room {alias}"))
}

/// Joins assignments (raw `principals` of `machine_config`) and reported states: assigned
/// principals in config order (invalid ones marked `invalid` with the reason), then those only
/// the heartbeat names.
fn principals(assignments: &[Value], status: &MachineStatus) -> Vec<PrincipalListing> {
    let state_name = |state: PrincipalState| {
        serde_json::to_value(state)
            .ok()
            .and_then(|value| value.as_str().map(str::to_owned))
            .unwrap_or_else(|| "unknown".to_owned())
    };
    let mut listed: Vec<PrincipalListing> = Vec::with_capacity(assignments.len());
    for (index, raw) in assignments.iter().enumerate() {
        let (name, assignment) = PrincipalAssignment::from_raw(index, raw);
        let reported = status
            .principals
            .iter()
            .find(|entry| entry.localpart.as_str() == name);
        let pid = reported.and_then(|entry| entry.pid);
        listed.push(match assignment {
            Ok(assignment) => PrincipalListing {
                principal: name,
                template: Some(assignment.template.to_string()),
                restart_policy: Some(assignment.restart_policy),
                state: reported
                    .map_or_else(|| "unknown".to_owned(), |entry| state_name(entry.state)),
                pid,
                error: None,
            },
            Err(reason) => PrincipalListing {
                principal: name,
                template: raw
                    .get("template")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                restart_policy: None,
                state: "invalid".to_owned(),
                pid,
                error: Some(reason),
            },
        });
    }
    for entry in &status.principals {
        if !listed
            .iter()
            .any(|listing| listing.principal == entry.localpart.as_str())
        {
            listed.push(PrincipalListing {
                principal: entry.localpart.to_string(),
                template: None,
                restart_policy: None,
                state: state_name(entry.state),
                pid: entry.pid,
                error: None,
            });
        }
    }
    listed
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn assigned_principals_get_their_reported_state_or_unknown() {
        let assignments = [
            json!({"principal": "acme/agent/pm", "template": "claude"}),
            json!({"principal": "acme/agent/dev", "template": "claude", "restart_policy": "never"}),
        ];
        let status: MachineStatus = serde_json::from_value(json!({"principals": [
            {"localpart": "acme/agent/pm", "state": "running", "pid": 42},
            {"localpart": "acme/agent/old", "state": "stopped"}
        ]}))
        .unwrap();
        let listed = principals(&assignments, &status);
        let summary: Vec<(&str, &str, Option<u32>)> = listed
            .iter()
            .map(|entry| (entry.principal.as_str(), entry.state.as_str(), entry.pid))
            .collect();
        assert_eq!(
            summary,
            [
                ("acme/agent/pm", "running", Some(42)),
                ("acme/agent/dev", "unknown", None),
                ("acme/agent/old", "stopped", None),
            ]
        );
        assert_eq!(listed[1].restart_policy, Some(RestartPolicy::Never));
        assert_eq!(listed[2].template, None);
    }

    #[test]
    fn malformed_assignments_are_listed_invalid_without_hiding_the_others() {
        let assignments = [
            json!({"principal": "acme/agent/qa", "template": "claude",
                   "restart_policy": "sometimes"}),
            json!({"principal": "acme/agent/pm", "template": "claude"}),
            json!({"template": "claude"}),
            json!({"principal": "acme/agent/pay", "template": "claude", "payload": [1]}),
        ];
        let status: MachineStatus = serde_json::from_value(json!({"principals": [
            {"localpart": "acme/agent/qa", "state": "running", "pid": 7}
        ]}))
        .unwrap();
        let listed = principals(&assignments, &status);
        let summary: Vec<(&str, &str)> = listed
            .iter()
            .map(|entry| (entry.principal.as_str(), entry.state.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                ("acme/agent/qa", "invalid"),
                ("acme/agent/pm", "unknown"),
                ("principals[2]", "invalid"),
                ("acme/agent/pay", "invalid"),
            ]
        );
        let reason = listed[0].error.as_deref().unwrap();
        assert!(reason.contains("malformed assignment"), "{reason}");
        assert!(reason.contains("sometimes"), "{reason}");
        assert_eq!(listed[0].template.as_deref(), Some("claude"));
        assert_eq!(listed[0].pid, Some(7));
        assert!(listed[1].error.is_none());
        assert!(listed[3].error.as_deref().unwrap().contains("payload"));
    }
}
