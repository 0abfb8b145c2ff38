//! `bureau credential provision`: a principal's credential bundle, sealed to its machine's key
//! and published as `m.bureau.credentials` (state key = the principal) in the machine's config
//! room.
//!
//! Invariant: credential values exist only in [`Secret`]s and in the sealed ciphertext; what is
//! returned and printed is the key names. Input errors name the credential, never its value.
//! Publishing replaces the principal's whole bundle (the launcher decrypts one bundle per
//! principal), so it must hold every credential the principal needs; a bundle that carries the
//! principal's Matrix token (made by `agent create`) is not replaced by one without it unless the
//! operator says so ([`ExistingMatrixToken::Drop`]).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::Operator;
use super::agents::read_config;
use super::error::{MatrixContext, OperatorError};
use super::rooms::{config_room, read_state, require_room};
use crate::machine::MachineIdentity;
use crate::naming::Localpart;
use crate::schema::{
    CREDENTIALS, Credentials, MACHINE_KEY, MATRIX_TOKEN_CREDENTIAL, MachineKey, is_credential_name,
    json_kind,
};
use crate::secret::{Secret, zeroize};

/// Parses a credentials file: a flat JSON object of `NAME` → string. The input buffer is zeroed
/// whatever the outcome.
///
/// Example: `{"OPENAI_API_KEY": "sk-…"}` → one secret named `OPENAI_API_KEY`;
/// `{"openai-key": "…"}` → `Err(credential name "openai-key" is not a credential name; …)`;
/// `{"PIN": 1234}` → `Err(credential PIN: the value is a number, not a string; …)` (the value is
/// never quoted).
///
/// ```
/// use bureau::operator::parse_credential_values;
///
/// let values = parse_credential_values(br#"{"OPENAI_API_KEY": "sk-x"}"#.to_vec())?;
/// assert!(values["OPENAI_API_KEY"].constant_time_eq(b"sk-x"));
/// let error = parse_credential_values(br#"{"PIN": 98765}"#.to_vec()).unwrap_err().to_string();
/// assert!(!error.contains("98765"));
/// # Ok::<(), bureau::operator::OperatorError>(())
/// ```
pub fn parse_credential_values(
    mut input: Vec<u8>,
) -> Result<BTreeMap<String, Secret>, OperatorError> {
    let parsed = serde_json::from_slice::<Value>(&input);
    zeroize(&mut input);
    // serde_json's syntax errors give a position, never the input's text.
    let parsed = parsed.map_err(|error| {
        OperatorError::Invalid(format!(
            "credentials: not JSON (line {}, column {}); write a flat object like \
             {{\"OPENAI_API_KEY\": \"sk-…\"}}",
            error.line(),
            error.column()
        ))
    })?;
    let Value::Object(fields) = parsed else {
        return Err(OperatorError::Invalid(
            "credentials: not a JSON object; write a flat object like {\"OPENAI_API_KEY\": \
             \"sk-…\"}"
                .to_owned(),
        ));
    };
    let mut values = BTreeMap::new();
    let mut problem = None;
    for (name, value) in fields {
        if problem.is_some() {
            wipe(value);
            continue;
        }
        if !is_credential_name(&name) {
            problem = Some(format!(
                "credential name {name:?} is not a credential name; names use only A-Z, 0-9 \
                 and '_', like OPENAI_API_KEY"
            ));
            wipe(value);
            continue;
        }
        match value {
            Value::String(text) => {
                values.insert(name, Secret::from_string(text));
            }
            other => {
                problem = Some(format!(
                    "credential {name}: the value is {}, not a string; quote it",
                    json_kind(&other)
                ));
                wipe(other);
            }
        }
    }
    match problem {
        Some(message) => Err(OperatorError::Invalid(message)),
        None => Ok(values),
    }
}

/// Zeroes the strings inside a JSON value that may hold a secret, then drops it.
fn wipe(value: Value) {
    match value {
        Value::String(text) => drop(Secret::from_string(text)),
        Value::Array(items) => items.into_iter().for_each(wipe),
        Value::Object(fields) => fields.into_iter().for_each(|(_, value)| wipe(value)),
        _ => {}
    }
}

