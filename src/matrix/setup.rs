//! Bureau's room layout for a namespace, created idempotently (`bureau matrix setup`):
//!
//! ```text
//! #acme:server                      the namespace's space
//! #acme/system:server               system room (token signing key, …)
//! #acme/template:server             templates (m.bureau.template)
//! #acme/fleet/prod:server           the fleet's room
//! #acme/fleet/prod/machine:server   machine keys, info, status, WebRTC signalling
//! #acme/fleet/prod/service:server   service registrations
//! ```
//!
//! Every room is a child of the space. Power levels: state events need power 100 by default, so
//! only admins change templates, credentials and configs; the few events machines publish for
//! themselves (keys, info, status, signalling, services) need power 0 in the rooms that hold
//! them. A second run finds every room by alias and only repairs what differs.

use ruma::OwnedRoomId;
use serde::Serialize;
use serde_json::{Value, json};

use super::api::RoomOptions;
use super::client::Client;
use super::error::MatrixError;

/// What `setup_namespace` found or did for one room.
#[derive(Debug, Clone, Serialize)]
pub struct RoomReport {
    pub alias: String,
    pub room_id: String,
    /// Created by this run (false: it existed).
    pub created: bool,
    /// Power levels were changed to Bureau's.
    pub power_levels_repaired: bool,
    /// The room was added to the namespace's space.
    pub added_to_space: bool,
    /// Built-in templates published into this (template) room by this run; existing ones are
    /// never overwritten, so an operator's edits survive a second setup.
    pub templates_published: Vec<String>,
}

/// The event types a room lets ordinary members (power 0) send as state.
fn member_state_events(role: RoomRole) -> &'static [&'static str] {
    match role {
        RoomRole::Space
        | RoomRole::System
        | RoomRole::Template
        | RoomRole::Fleet
        | RoomRole::Config => &[],
        RoomRole::Machine => &[
            "m.bureau.machine_key",
            "m.bureau.machine_info",
            "m.bureau.machine_status",
            "m.bureau.webrtc_offer",
            "m.bureau.webrtc_answer",
        ],
        RoomRole::Service => &["m.bureau.service"],
    }
}

/// Admin-only state events, listed explicitly so a changed `state_default` cannot open them.
const ADMIN_STATE_EVENTS: [&str; 6] = [
    "m.bureau.template",
    "m.bureau.credentials",
    "m.bureau.machine_config",
    "m.bureau.token_signing_key",
    "m.bureau.layout",
    "m.room.power_levels",
];

/// What a Bureau room is for; decides which state events members (power 0) may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RoomRole {
    Space,
    System,
    Template,
    Fleet,
    Machine,
    Service,
    /// A machine's config room (`bureau machine provision`): admin-only state; the machine
    /// posts outcome messages.
    Config,
}

/// The power-level fields Bureau sets (never `users`: in room version 12 the creator's power is
/// implicit and may not be listed; older versions keep the creator entry Synapse put there).
fn bureau_power_levels(role: RoomRole) -> Value {
    let mut events = serde_json::Map::new();
    for event_type in ADMIN_STATE_EVENTS {
        events.insert(event_type.to_owned(), json!(100));
    }
    for event_type in member_state_events(role) {
        events.insert((*event_type).to_owned(), json!(0));
    }
    json!({
        "state_default": 100,
        "events_default": 0,
        "invite": 50,
        "kick": 100,
        "ban": 100,
        "redact": 50,
        "events": events,
    })
}

/// Whether `current` power levels already contain everything in `wanted`.
fn power_levels_match(current: &Value, wanted: &Value) -> bool {
    let Some(wanted) = wanted.as_object() else {
        return true;
    };
    wanted
        .iter()
        .all(|(key, value)| match (key.as_str(), value) {
            ("events", Value::Object(events)) => events
                .iter()
                .all(|(event_type, level)| current["events"].get(event_type) == Some(level)),
            _ => current.get(key) == Some(value),
        })
}

/// `current` with `wanted`'s fields written over it (event levels merged one by one).
fn merged_power_levels(current: &Value, wanted: &Value) -> Value {
    let mut merged = current.clone();
    if let (Some(merged_map), Some(wanted_map)) = (merged.as_object_mut(), wanted.as_object()) {
        for (key, value) in wanted_map {
            if key == "events" {
                let events = merged_map.entry("events").or_insert_with(|| json!({}));
                if let (Some(events), Some(wanted_events)) =
                    (events.as_object_mut(), value.as_object())
                {
                    for (event_type, level) in wanted_events {
                        events.insert(event_type.clone(), level.clone());
                    }
                }
            } else {
                merged_map.insert(key.clone(), value.clone());
            }
        }
    }
    merged
}

/// The server part of the client's user ID (aliases are made on the user's own server).
fn server_name(client: &Client) -> Result<String, MatrixError> {
    client
        .user_id()
        .map(|user_id| user_id.server_name().to_string())
        .ok_or_else(|| MatrixError::Invalid("matrix setup needs a logged-in client".to_owned()))
}

