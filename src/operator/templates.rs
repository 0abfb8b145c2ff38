//! `bureau template push|show|list|validate`: templates are `m.bureau.template` state events
//! (state key = the template's name) in a template room, normally a namespace's
//! `#<namespace>/template:<server>`.
//!
//! Invariant: nothing invalid is published. `push` checks the template itself
//! ([`Template::validate`]) and that its `inherits` chain resolves against what is published
//! (every parent exists, no cycle, not too deep) before writing. A plain reference such as
//! `agent-base` is looked up in the *default room*: the namespace's template room given by the
//! caller (for a machine: [`MachineIdentity::template_room_alias`](crate::machine::MachineIdentity::template_room_alias)),
//! as the daemon does.

use std::collections::HashMap;

use ruma::OwnedRoomId;
use serde::Serialize;

use super::Operator;
use super::error::{MatrixContext, OperatorError};
use super::rooms::{read_state, require_room, room_state};
use crate::naming::Localpart;
use crate::schema::{
    MAX_INHERITANCE_DEPTH, TEMPLATE, Template, TemplateError, TemplateRef, TemplateRoom, resolve,
};

/// Where a template lives: its room's alias and its name (the state key).
///
/// Example: `acme/template:agent-base` on `bureau.local` → room `#acme/template:bureau.local`,
/// name `agent-base`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct TemplateLocation {
    /// The template room's alias.
    pub room: String,
    /// The template's name.
    pub name: Localpart,
}

/// Where `reference` points: a plain name (`agent-base`) in `default_room`, `ROOM:NAME` in
/// `#ROOM:<server_name>`, `#ROOM:SERVER:NAME` in `#ROOM:SERVER`.
///
/// Example: (`agent-base`, default `#acme/template:bureau.local`) → that room, `agent-base`;
/// (`agent-base`, no default room) → `Err(template "agent-base" names no room; give --namespace
/// …)`.
///
/// ```
/// use bureau::operator::template_location;
/// use bureau::schema::TemplateRef;
///
/// let plain = TemplateRef::parse("agent-base")?;
/// let location = template_location("bureau.local", &plain, Some("#acme/template:bureau.local"))?;
/// assert_eq!(location.room, "#acme/template:bureau.local");
/// let local = TemplateRef::parse("ops/template:agent-base")?;
/// assert_eq!(template_location("bureau.local", &local, None)?.room, "#ops/template:bureau.local");
/// assert!(template_location("bureau.local", &plain, None).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn template_location(
    server_name: &str,
    reference: &TemplateRef,
    default_room: Option<&str>,
) -> Result<TemplateLocation, OperatorError> {
    let room = match reference.room() {
        TemplateRoom::Default => default_room.map(str::to_owned).ok_or_else(|| {
            OperatorError::Invalid(format!(
                "template {:?} names no room; give --namespace NS (the room #NS/template:{server_name}), \
                 or write the room into the name, like NS/template:{}",
                reference.to_string(),
                reference.name()
            ))
        })?,
        TemplateRoom::Local(room) => format!("#{room}:{server_name}"),
        TemplateRoom::Alias(alias) => alias.to_string(),
    };
    Ok(TemplateLocation {
        room,
        name: reference.name().clone(),
    })
}

/// Parses a template file (JSON) and checks it ([`Template::validate`]): what `template
/// validate FILE` does offline.
///
/// Example: `{"command": ["/bin/true"], "environment": {"BUREAU_X": "1"}}` → `Err(template:
/// environment name "BUREAU_X" is reserved: …)`.
///
/// ```
/// use bureau::operator::parse_template;
///
/// let template = parse_template(br#"{"inherits": "agent-base", "command": ["/bin/true"]}"#)?;
/// assert_eq!(template.command, ["/bin/true"]);
/// assert!(parse_template(br#"{"filesystem": [{"type": "tmpfs", "destination": "tmp"}]}"#).is_err());
/// assert!(parse_template(b"[1]").is_err());
/// # Ok::<(), bureau::operator::OperatorError>(())
/// ```
pub fn parse_template(json: &[u8]) -> Result<Template, OperatorError> {
    let template: Template = serde_json::from_slice(json)
        .map_err(|error| OperatorError::Invalid(format!("not a template: {error}")))?;
    template
        .validate()
        .map_err(|error| OperatorError::Invalid(error.to_string()))?;
    Ok(template)
}

/// Looks templates up by location, remembering rooms and templates already fetched.
struct TemplateCache<'a> {
    operator: &'a Operator,
    /// The room plain references are looked up in.
    default_room: String,
    rooms: HashMap<String, Option<OwnedRoomId>>,
    templates: HashMap<TemplateLocation, Option<Template>>,
}

