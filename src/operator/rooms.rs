//! The rooms the operator commands work in, found by alias, and their state.
//!
//! Invariant: aliases are derived only by [`MachineIdentity`]; for a fleet or a namespace
//! without a particular machine, the derivation goes through a placeholder machine of that fleet
//! or namespace, so there is still one place that spells `#<fleet>/machine:<server>` and
//! `#<namespace>/template:<server>`.

use ruma::OwnedRoomId;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::Operator;
use super::error::{MatrixContext, OperatorError};
use crate::machine::{MACHINE_SEGMENT, MachineIdentity};
use crate::naming::Localpart;

/// The shortest machine name segment, for placeholder identities.
const PLACEHOLDER_MACHINE: &str = "x";

/// A placeholder machine `<prefix>/machine/x`, for the aliases its fleet and namespace share
/// with every real machine there.
fn placeholder(server_name: &str, prefix: &str) -> Result<MachineIdentity, OperatorError> {
    MachineIdentity::new(
        "",
        server_name,
        &format!("{prefix}{MACHINE_SEGMENT}{PLACEHOLDER_MACHINE}"),
    )
    .map_err(|error| OperatorError::Invalid(format!("{prefix:?} cannot hold machines: {error}")))
}

/// The fleet machine room of `fleet` (keys, info, status of every machine in it): the room
/// [`MachineIdentity::machine_room_alias`] names for each of its machines.
///
/// Example: (`bureau.local`, `acme/fleet/prod`) → `#acme/fleet/prod/machine:bureau.local`.
///
/// ```
/// use bureau::naming::Localpart;
/// use bureau::operator::fleet_machine_room_alias;
///
/// let fleet = Localpart::parse("acme/fleet/prod")?;
/// assert_eq!(fleet_machine_room_alias("bureau.local", &fleet)?, "#acme/fleet/prod/machine:bureau.local");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn fleet_machine_room_alias(
    server_name: &str,
    fleet: &Localpart,
) -> Result<String, OperatorError> {
    Ok(placeholder(server_name, fleet.as_str())?.machine_room_alias())
}

/// The template room of `namespace` (one segment): the room
/// [`MachineIdentity::template_room_alias`] names for each machine of the namespace, and where a
/// plain template name such as `agent-base` is looked up.
///
/// Example: (`bureau.local`, `acme`) → `#acme/template:bureau.local`; `acme/x` → `Err(…)`.
///
/// ```
/// use bureau::naming::Localpart;
/// use bureau::operator::namespace_template_room_alias;
///
/// let namespace = Localpart::parse("acme")?;
/// assert_eq!(namespace_template_room_alias("bureau.local", &namespace)?, "#acme/template:bureau.local");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn namespace_template_room_alias(
    server_name: &str,
    namespace: &Localpart,
) -> Result<String, OperatorError> {
    if namespace.as_str().contains('/') {
        return Err(OperatorError::Invalid(format!(
            "namespace {:?} has more than one segment; a namespace is the first segment of its \
             names, like acme",
            namespace.as_str()
        )));
    }
    Ok(placeholder(server_name, namespace.as_str())?.template_room_alias())
}

/// What makes a machine's fleet and namespace rooms, for hints.
///
/// Example: `acme/fleet/prod/machine/box1` → "run `bureau matrix setup acme --fleet prod`
/// first".
pub(super) fn setup_hint(machine: &MachineIdentity) -> String {
    let namespace = machine.namespace();
    let fleet_prefix = format!("{namespace}/fleet/");
    match machine.fleet().strip_prefix(&fleet_prefix) {
        Some(fleet) if !fleet.is_empty() => {
            format!("run `bureau matrix setup {namespace} --fleet {fleet}` first")
        }
        _ => format!(
            "`bureau matrix setup {namespace} --fleet NAME` makes fleets named \
             {namespace}/fleet/NAME; name the machine in one, like \
             {namespace}/fleet/prod/machine/box1"
        ),
    }
}

/// The room `alias` points to; [`OperatorError::RoomMissing`] with `hint` when there is none.
///
/// Example: `#acme/template:bureau.local` before `bureau matrix setup acme` → `Err(room
/// #acme/template:bureau.local does not exist\nHint: …)`.
/// The machine's config room and its alias; an error saying to provision the machine when it
/// does not exist.
pub(super) async fn config_room(
    operator: &Operator,
    machine: &MachineIdentity,
) -> Result<(OwnedRoomId, String), OperatorError> {
    let alias = machine.config_room_alias();
    let room = require_room(operator, &alias, || {
        format!(
            "provision the machine first: `bureau machine provision {}`",
            machine.machine
        )
    })
    .await?;
    Ok((room, alias))
}

pub(super) async fn require_room(
    operator: &Operator,
    alias: &str,
    hint: impl FnOnce() -> String,
) -> Result<OwnedRoomId, OperatorError> {
    operator
        .client()
        .resolve_alias(alias)
        .await
        .doing(|| format!("looking up the room {alias}"))?
        .ok_or_else(|| OperatorError::RoomMissing {
            alias: alias.to_owned(),
            hint: hint(),
        })
}