/// Finds the room `#alias_localpart:<server>` (joining it) or creates it with Bureau's power
/// levels for `role`, repairs its power levels, and adds it to `space`. Idempotent.
pub(crate) async fn ensure_room(
    client: &Client,
    alias_localpart: &str,
    name: &str,
    role: RoomRole,
    space: Option<&OwnedRoomId>,
) -> Result<(RoomReport, OwnedRoomId), MatrixError> {
    let server = server_name(client)?;
    let alias = format!("#{alias_localpart}:{server}");
    let wanted_levels = bureau_power_levels(role);
    let (room_id, created) = match client.resolve_alias(&alias).await? {
        Some(room_id) => {
            // Joining a room we are already in is a no-op; it also covers a room we left.
            client.join(room_id.as_str()).await?;
            (room_id, false)
        }
        None => {
            let mut options = RoomOptions {
                alias_localpart: Some(alias_localpart.to_owned()),
                name: Some(name.to_owned()),
                space: role == RoomRole::Space,
                power_levels: Some(wanted_levels.clone()),
                ..RoomOptions::default()
            };
            if let Some(space) = space {
                options.initial_state.push((
                    "m.space.parent".to_owned(),
                    space.to_string(),
                    json!({"via": [server], "canonical": true}),
                ));
            }
            (client.create_room(&options).await?, true)
        }
    };

    let current = client
        .state_get(&room_id, "m.room.power_levels", "")
        .await?
        .unwrap_or_else(|| json!({}));
    let power_levels_repaired = !power_levels_match(&current, &wanted_levels);
    if power_levels_repaired {
        let merged = merged_power_levels(&current, &wanted_levels);
        client
            .state_put(&room_id, "m.room.power_levels", "", &merged)
            .await?;
    }

    let mut added_to_space = false;
    if let Some(space) = space {
        let child = client
            .state_get(space, "m.space.child", room_id.as_str())
            .await?;
        let present = child.is_some_and(|content| content.get("via").is_some());
        if !present {
            client
                .state_put(
                    space,
                    "m.space.child",
                    room_id.as_str(),
                    &json!({"via": [server]}),
                )
                .await?;
            added_to_space = true;
        }
    }
    Ok((
        RoomReport {
            alias,
            room_id: room_id.to_string(),
            created,
            power_levels_repaired,
            added_to_space,
            templates_published: Vec::new(),
        },
        room_id,
    ))
}

/// Creates (or repairs) the namespace's space and rooms, and the fleet's rooms when `fleet` is
/// given. Returns one report per room, the space first.
pub async fn setup_namespace(
    client: &Client,
    namespace: &crate::naming::Localpart,
    fleet: Option<&crate::naming::Localpart>,
) -> Result<Vec<RoomReport>, MatrixError> {
    let namespace = namespace.as_str();
    let (space_report, space_id) =
        ensure_room(client, namespace, namespace, RoomRole::Space, None).await?;
    let mut reports = vec![space_report];
    let mut rooms = vec![
        (format!("{namespace}/system"), RoomRole::System),
        (format!("{namespace}/template"), RoomRole::Template),
    ];
    if let Some(fleet) = fleet {
        let fleet_localpart = format!("{namespace}/fleet/{}", fleet.as_str());
        rooms.push((format!("{fleet_localpart}/machine"), RoomRole::Machine));
        rooms.push((format!("{fleet_localpart}/service"), RoomRole::Service));
        rooms.insert(2, (fleet_localpart, RoomRole::Fleet));
    }
    for (alias_localpart, role) in rooms {
        let (mut report, room_id) = ensure_room(
            client,
            &alias_localpart,
            &alias_localpart,
            role,
            Some(&space_id),
        )
        .await?;
        if role == RoomRole::Template {
            report.templates_published = publish_builtin_templates(client, &room_id).await?;
        }
        reports.push(report);
    }
    Ok(reports)
}

/// Publishes `base` and `agent-base` where the template room has no template of that name.
async fn publish_builtin_templates(
    client: &Client,
    room_id: &OwnedRoomId,
) -> Result<Vec<String>, MatrixError> {
    let mut published = Vec::new();
    for (name, template) in crate::schema::Template::builtins() {
        if client
            .state_get(room_id, crate::schema::TEMPLATE, name)
            .await?
            .is_some()
        {
            continue;
        }
        let content = serde_json::to_value(&template)
            .map_err(|error| MatrixError::Invalid(format!("template {name}: {error}")))?;
        client
            .state_put(room_id, crate::schema::TEMPLATE, name, &content)
            .await?;
        published.push(name.to_owned());
    }
    Ok(published)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_events_need_100_and_machine_events_0_only_in_the_machine_room() {
        let machine = bureau_power_levels(RoomRole::Machine);
        assert_eq!(machine["events"]["m.bureau.machine_config"], 100);
        assert_eq!(machine["events"]["m.bureau.machine_key"], 0);
        assert_eq!(machine["state_default"], 100);
        let template = bureau_power_levels(RoomRole::Template);
        assert_eq!(template["events"]["m.bureau.template"], 100);
        assert!(template["events"].get("m.bureau.machine_key").is_none());
        assert!(
            template.get("users").is_none(),
            "creators are implicit in room v12"
        );
    }

    #[test]
    fn matching_ignores_extra_fields_and_merge_keeps_them() {
        let wanted = bureau_power_levels(RoomRole::Template);
        let mut current = merged_power_levels(&json!({"users": {"@a:x": 100}}), &wanted);
        assert!(power_levels_match(&current, &wanted));
        assert_eq!(current["users"]["@a:x"], 100);
        current["events"]["m.bureau.template"] = json!(0);
        assert!(!power_levels_match(&current, &wanted));
    }
}