impl<'a> TemplateCache<'a> {
    fn new(operator: &'a Operator, default_room: String) -> Self {
        Self {
            operator,
            default_room,
            rooms: HashMap::new(),
            templates: HashMap::new(),
        }
    }

    fn locate(&self, reference: &TemplateRef) -> Result<TemplateLocation, OperatorError> {
        template_location(
            self.operator.server_name(),
            reference,
            Some(&self.default_room),
        )
    }

    async fn room(&mut self, alias: &str) -> Result<Option<OwnedRoomId>, OperatorError> {
        if let Some(room) = self.rooms.get(alias) {
            return Ok(room.clone());
        }
        let room = self
            .operator
            .client()
            .resolve_alias(alias)
            .await
            .doing(|| format!("looking up the template room {alias}"))?;
        self.rooms.insert(alias.to_owned(), room.clone());
        Ok(room)
    }

    /// The template at `location`, `None` when it or its room does not exist.
    async fn fetch(
        &mut self,
        location: &TemplateLocation,
    ) -> Result<Option<Template>, OperatorError> {
        if let Some(template) = self.templates.get(location) {
            return Ok(template.clone());
        }
        let template = match self.room(&location.room).await? {
            Some(room_id) => {
                read_state::<Template>(
                    self.operator,
                    &room_id,
                    &location.room,
                    TEMPLATE,
                    location.name.as_str(),
                )
                .await?
            }
            None => None,
        };
        self.templates.insert(location.clone(), template.clone());
        Ok(template)
    }

    /// Fetches `first`'s `inherits` chain (stopping at a missing template or past the depth
    /// limit; refusing a cycle, however its members are spelled), then resolves `reference`
    /// against what was fetched, with `first` as the template `reference` names.
    async fn resolve(
        &mut self,
        reference: &TemplateRef,
        first: Template,
    ) -> Result<Template, OperatorError> {
        let start = self.locate(reference)?;
        let mut chain = vec![(start.clone(), reference.to_string())];
        let mut current = first.clone();
        while let Some(parent) = current.inherits.clone() {
            let location = self.locate(&parent)?;
            if let Some(index) = chain.iter().position(|(seen, _)| *seen == location) {
                let mut cycle: Vec<String> = chain[index..]
                    .iter()
                    .map(|(_, name)| name.clone())
                    .collect();
                cycle.push(parent.to_string());
                let error = TemplateError::Cycle {
                    template: reference.to_string(),
                    cycle,
                };
                return Err(OperatorError::Invalid(error.to_string()));
            }
            if chain.len() > MAX_INHERITANCE_DEPTH {
                break;
            }
            chain.push((location.clone(), parent.to_string()));
            match self.fetch(&location).await? {
                Some(template) => current = template,
                None => break,
            }
        }
        let lookup = |wanted: &TemplateRef| {
            let location = self.locate(wanted).ok()?;
            if location == start {
                return Some(first.clone());
            }
            self.templates.get(&location).cloned().flatten()
        };
        resolve(reference, lookup).map_err(|error| OperatorError::Invalid(error.to_string()))
    }
}

/// Fetches the template at `location`; `None` when the room has no template of that name.
/// A missing room is [`OperatorError::RoomMissing`].
///
/// Example: `#acme/template:bureau.local`, `agent-base` after `bureau matrix setup acme` →
/// `Some(Template::agent_base())`.
pub async fn fetch_template(
    operator: &Operator,
    location: &TemplateLocation,
) -> Result<Option<Template>, OperatorError> {
    let room_id = require_room(operator, &location.room, || {
        "create it with `bureau matrix setup NAMESPACE` (template rooms are #NAMESPACE/template)"
            .to_owned()
    })
    .await?;
    read_state(
        operator,
        &room_id,
        &location.room,
        TEMPLATE,
        location.name.as_str(),
    )
    .await
}

/// Resolves `reference` with its whole `inherits` chain (plain names in `default_room`): the
/// template as the daemon will use it, `inherits` gone.
///
/// Example: `agent-base` in `#acme/template:bureau.local` → `base` merged with `agent-base`;
/// a template that does not exist → `Err(template "x" does not exist; publish it …)`.
pub async fn resolve_template(
    operator: &Operator,
    reference: &TemplateRef,
    default_room: &str,
) -> Result<Template, OperatorError> {
    let location = template_location(operator.server_name(), reference, Some(default_room))?;
    let first = fetch_template(operator, &location).await?.ok_or_else(|| {
        OperatorError::Invalid(format!(
            "template {:?} does not exist in {}; publish it with `bureau template push` or fix \
             the name",
            reference.to_string(),
            location.room
        ))
    })?;
    TemplateCache::new(operator, default_room.to_owned())
        .resolve(reference, first)
        .await
}