/// The content of state event (`event_type`, `state_key`) in `room_id` (`alias` names it in
/// errors) as `T`; `None` when there is none or its content is empty (`{}`, how Bureau removes
/// a state event).
///
/// Example: a `m.bureau.machine_config` whose `principals` is a string → `Err(BadEvent …)`.
pub(super) async fn read_state<T: DeserializeOwned>(
    operator: &Operator,
    room_id: &OwnedRoomId,
    alias: &str,
    event_type: &str,
    state_key: &str,
) -> Result<Option<T>, OperatorError> {
    let content = operator
        .client()
        .state_get(room_id, event_type, state_key)
        .await
        .doing(|| format!("reading {event_type} {state_key:?} in {alias}"))?;
    match content {
        None => Ok(None),
        Some(Value::Object(fields)) if fields.is_empty() => Ok(None),
        Some(content) => {
            serde_json::from_value(content)
                .map(Some)
                .map_err(|error| OperatorError::BadEvent {
                    event: format!("{event_type} {state_key:?}"),
                    room: alias.to_owned(),
                    reason: error.to_string(),
                })
        }
    }
}

/// One state event of a room: type, state key, content.
pub(super) struct StateEvent {
    pub(super) event_type: String,
    pub(super) state_key: String,
    pub(super) content: Value,
}

/// Every current state event of a room (`GET /rooms/{id}/state`).
///
/// Example: a template room → its `m.room.*` events and one `m.bureau.template` per template.
pub(super) async fn room_state(
    operator: &Operator,
    room_id: &OwnedRoomId,
    alias: &str,
) -> Result<Vec<StateEvent>, OperatorError> {
    let events = operator
        .client()
        .room_state(room_id)
        .await
        .doing(|| format!("reading the state of {alias}"))?;
    Ok(events
        .into_iter()
        .filter_map(|mut event| {
            Some(StateEvent {
                event_type: event.get("type")?.as_str()?.to_owned(),
                state_key: event.get("state_key")?.as_str()?.to_owned(),
                content: event.get_mut("content").map(Value::take)?,
            })
        })
        .collect())
}

/// `user_id`'s membership in `room_id` (`join`, `invite`, `leave`, `ban`), if any.
///
/// Example: a principal the operator invited → `Some("invite")`.
pub(super) async fn membership(
    operator: &Operator,
    room_id: &OwnedRoomId,
    alias: &str,
    user_id: &str,
) -> Result<Option<String>, OperatorError> {
    let content = operator
        .client()
        .state_get(room_id, "m.room.member", user_id)
        .await
        .doing(|| format!("reading {user_id}'s membership of {alias}"))?;
    Ok(content.and_then(|content| content["membership"].as_str().map(str::to_owned)))
}

/// Invites `user_id` to `room_id` unless it is already joined or invited.
///
/// Example: a machine provisioned a second time into a room it already joined → no request.
pub(super) async fn invite_once(
    operator: &Operator,
    room_id: &OwnedRoomId,
    alias: &str,
    user_id: &str,
) -> Result<(), OperatorError> {
    let current = membership(operator, room_id, alias, user_id).await?;
    if matches!(current.as_deref(), Some("join" | "invite")) {
        return Ok(());
    }
    operator
        .client()
        .invite(room_id, user_id)
        .await
        .doing(|| format!("inviting {user_id} to {alias}"))
}

/// Percent-encodes one URL path segment (everything but `A-Za-z0-9-._~`).
///
/// Example: `!abc:bureau.local` → `%21abc%3Abureau.local`.
pub(super) fn encode_path_segment(segment: &str) -> String {
    let mut encoded = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    fn localpart(text: &str) -> Localpart {
        Localpart::parse(text).unwrap()
    }

    #[test]
    fn aliases_match_what_every_machine_derives() {
        let box1 =
            MachineIdentity::new("http://h", "s.test", "acme/fleet/prod/machine/box1").unwrap();
        assert_eq!(
            fleet_machine_room_alias("s.test", &localpart("acme/fleet/prod")).unwrap(),
            box1.machine_room_alias()
        );
        assert_eq!(
            namespace_template_room_alias("s.test", &localpart("acme")).unwrap(),
            box1.template_room_alias()
        );
        assert!(namespace_template_room_alias("s.test", &localpart("acme/x")).is_err());
    }

    #[test]
    fn setup_hints_name_the_setup_command() {
        let box1 = MachineIdentity::new("", "s", "acme/fleet/prod/machine/box1").unwrap();
        assert_eq!(
            setup_hint(&box1),
            "run `bureau matrix setup acme --fleet prod` first"
        );
        let odd = MachineIdentity::new("", "s", "acme/machine/box1").unwrap();
        assert!(setup_hint(&odd).contains("acme/fleet/prod/machine/box1"));
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(encode_path_segment("!abc:s.test"), "%21abc%3As.test");
        assert_eq!(encode_path_segment("a/b"), "a%2Fb");
    }
}