/// The machine's published age key (`m.bureau.machine_key`, state key = the machine's
/// localpart, in the fleet machine room), validated.
///
/// Example: a machine whose launcher never ran → `Err(machine … has no key yet …)`.
pub async fn fetch_machine_key(
    operator: &Operator,
    machine: &MachineIdentity,
) -> Result<MachineKey, OperatorError> {
    let alias = machine.machine_room_alias();
    let room_id = require_room(operator, &alias, || super::rooms::setup_hint(machine)).await?;
    let key: MachineKey = read_state(
        operator,
        &room_id,
        &alias,
        MACHINE_KEY,
        machine.machine.as_str(),
    )
    .await?
    .ok_or_else(|| OperatorError::NoMachineKey {
        machine: machine.machine.to_string(),
        room: alias.clone(),
    })?;
    key.validate().map_err(|error| OperatorError::BadEvent {
        event: format!("{MACHINE_KEY} {:?}", machine.machine.as_str()),
        room: alias,
        reason: error.to_string(),
    })?;
    Ok(key)
}

/// What [`provision_credentials`] published: names, never values.
///
/// Example (as `--json`): `{"machine": "acme/fleet/prod/machine/box1", "principal":
/// "acme/agent/pm", "config_room": "#acme/fleet/prod/machine/box1:bureau.local", "key_names":
/// ["OPENAI_API_KEY"], "recipients": ["age1…"], "event_id": "$abc"}`.
#[derive(Debug, Clone, Serialize)]
pub struct ProvisionedCredentials {
    /// The machine's localpart.
    pub machine: String,
    /// The principal's localpart (the event's state key).
    pub principal: String,
    /// The config room's alias.
    pub config_room: String,
    /// The credential names in the bundle.
    pub key_names: Vec<String>,
    /// The age recipients it is sealed to.
    pub recipients: Vec<String>,
    /// The state event's ID.
    pub event_id: String,
}

/// Seals `values` to `machine_key` and publishes the bundle as `principal`'s
/// `m.bureau.credentials` in the machine's config room.
///
/// Example: (`box1`, `acme/agent/pm`, `{"OPENAI_API_KEY": …}`) → a bundle with `key_names:
/// ["OPENAI_API_KEY"]` in `#acme/fleet/prod/machine/box1:bureau.local`.
pub async fn seal_and_publish(
    operator: &Operator,
    machine: &MachineIdentity,
    machine_key: &MachineKey,
    principal: &Localpart,
    values: &BTreeMap<String, Secret>,
) -> Result<ProvisionedCredentials, OperatorError> {
    let (config_room, config_alias) = config_room(operator, machine).await?;
    let bundle: Credentials =
        crate::sealed::seal(values, std::slice::from_ref(&machine_key.public_key)).map_err(
            |error| OperatorError::Seal {
                principal: principal.to_string(),
                reason: error.to_string(),
            },
        )?;
    let content = serde_json::to_value(&bundle)
        .map_err(|error| OperatorError::Invalid(format!("encoding the bundle: {error}")))?;
    let event_id = operator
        .client()
        .state_put(&config_room, CREDENTIALS, principal.as_str(), &content)
        .await
        .doing(|| format!("publishing {principal}'s credentials in {config_alias}"))?;
    Ok(ProvisionedCredentials {
        machine: machine.machine.to_string(),
        principal: principal.to_string(),
        config_room: config_alias,
        key_names: bundle.key_names,
        recipients: bundle.recipients,
        event_id: event_id.to_string(),
    })
}

/// What [`provision_credentials`] does when the principal's current bundle carries its Matrix
/// token ([`MATRIX_TOKEN_CREDENTIAL`], sealed there by `agent create`) and the new values do
/// not: replacing the bundle would take the principal's Matrix identity away at its next
/// restart.
///
/// Example: `bureau credential provision` → `Refuse`; with `--drop-matrix-token` → `Drop`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExistingMatrixToken {
    /// Refuse, saying how to change an agent's credentials instead (`agent create`).
    Refuse,
    /// Replace the bundle anyway.
    Drop,
}

