//! `bureau agent create|destroy`: a principal's account, its membership of the machine's config
//! room, its sealed credential bundle (its own Matrix token plus the operator's credentials),
//! and its assignment in the machine's `m.bureau.machine_config`.
//!
//! Invariants: everything that can be refused is refused before the account is touched (the
//! assignment validates, the machine has a key, the template resolves and is runnable, every
//! credential it requires is given). The principal's password is random and forgotten; its
//! access token exists only inside the sealed bundle. `machine_config` is read, changed for this
//! one principal, validated and written back; an unreadable config is never overwritten.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use super::Operator;
use super::accounts::{ExistingAccount, create_account, random_password};
use super::credentials::{fetch_machine_key, seal_and_publish};
use super::error::{MatrixContext, OperatorError};
use super::rooms::{config_room, invite_once, membership, read_state};
use super::templates::resolve_template;
use crate::machine::{MachineIdentity, parse_machine_name};
use crate::naming::Localpart;
use crate::schema::{
    Authorization, CREDENTIALS, Grant, MACHINE_CONFIG, MACHINE_CONFIG_STATE_KEY,
    MATRIX_TOKEN_CREDENTIAL, PrincipalAssignment, RestartPolicy, TemplateRef, json_kind,
};
use crate::secret::Secret;

/// Parses `--grant ACTION[,ACTION…][=TARGET,…]` into a [`Grant`]; a grant without `=` covers
/// actions that have no target.
///
/// Example: `observe=acme/agent/**` → actions `["observe"]`, targets `["acme/agent/**"]`;
/// `matrix/join` → actions `["matrix/join"]`, no targets; `=x` → `Err(…names no action…)`.
///
/// ```
/// use bureau::operator::parse_grant;
///
/// let grant = parse_grant("observe,interrupt=acme/agent/**,acme/service/*")?;
/// assert_eq!(grant.actions, ["observe", "interrupt"]);
/// assert_eq!(grant.targets, ["acme/agent/**", "acme/service/*"]);
/// assert!(parse_grant("matrix/join")?.targets.is_empty());
/// assert!(parse_grant("=acme/x").is_err());
/// # Ok::<(), bureau::operator::OperatorError>(())
/// ```
pub fn parse_grant(text: &str) -> Result<Grant, OperatorError> {
    let (actions, targets) = match text.split_once('=') {
        Some((actions, targets)) => (actions, Some(targets)),
        None => (text, None),
    };
    let split = |list: &str| -> Vec<String> {
        list.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let actions = split(actions);
    if actions.is_empty() {
        return Err(OperatorError::Invalid(format!(
            "--grant {text:?} names no action; write ACTION[=TARGET,…], like \
             observe=acme/agent/** or matrix/join"
        )));
    }
    let targets = targets.map(split).unwrap_or_default();
    if text.contains('=') && targets.is_empty() {
        return Err(OperatorError::Invalid(format!(
            "--grant {text:?} has '=' but no target; list targets after '=', or leave out '=' \
             for actions without a target"
        )));
    }
    Ok(Grant {
        actions,
        targets,
        expires_at: None,
    })
}

/// What `agent create` should make.
///
/// Example: principal `acme/agent/pm`, template `claude`, payload `{"task": "triage"}`, restart
/// policy `on-failure`, a grant `observe=acme/agent/**`, credentials `{"ANTHROPIC_API_KEY": …}`.
#[derive(Debug)]
pub struct AgentSpec {
    /// The principal's localpart.
    pub principal: Localpart,
    /// Its template (plain names are looked up in the machine's namespace template room).
    pub template: TemplateRef,
    /// Its payload, a JSON object.
    pub payload: Value,
    /// What the daemon does when its command exits.
    pub restart_policy: RestartPolicy,
    /// What it may do.
    pub grants: Vec<Grant>,
    /// Credentials sealed with its Matrix token (not [`MATRIX_TOKEN_CREDENTIAL`]).
    pub credentials: BTreeMap<String, Secret>,
}

/// What [`create_agent`] made. Names only, no token.
///
/// Example (as `--json`): `{"principal": "acme/agent/pm", "user_id":
/// "@acme/agent/pm:bureau.local", "machine": "acme/fleet/prod/machine/box1", "config_room":
/// "#acme/fleet/prod/machine/box1:bureau.local", "template": "claude", "restart_policy":
/// "on-failure", "key_names": ["ANTHROPIC_API_KEY", "MATRIX_ACCESS_TOKEN"], "replaced": false}`.
#[derive(Debug, Clone, Serialize)]
pub struct CreatedAgent {
    /// The principal's localpart.
    pub principal: String,
    /// Its Matrix account.
    pub user_id: String,
    /// The machine it runs on.
    pub machine: String,
    /// The machine's config room (alias).
    pub config_room: String,
    /// The template, as written in the assignment.
    pub template: String,
    /// The restart policy.
    pub restart_policy: RestartPolicy,
    /// The credential names in its bundle.
    pub key_names: Vec<String>,
    /// Whether an earlier assignment of this principal was replaced.
    pub replaced: bool,
}

/// Creates principal `spec.principal` on `machine` (see the module documentation for the
/// order of steps and what is checked first). Running it again for the same principal replaces
/// its assignment and bundle and issues it a fresh token.
///
/// Example: `acme/agent/pm` with template `claude` on box1 → account
/// `@acme/agent/pm:bureau.local` joined to `#acme/fleet/prod/machine/box1:bureau.local`, its
/// bundle published there, and its assignment in box1's `machine_config`.
pub async fn create_agent(
    operator: &Operator,
    machine: &MachineIdentity,
    spec: AgentSpec,
) -> Result<CreatedAgent, OperatorError> {
    let AgentSpec {
        principal,
        template,
        payload,
        restart_policy,
        grants,
        mut credentials,
    } = spec;
    if parse_machine_name(principal.as_str()).is_ok() {
        return Err(OperatorError::Invalid(format!(
            "principal {:?} is a machine's name (<fleet>/machine/<name>); name agents \
             outside machine names, like acme/agent/pm",
            principal.as_str()
        )));
    }
    if credentials.contains_key(MATRIX_TOKEN_CREDENTIAL) {
        return Err(OperatorError::Invalid(format!(
            "credentials: {MATRIX_TOKEN_CREDENTIAL} is the principal's own Matrix token, set \
             by `agent create`; remove it from the credentials file"
        )));
    }
    let assignment = PrincipalAssignment {
        payload,
        restart_policy,
        authorization: Authorization {
            grants,
            ..Authorization::default()
        },
        ..PrincipalAssignment::new(principal.clone(), template.clone())
    };
    assignment
        .validate()
        .map_err(|error| OperatorError::Invalid(error.to_string()))?;

    // Everything that can be refused, before the account exists.
    let (config_room, config_alias) = config_room(operator, machine).await?;
    let machine_key = fetch_machine_key(operator, machine).await?;
    let resolved = resolve_template(operator, &template, &machine.template_room_alias()).await?;
    resolved.validate_resolved().map_err(|error| {
        OperatorError::Invalid(format!(
            "template {:?} cannot run a principal: {error}",
            template.to_string()
        ))
    })?;
    let missing: Vec<&str> = resolved
        .required_credentials
        .iter()
        .map(String::as_str)
        .filter(|name| *name != MATRIX_TOKEN_CREDENTIAL && !credentials.contains_key(*name))
        .collect();
    if !missing.is_empty() {
        return Err(OperatorError::Invalid(format!(
            "template {:?} requires the credentials {}; give them in --credentials FILE",
            template.to_string(),
            missing.join(", ")
        )));
    }
    let mut config = read_config(operator, &config_room, &config_alias).await?;

    let password = random_password()?;
    let principal_client =
        create_account(operator, &principal, &password, ExistingAccount::Reuse).await?;
    drop(password);
    let user_id = machine.user_id_of(&principal);
    invite_once(operator, &config_room, &config_alias, &user_id).await?;
    principal_client
        .join(config_room.as_str())
        .await
        .doing(|| format!("joining {user_id} to {config_alias}"))?;

    let token = principal_client
        .access_token()
        .map(Secret::duplicate)
        .ok_or(OperatorError::NotLoggedIn)?;
    credentials.insert(MATRIX_TOKEN_CREDENTIAL.to_owned(), token);
    let published =
        seal_and_publish(operator, machine, &machine_key, &principal, &credentials).await?;
    drop(credentials);

    let replaced = config.remove(&principal);
    config
        .principals
        .push(serde_json::to_value(&assignment).map_err(|error| {
            OperatorError::Invalid(format!("encoding the assignment: {error}"))
        })?);
    write_config(operator, &config_room, &config_alias, config).await?;

    Ok(CreatedAgent {
        principal: principal.to_string(),
        user_id,
        machine: machine.machine.to_string(),
        config_room: config_alias,
        template: template.to_string(),
        restart_policy,
        key_names: published.key_names,
        replaced,
    })
}

/// A machine's `m.bureau.machine_config` as read for an edit or a listing: the assignments stay
/// raw JSON, so a malformed assignment (which the daemon reports on its own) neither blocks an
/// edit of another principal, nor is lost by it, nor hides the others from `bureau list`.
pub(super) struct RawConfig {
    /// The whole content but `principals` (written back as it was).
    pub(super) content: Map<String, Value>,
    /// Its `principals`, each as written.
    pub(super) principals: Vec<Value>,
}

impl RawConfig {
    /// Removes `principal`'s assignment; whether there was one.
    fn remove(&mut self, principal: &Localpart) -> bool {
        let before = self.principals.len();
        self.principals
            .retain(|existing| existing["principal"].as_str() != Some(principal.as_str()));
        self.principals.len() != before
    }

    /// The template `principal`'s assignment names, as written (`None` when it has no
    /// assignment or the assignment names no template).
    ///
    /// Example: `{"principals": [{"principal": "acme/agent/pm", "template": "claude"}]}`,
    /// `acme/agent/pm` → `Some("claude")`.
    pub(super) fn template_of(&self, principal: &Localpart) -> Option<&str> {
        self.principals
            .iter()
            .find(|existing| existing["principal"].as_str() == Some(principal.as_str()))
            .and_then(|existing| existing["template"].as_str())
    }
}

/// Reads `machine`'s `m.bureau.machine_config` from its config room; no event (or an empty
/// content) is an empty config. Refuses a content that is not a JSON object, or whose
/// `principals` is not an array, rather than treating it as empty (an edit would overwrite it).
///
/// Example: `{"principals": [{"principal": "acme/agent/pm", "template": 7}]}` → one raw
/// assignment; `[]` → `Err(m.bureau.machine_config "" in #…box1:bureau.local: the content is an
/// array, not a JSON object …)`.
pub(super) async fn read_config(
    operator: &Operator,
    config_room: &ruma::OwnedRoomId,
    config_alias: &str,
) -> Result<RawConfig, OperatorError> {
    let state_key = MACHINE_CONFIG_STATE_KEY;
    let content: Option<Value> = read_state(
        operator,
        config_room,
        config_alias,
        MACHINE_CONFIG,
        state_key,
    )
    .await?;
    let bad_event = |reason: String| OperatorError::BadEvent {
        event: format!("{MACHINE_CONFIG} {state_key:?}"),
        room: config_alias.to_owned(),
        reason,
    };
    let mut content = match content {
        None => Map::new(),
        Some(Value::Object(content)) => content,
        Some(other) => {
            return Err(bad_event(format!(
                "the content is {}, not a JSON object like {{\"principals\": […]}}; nothing \
                 was changed",
                json_kind(&other)
            )));
        }
    };
    let principals = match content.remove("principals") {
        None => Vec::new(),
        Some(Value::Array(principals)) => principals,
        Some(other) => {
            return Err(bad_event(format!(
                "its \"principals\" is {}, not an array of assignments; nothing was changed",
                json_kind(&other)
            )));
        }
    };
    Ok(RawConfig {
        content,
        principals,
    })
}

/// Writes `config` back as the machine's `m.bureau.machine_config`.
async fn write_config(
    operator: &Operator,
    config_room: &ruma::OwnedRoomId,
    config_alias: &str,
    config: RawConfig,
) -> Result<(), OperatorError> {
    let mut content = config.content;
    content.insert("principals".to_owned(), Value::Array(config.principals));
    operator
        .client()
        .state_put(
            config_room,
            MACHINE_CONFIG,
            MACHINE_CONFIG_STATE_KEY,
            &Value::Object(content),
        )
        .await
        .doing(|| format!("writing {MACHINE_CONFIG} in {config_alias}"))?;
    Ok(())
}

/// What [`destroy_agent`] did.
///
/// Example (as `--json`): `{"principal": "acme/agent/pm", "machine":
/// "acme/fleet/prod/machine/box1", "assignment_removed": true, "credentials_removed": true,
/// "removed_from_room": true}`.
#[derive(Debug, Clone, Serialize)]
pub struct DestroyedAgent {
    /// The principal's localpart.
    pub principal: String,
    /// The machine.
    pub machine: String,
    /// Its assignment was in `machine_config` and is gone.
    pub assignment_removed: bool,
    /// It had a credential bundle, now blanked (content `{}`).
    pub credentials_removed: bool,
    /// It was a member of the config room (or invited) and was removed.
    pub removed_from_room: bool,
}

/// Removes `principal` from `machine`: its assignment leaves `machine_config` (so the daemon
/// stops it), its `m.bureau.credentials` event is blanked to `{}` (an empty content is "no
/// bundle" to the daemon and to `read_state`), and it is removed from the config room. Its
/// account stays (a later `agent create` reuses it). Destroying a principal that is not there
/// succeeds with every flag `false`.
///
/// Example: after `agent create acme/agent/pm` → `assignment_removed: true`,
/// `credentials_removed: true`, `removed_from_room: true`.
pub async fn destroy_agent(
    operator: &Operator,
    machine: &MachineIdentity,
    principal: &Localpart,
) -> Result<DestroyedAgent, OperatorError> {
    let (config_room, config_alias) = config_room(operator, machine).await?;
    let mut config = read_config(operator, &config_room, &config_alias).await?;
    let assignment_removed = config.remove(principal);
    if assignment_removed {
        write_config(operator, &config_room, &config_alias, config).await?;
    }

    let bundle: Option<Value> = read_state(
        operator,
        &config_room,
        &config_alias,
        CREDENTIALS,
        principal.as_str(),
    )
    .await?;
    let credentials_removed = bundle.is_some();
    if credentials_removed {
        operator
            .client()
            .state_put(
                &config_room,
                CREDENTIALS,
                principal.as_str(),
                &Value::Object(serde_json::Map::new()),
            )
            .await
            .doing(|| format!("removing {principal}'s credentials from {config_alias}"))?;
    }

    let user_id = machine.user_id_of(principal);
    let current = membership(operator, &config_room, &config_alias, &user_id).await?;
    let removed_from_room = matches!(current.as_deref(), Some("join" | "invite"));
    if removed_from_room {
        operator
            .client()
            .kick(&config_room, &user_id, Some("bureau agent destroy"))
            .await
            .doing(|| format!("removing {user_id} from {config_alias}"))?;
    }
    Ok(DestroyedAgent {
        principal: principal.to_string(),
        machine: machine.machine.to_string(),
        assignment_removed,
        credentials_removed,
        removed_from_room,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_parse_actions_and_targets() {
        let grant = parse_grant("observe=acme/agent/**").unwrap();
        assert_eq!(grant.actions, ["observe"]);
        assert_eq!(grant.targets, ["acme/agent/**"]);
        assert!(parse_grant("").is_err());
        assert!(parse_grant("observe=").is_err());
        assert!(parse_grant(" , ").is_err());
    }
}