/// Resolves an unpublished template (a file being validated) against what is published: its
/// parent's chain (plain names in `default_room`) merged with it. A template without `inherits`
/// comes back as it is.
///
/// Example: a file inheriting `agent-base` → `base`, `agent-base` and the file merged; one
/// inheriting `agent-bsae` → `Err(template "agent-bsae" does not exist in …; …)`.
pub async fn resolve_unpublished(
    operator: &Operator,
    template: &Template,
    default_room: &str,
) -> Result<Template, OperatorError> {
    let Some(parent) = &template.inherits else {
        return Ok(template.clone());
    };
    let parent = resolve_template(operator, parent, default_room).await?;
    let mut resolved = crate::schema::merge(parent, template.clone());
    resolved.inherits = None;
    Ok(resolved)
}

/// What [`push_template`] published.
///
/// Example (as `--json`): `{"room": "#acme/template:bureau.local", "name": "claude",
/// "room_id": "!abc", "event_id": "$def", "inherits": "agent-base"}`.
#[derive(Debug, Clone, Serialize)]
pub struct PushedTemplate {
    /// The template room's alias.
    pub room: String,
    /// The template's name.
    pub name: Localpart,
    /// The template room's ID.
    pub room_id: String,
    /// The state event's ID.
    pub event_id: String,
    /// The parent, as written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inherits: Option<String>,
}

/// Publishes `template` as `reference` (plain names in `default_room`), after checking it
/// ([`Template::validate`]) and that its `inherits` chain resolves with it in place (parents
/// exist, no cycle). Replaces a template of that name.
///
/// Example: pushing `a` inheriting `b` where `b` inherits `a` → `Err(template "a":
/// inheritance cycle a -> b -> a; …)`, nothing published.
pub async fn push_template(
    operator: &Operator,
    reference: &TemplateRef,
    template: &Template,
    default_room: &str,
) -> Result<PushedTemplate, OperatorError> {
    template.validate().map_err(|error| {
        OperatorError::Invalid(format!("template {:?}: {error}", reference.to_string()))
    })?;
    let location = template_location(operator.server_name(), reference, Some(default_room))?;
    let room_id = require_room(operator, &location.room, || {
        "create it with `bureau matrix setup NAMESPACE` (template rooms are #NAMESPACE/template)"
            .to_owned()
    })
    .await?;
    TemplateCache::new(operator, default_room.to_owned())
        .resolve(reference, template.clone())
        .await?;
    let content = serde_json::to_value(template)
        .map_err(|error| OperatorError::Invalid(format!("encoding the template: {error}")))?;
    let event_id = operator
        .client()
        .state_put(&room_id, TEMPLATE, location.name.as_str(), &content)
        .await
        .doing(|| format!("publishing template {} in {}", location.name, location.room))?;
    Ok(PushedTemplate {
        room: location.room,
        name: location.name,
        room_id: room_id.to_string(),
        event_id: event_id.to_string(),
        inherits: template.inherits.as_ref().map(ToString::to_string),
    })
}

/// One template of a room, for `template list`.
///
/// Example: `{"name": "agent-base", "description": "Bureau agent base: …", "inherits": "base"}`.
#[derive(Debug, Clone, Serialize)]
pub struct TemplateSummary {
    /// The template's name.
    pub name: String,
    /// Its description, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Its parent, as written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inherits: Option<String>,
    /// Why it cannot be read, for a template event this Bureau cannot parse.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Every template in the room `room` (an alias), sorted by name. A removed template (empty
/// content) is left out; one that does not parse is listed with its error.
///
/// Example: after `bureau matrix setup acme` → `base`, `agent-base`.
pub async fn list_templates(
    operator: &Operator,
    room: &str,
) -> Result<Vec<TemplateSummary>, OperatorError> {
    let room_id = require_room(operator, room, || {
        "create it with `bureau matrix setup NAMESPACE` (template rooms are #NAMESPACE/template)"
            .to_owned()
    })
    .await?;
    let mut summaries: Vec<TemplateSummary> = room_state(operator, &room_id, room)
        .await?
        .into_iter()
        .filter(|event| event.event_type == TEMPLATE)
        .filter(|event| {
            event
                .content
                .as_object()
                .is_some_and(|fields| !fields.is_empty())
        })
        .map(
            |event| match serde_json::from_value::<Template>(event.content) {
                Ok(template) => TemplateSummary {
                    name: event.state_key,
                    description: template.description,
                    inherits: template.inherits.map(|parent| parent.to_string()),
                    error: None,
                },
                Err(error) => TemplateSummary {
                    name: event.state_key,
                    description: None,
                    inherits: None,
                    error: Some(error.to_string()),
                },
            },
        )
        .collect();
    summaries.sort_by(|left, right| left.name.cmp(&right.name));
    Ok(summaries)
}