/// `bureau credential provision`: reads the machine's key (refusing when it has none yet) and
/// publishes `values` sealed to it as `principal`'s bundle, replacing any earlier one — unless
/// the earlier one carries the principal's Matrix token and `values` does not, which
/// `existing_token` decides. Only the earlier bundle's `key_names` (public) are read.
///
/// Example: box1 whose launcher published its key, principal `acme/agent/pm`, values
/// `{"OPENAI_API_KEY": …}` → `key_names: ["OPENAI_API_KEY"]`; the same after `agent create
/// acme/agent/pm` with [`ExistingMatrixToken::Refuse`] → `Err(… carries its Matrix token …)`.
pub async fn provision_credentials(
    operator: &Operator,
    machine: &MachineIdentity,
    principal: &Localpart,
    values: &BTreeMap<String, Secret>,
    existing_token: ExistingMatrixToken,
) -> Result<ProvisionedCredentials, OperatorError> {
    if values.is_empty() {
        return Err(OperatorError::Invalid(
            "credentials: the file has no credentials; write a flat object like \
             {\"OPENAI_API_KEY\": \"sk-…\"}"
                .to_owned(),
        ));
    }
    let machine_key = fetch_machine_key(operator, machine).await?;
    if existing_token == ExistingMatrixToken::Refuse
        && !values.contains_key(MATRIX_TOKEN_CREDENTIAL)
    {
        refuse_dropping_matrix_token(operator, machine, principal).await?;
    }
    seal_and_publish(operator, machine, &machine_key, principal, values).await
}

/// Fails when `principal`'s current bundle lists [`MATRIX_TOKEN_CREDENTIAL`] in its
/// `key_names`, with the `agent create` command that changes its credentials instead.
async fn refuse_dropping_matrix_token(
    operator: &Operator,
    machine: &MachineIdentity,
    principal: &Localpart,
) -> Result<(), OperatorError> {
    let (config_room, config_alias) = config_room(operator, machine).await?;
    let current: Option<Value> = read_state(
        operator,
        &config_room,
        &config_alias,
        CREDENTIALS,
        principal.as_str(),
    )
    .await?;
    let carries_token = current
        .as_ref()
        .and_then(|bundle| bundle.get("key_names"))
        .and_then(Value::as_array)
        .is_some_and(|names| {
            names
                .iter()
                .any(|name| name.as_str() == Some(MATRIX_TOKEN_CREDENTIAL))
        });
    if !carries_token {
        return Ok(());
    }
    // The template for the suggested command, when the assignment names one (best effort: the
    // refusal stands either way).
    let template = read_config(operator, &config_room, &config_alias)
        .await
        .ok()
        .and_then(|config| config.template_of(principal).map(str::to_owned))
        .unwrap_or_else(|| "TEMPLATE".to_owned());
    Err(OperatorError::Invalid(format!(
        "{principal}'s credential bundle in {config_alias} carries its Matrix token \
         ({MATRIX_TOKEN_CREDENTIAL}, sealed there by `bureau agent create`); the new bundle would \
         replace it without one, and {principal} would lose its Matrix identity at its next \
         restart\nHint: to change an agent's credentials, run `bureau agent create {principal} \
         --template {template} --machine {} --credentials FILE` (it seals them with a fresh \
         token, and replaces the assignment too: give its --payload and --grant again); to \
         replace the bundle anyway, pass --drop-matrix-token",
        machine.machine
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_files_are_flat_string_maps() {
        let values = parse_credential_values(br#"{"A_KEY": "one", "B2": "two"}"#.to_vec()).unwrap();
        assert_eq!(values.keys().collect::<Vec<_>>(), ["A_KEY", "B2"]);
        assert!(values["B2"].constant_time_eq(b"two"));
    }

    #[test]
    fn errors_name_the_credential_never_the_value() {
        for (input, expected) in [
            (
                r#"{"bad-name": "hunter2"}"#,
                "\"bad-name\" is not a credential name",
            ),
            (r#"{"PIN": 98765}"#, "credential PIN: the value is a number"),
            (r#"{"NESTED": {"x": "hunter2"}}"#, "the value is an object"),
            (r#"["hunter2"]"#, "not a JSON object"),
            (r#"{"A": "hunter2""#, "not JSON (line 1"),
        ] {
            let error = parse_credential_values(input.as_bytes().to_vec())
                .unwrap_err()
                .to_string();
            assert!(error.contains(expected), "{input}: {error}");
            assert!(
                !error.contains("hunter2") && !error.contains("98765"),
                "{error}"
            );
        }
    }
}
