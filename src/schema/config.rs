//! A machine's desired state (`m.bureau.machine_config`): the principals it should run.
//!
//! Invariant: the daemon reconciles towards a [`MachineConfig`] only after
//! [`MachineConfig::validate`] accepted it — one assignment per principal, a JSON-object
//! payload, well-formed action globs and principal patterns. Removing an assignment is how a
//! principal is stopped; there is no separate "stop" event.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::authorization::{Authorization, PrincipalPattern, PrincipalPatternError};
use super::template_ref::TemplateRef;
use super::{is_default, is_false};
use crate::naming::{Glob, GlobError, Localpart, RoomAlias};

/// The desired state of one machine.
///
/// Example:
/// ```json
/// {"principals": [
///    {"principal": "acme/agent/pm", "template": "agent-base",
///     "payload": {"task": "triage the backlog"}, "restart_policy": "always",
///     "labels": {"team": "core"},
///     "authorization": {"grants": [{"actions": ["observe"], "targets": ["acme/agent/**"]}]}},
///    {"principal": "acme/service/stt", "template": "#acme/template:bureau.local:whisper",
///     "restart_policy": "on-failure",
///     "start_condition": {"event_type": "m.bureau.workspace", "state_key": "stt"}}],
///  "bureau_version": "0.2.0"}
/// ```
///
/// ```
/// use bureau::schema::MachineConfig;
///
/// let config: MachineConfig = serde_json::from_str(
///     r#"{"principals": [{"principal": "acme/agent/pm", "template": "agent-base"}]}"#,
/// )?;
/// config.validate()?;
/// assert!(config.principals[0].payload.as_object().is_some_and(|payload| payload.is_empty()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MachineConfig {
    /// The principals to run, in no particular order.
    pub principals: Vec<PrincipalAssignment>,
    /// The Bureau version the machine should run; `None` leaves the running version alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bureau_version: Option<String>,
}

/// One principal a machine should run.
///
/// Example: `{"principal": "acme/agent/pm", "template": "agent-base", "payload": {"task":
/// "triage"}, "restart_policy": "always"}` — everything but `principal` and `template` has a
/// default.
///
/// ```
/// use bureau::schema::{PrincipalAssignment, RestartPolicy};
///
/// let assignment: PrincipalAssignment = serde_json::from_str(
///     r#"{"principal": "acme/agent/pm", "template": "agent-base", "restart_policy": "always"}"#,
/// )?;
/// assert_eq!(assignment.restart_policy, RestartPolicy::Always);
/// assert_eq!(assignment.template.to_string(), "agent-base");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrincipalAssignment {
    /// The principal to run.
    pub principal: Localpart,
    /// The template its sandbox is built from.
    pub template: TemplateRef,
    /// Delivered to the sandbox as `/run/bureau/payload.json`; a JSON object, `{}` by default.
    #[serde(default = "empty_object", skip_serializing_if = "is_empty_object")]
    pub payload: Value,
    /// What to do when the principal's command exits.
    #[serde(default)]
    pub restart_policy: RestartPolicy,
    /// Start only once this condition holds; `None` starts at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_condition: Option<StartCondition>,
    /// Free-form labels (for display, layouts and placement).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// What the principal may do and who may act on it.
    #[serde(default, skip_serializing_if = "is_default")]
    pub authorization: Authorization,
}

/// What the daemon does when a principal's command exits.
///
/// Example: `"on-failure"` (the default) restarts after a non-zero exit status only.
///
/// ```
/// use bureau::schema::RestartPolicy;
///
/// assert_eq!(RestartPolicy::default(), RestartPolicy::OnFailure);
/// assert_eq!(serde_json::to_string(&RestartPolicy::OnFailure)?, r#""on-failure""#);
/// assert!(RestartPolicy::Always.restarts_after(0));
/// assert!(!RestartPolicy::OnFailure.restarts_after(0));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Restart after every exit.
    Always,
    /// Restart after a non-zero exit status (including death by signal).
    #[default]
    OnFailure,
    /// Never restart; the principal stays stopped or failed.
    Never,
}

impl RestartPolicy {
    /// Whether a principal whose command exited with `exit_code` is started again.
    ///
    /// Example: `Never.restarts_after(1)` → `false`; `OnFailure.restarts_after(137)` → `true`.
    ///
    /// ```
    /// # use bureau::schema::RestartPolicy;
    /// assert!(RestartPolicy::OnFailure.restarts_after(137));
    /// assert!(!RestartPolicy::Never.restarts_after(1));
    /// ```
    pub fn restarts_after(self, exit_code: i32) -> bool {
        match self {
            Self::Always => true,
            Self::OnFailure => exit_code != 0,
            Self::Never => false,
        }
    }
}

/// A state event that must exist (and match) before a principal starts — for example a
/// workspace being ready.
///
/// Example: `{"event_type": "m.bureau.workspace", "state_key": "pm", "room":
/// "#acme/workspace:bureau.local", "content_match": {"status": "ready"}}`: start once that room
/// has that state event and its content's `status` is `"ready"`.
///
/// ```
/// use bureau::schema::StartCondition;
///
/// let condition: StartCondition = serde_json::from_str(
///     r#"{"event_type": "m.bureau.workspace", "content_match": {"status": "ready"}}"#,
/// )?;
/// assert_eq!(condition.state_key, "");
/// assert!(condition.room.is_none());
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StartCondition {
    /// The state event's type.
    pub event_type: String,
    /// The state event's key (`""` by default).
    pub state_key: String,
    /// The room to look in; `None` is the machine's config room.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room: Option<RoomAlias>,
    /// Top-level content fields that must equal these values; empty means the event existing is
    /// enough.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub content_match: BTreeMap<String, Value>,
    /// Stop the principal again when the condition stops holding (default `false`).
    #[serde(skip_serializing_if = "is_false")]
    pub stop_when_unmet: bool,
}

/// Why a [`MachineConfig`] cannot be reconciled. Every message names the principal (or both
/// assignments), the field and the bad value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Two assignments for one principal.
    ///
    /// Example: → `machine config: principal "acme/agent/pm" is assigned twice (principals[0]
    /// and principals[2]); keep one assignment per principal`.
    #[error(
        "machine config: principal {principal:?} is assigned twice (principals[{first}] and \
         principals[{second}]); keep one assignment per principal"
    )]
    DuplicatePrincipal {
        /// The principal.
        principal: String,
        /// The index of its first assignment.
        first: usize,
        /// The index of its second assignment.
        second: usize,
    },

    /// The payload is not a JSON object.
    ///
    /// Example: `"payload": [1]` → `machine config: principal "acme/agent/pm": payload is an
    /// array, not a JSON object; write it as an object such as {"task": "..."} (or leave it out
    /// for {})`.
    #[error(
        "machine config: principal {principal:?}: payload is {found}, not a JSON object; write it \
         as an object such as {{\"task\": \"...\"}} (or leave it out for {{}})"
    )]
    PayloadNotObject {
        /// The principal.
        principal: String,
        /// What the payload is: `null`, `a boolean`, `a number`, `a string` or `an array`.
        found: &'static str,
    },

    /// A rule without actions.
    ///
    /// Example: → `machine config: principal "acme/agent/pm": authorization.grants[0] has no
    /// actions; list what it covers, such as ["observe"], or remove it`.
    #[error(
        "machine config: principal {principal:?}: {rule} has no actions; list what it covers, \
         such as [\"observe\"], or remove it"
    )]
    NoActions {
        /// The principal.
        principal: String,
        /// The rule, e.g. `authorization.grants[0]`.
        rule: String,
    },

    /// An empty action name.
    ///
    /// Example: → `machine config: principal "acme/agent/pm": authorization.grants[0].actions[1]
    /// is empty; name an action such as "observe" or "matrix/join" ("**" for every action)`.
    #[error(
        "machine config: principal {principal:?}: {field} is empty; name an action such as \
         \"observe\" or \"matrix/join\" (\"**\" for every action)"
    )]
    EmptyAction {
        /// The principal.
        principal: String,
        /// The field, e.g. `authorization.grants[0].actions[1]`.
        field: String,
    },

    /// An action that is not a valid glob.
    ///
    /// Example: `"Observe"` → `machine config: principal "acme/agent/pm":
    /// authorization.grants[0].actions[0]: glob "Observe": character 'O' at byte 0 is not
    /// allowed; …`.
    #[error("machine config: principal {principal:?}: {field}: {reason}")]
    BadAction {
        /// The principal.
        principal: String,
        /// The field, e.g. `authorization.grants[0].actions[0]`.
        field: String,
        /// What is wrong with the action glob.
        reason: GlobError,
    },

    /// A target or actor that is not a valid principal pattern.
    ///
    /// Example: `"acme//x"` → `machine config: principal "acme/agent/pm":
    /// authorization.grants[0].targets[0]: glob "acme//x": empty segment at byte 5 ('//'); …`.
    #[error("machine config: principal {principal:?}: {field}: {reason}")]
    BadPattern {
        /// The principal.
        principal: String,
        /// The field, e.g. `authorization.allowances[1].actors[0]`.
        field: String,
        /// What is wrong with the pattern (boxed: it is large and rare).
        reason: Box<PrincipalPatternError>,
    },

    /// An allowance or allowance-denial that names no actors.
    ///
    /// Example: → `machine config: principal "acme/agent/pm": authorization.allowances[0] has no
    /// actors; list who it applies to, such as ["acme/operator/**"], or remove it`.
    #[error(
        "machine config: principal {principal:?}: {rule} has no actors; list who it applies to, \
         such as [\"acme/operator/**\"], or remove it"
    )]
    NoActors {
        /// The principal.
        principal: String,
        /// The rule, e.g. `authorization.allowances[0]`.
        rule: String,
    },

    /// A start condition without an event type.
    ///
    /// Example: → `machine config: principal "acme/agent/pm": start_condition.event_type is
    /// empty; name the state event to wait for, such as "m.bureau.workspace"`.
    #[error(
        "machine config: principal {principal:?}: start_condition.event_type is empty; name the \
         state event to wait for, such as \"m.bureau.workspace\""
    )]
    EmptyStartEventType {
        /// The principal.
        principal: String,
    },

    /// An empty `bureau_version`.
    ///
    /// Example: `"bureau_version": ""` → `machine config: bureau_version is empty; name a
    /// version such as "0.2.0", or leave the field out to keep the running version`.
    #[error(
        "machine config: bureau_version is empty; name a version such as \"0.2.0\", or leave the \
         field out to keep the running version"
    )]
    EmptyBureauVersion,
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

fn is_empty_object(value: &Value) -> bool {
    value.as_object().is_some_and(Map::is_empty)
}

/// How a JSON value's kind reads in an error message, never the value itself (`98765` → `a
/// number`, `[]` → `an array`).
pub fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl MachineConfig {
    /// Checks everything the daemon relies on: one assignment per principal, then each
    /// assignment ([`PrincipalAssignment::validate`]). Reports the first problem.
    ///
    /// Example: two assignments of `acme/agent/pm` → `Err(machine config: principal
    /// "acme/agent/pm" is assigned twice (principals[0] and principals[1]); …)`.
    ///
    /// ```
    /// use bureau::schema::MachineConfig;
    ///
    /// let config: MachineConfig = serde_json::from_str(r#"{"principals": [
    ///     {"principal": "acme/agent/pm", "template": "agent-base"},
    ///     {"principal": "acme/agent/pm", "template": "other"}]}"#)?;
    /// assert!(config.validate().unwrap_err().to_string().contains("assigned twice"));
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.bureau_version.as_deref() == Some("") {
            return Err(ConfigError::EmptyBureauVersion);
        }
        let mut seen: HashMap<&Localpart, usize> = HashMap::new();
        for (index, assignment) in self.principals.iter().enumerate() {
            if let Some(&first) = seen.get(&assignment.principal) {
                return Err(ConfigError::DuplicatePrincipal {
                    principal: assignment.principal.to_string(),
                    first,
                    second: index,
                });
            }
            seen.insert(&assignment.principal, index);
        }
        self.principals
            .iter()
            .try_for_each(PrincipalAssignment::validate)
    }
}

impl PrincipalAssignment {
    /// One raw entry of `machine_config`'s `principals`: its principal's name (as written, or
    /// `principals[INDEX]` when it has none) and the assignment, or why it is invalid (it does
    /// not parse, or does not [`validate`](Self::validate)). The daemon and `bureau list` both
    /// judge assignments with this, so what one calls invalid the other does too.
    ///
    /// Example: `{"principal": "acme/agent/pm", "template": 7}` at index 2 → (`acme/agent/pm`,
    /// `Err(malformed assignment: invalid type: integer `7` …)`).
    pub fn from_raw(index: usize, raw: &Value) -> (String, Result<Self, String>) {
        let name = raw
            .get("principal")
            .and_then(Value::as_str)
            .map_or_else(|| format!("principals[{index}]"), str::to_owned);
        let assignment = serde_json::from_value::<Self>(raw.clone())
            .map_err(|error| format!("malformed assignment: {error}"))
            .and_then(|assignment| {
                assignment
                    .validate()
                    .map(|()| assignment)
                    .map_err(|error| error.to_string())
            });
        (name, assignment)
    }

    /// An assignment of `principal` to `template` with every other field at its default.
    ///
    /// Example: (`acme/agent/pm`, `agent-base`) → `{"principal": "acme/agent/pm", "template":
    /// "agent-base", "restart_policy": "on-failure"}`.
    ///
    /// ```
    /// use bureau::naming::Localpart;
    /// use bureau::schema::{PrincipalAssignment, TemplateRef};
    ///
    /// let assignment = PrincipalAssignment::new(Localpart::parse("acme/agent/pm")?, TemplateRef::parse("agent-base")?);
    /// assignment.validate()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(principal: Localpart, template: TemplateRef) -> Self {
        Self {
            principal,
            template,
            payload: empty_object(),
            restart_policy: RestartPolicy::default(),
            start_condition: None,
            labels: BTreeMap::new(),
            authorization: Authorization::default(),
        }
    }

    /// Checks the payload is a JSON object, the start condition names an event type, and every
    /// authorization rule has non-empty, well-formed actions and well-formed targets or actors.
    ///
    /// Example: `"payload": "go"` → `Err(machine config: principal "acme/agent/pm": payload is a
    /// string, not a JSON object; …)`.
    ///
    /// ```
    /// use bureau::schema::PrincipalAssignment;
    ///
    /// let assignment: PrincipalAssignment = serde_json::from_str(
    ///     r#"{"principal": "acme/agent/pm", "template": "agent-base", "payload": "go"}"#,
    /// )?;
    /// assert!(assignment.validate().unwrap_err().to_string().contains("payload is a string"));
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        let principal = || self.principal.to_string();
        if !self.payload.is_object() {
            return Err(ConfigError::PayloadNotObject {
                principal: principal(),
                found: json_kind(&self.payload),
            });
        }
        if let Some(condition) = &self.start_condition
            && condition.event_type.is_empty()
        {
            return Err(ConfigError::EmptyStartEventType {
                principal: principal(),
            });
        }
        let authorization = &self.authorization;
        for (index, grant) in authorization.grants.iter().enumerate() {
            let rule = format!("authorization.grants[{index}]");
            self.check_actions(&rule, &grant.actions)?;
            self.check_patterns(&rule, "targets", &grant.targets)?;
        }
        for (index, denial) in authorization.denials.iter().enumerate() {
            let rule = format!("authorization.denials[{index}]");
            self.check_actions(&rule, &denial.actions)?;
            self.check_patterns(&rule, "targets", &denial.targets)?;
        }
        for (index, allowance) in authorization.allowances.iter().enumerate() {
            let rule = format!("authorization.allowances[{index}]");
            self.check_actions(&rule, &allowance.actions)?;
            self.check_actors(&rule, &allowance.actors)?;
        }
        for (index, denial) in authorization.allowance_denials.iter().enumerate() {
            let rule = format!("authorization.allowance_denials[{index}]");
            self.check_actions(&rule, &denial.actions)?;
            self.check_actors(&rule, &denial.actors)?;
        }
        Ok(())
    }

    /// Actions: at least one, none empty, each a valid glob.
    fn check_actions(&self, rule: &str, actions: &[String]) -> Result<(), ConfigError> {
        if actions.is_empty() {
            return Err(ConfigError::NoActions {
                principal: self.principal.to_string(),
                rule: rule.to_owned(),
            });
        }
        for (index, action) in actions.iter().enumerate() {
            let field = || format!("{rule}.actions[{index}]");
            if action.is_empty() {
                return Err(ConfigError::EmptyAction {
                    principal: self.principal.to_string(),
                    field: field(),
                });
            }
            Glob::parse(action).map_err(|reason| ConfigError::BadAction {
                principal: self.principal.to_string(),
                field: field(),
                reason,
            })?;
        }
        Ok(())
    }

    /// Actors: at least one, each a valid pattern.
    fn check_actors(&self, rule: &str, actors: &[String]) -> Result<(), ConfigError> {
        if actors.is_empty() {
            return Err(ConfigError::NoActors {
                principal: self.principal.to_string(),
                rule: rule.to_owned(),
            });
        }
        self.check_patterns(rule, "actors", actors)
    }

    /// Every entry of `rule.list` is a valid [`PrincipalPattern`].
    fn check_patterns(
        &self,
        rule: &str,
        list: &str,
        patterns: &[String],
    ) -> Result<(), ConfigError> {
        for (index, pattern) in patterns.iter().enumerate() {
            PrincipalPattern::parse(pattern).map_err(|reason| ConfigError::BadPattern {
                principal: self.principal.to_string(),
                field: format!("{rule}.{list}[{index}]"),
                reason: Box::new(reason),
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::authorization::{Allowance, AllowanceDenial, Denial, Grant};
    use super::super::test_support::{parse_error, round_trip, tolerates_unknown_fields};
    use super::*;

    fn config_json() -> Value {
        json!({
            "principals": [
                {
                    "principal": "acme/agent/pm", "template": "agent-base",
                    "payload": {"task": "triage the backlog", "limits": {"turns": 20}},
                    "restart_policy": "always",
                    "labels": {"team": "core"},
                    "authorization": {
                        "grants": [{"actions": ["observe"], "targets": ["acme/agent/**"]}],
                        "allowances": [{"actions": ["observe"], "actors": ["acme/operator/**:bureau.local"]}]
                    }
                },
                {
                    "principal": "acme/service/stt",
                    "template": "#acme/template:bureau.local:whisper",
                    "restart_policy": "on-failure",
                    "start_condition": {
                        "event_type": "m.bureau.workspace", "state_key": "stt",
                        "room": "#acme/workspace:bureau.local",
                        "content_match": {"status": "ready"}, "stop_when_unmet": true
                    }
                },
                {"principal": "acme/agent/once", "template": "acme/template:batch", "restart_policy": "never"}
            ],
            "bureau_version": "0.2.0"
        })
    }

    fn assignment(principal: &str) -> PrincipalAssignment {
        PrincipalAssignment::new(
            Localpart::parse(principal).unwrap(),
            TemplateRef::parse("agent-base").unwrap(),
        )
    }

    fn error_text(assignment: &PrincipalAssignment) -> String {
        assignment.validate().unwrap_err().to_string()
    }

    #[test]
    fn machine_config_round_trips_and_validates() {
        let config: MachineConfig = round_trip(config_json());
        config.validate().unwrap();
        assert_eq!(config.principals[0].payload["limits"]["turns"], 20);
        assert_eq!(config.principals[2].restart_policy, RestartPolicy::Never);
        let condition = config.principals[1].start_condition.as_ref().unwrap();
        assert_eq!(
            condition.room.as_ref().unwrap().to_string(),
            "#acme/workspace:bureau.local"
        );
    }

    #[test]
    fn machine_config_tolerates_unknown_fields_at_every_level() {
        tolerates_unknown_fields::<MachineConfig>(config_json());
        tolerates_unknown_fields::<PrincipalAssignment>(json!({
            "principal": "acme/agent/pm", "template": "agent-base", "restart_policy": "always"
        }));
        tolerates_unknown_fields::<StartCondition>(json!({"event_type": "x", "state_key": ""}));
    }

    #[test]
    fn defaults_fill_an_assignment() {
        let assignment: PrincipalAssignment = round_trip(json!({
            "principal": "acme/agent/pm", "template": "agent-base", "restart_policy": "on-failure"
        }));
        assert_eq!(assignment, self::assignment("acme/agent/pm"));
        let minimal: PrincipalAssignment =
            serde_json::from_value(json!({"principal": "acme/agent/pm", "template": "agent-base"}))
                .unwrap();
        assert_eq!(minimal, assignment);
        let empty: MachineConfig = round_trip(json!({"principals": []}));
        empty.validate().unwrap();
    }

    #[test]
    fn an_assignment_needs_a_principal_and_a_template() {
        let error = parse_error::<PrincipalAssignment>(json!({"principal": "acme/agent/pm"}));
        assert!(error.contains("missing field `template`"), "{error}");
        let error = parse_error::<PrincipalAssignment>(json!({
            "principal": "acme/agent/pm", "template": "#acme/template:bureau.local"
        }));
        assert!(error.contains("names a room but no template"), "{error}");
        let error = parse_error::<PrincipalAssignment>(json!({
            "principal": "Acme/pm", "template": "agent-base"
        }));
        assert!(error.contains("localpart \"Acme/pm\""), "{error}");
    }

    #[test]
    fn restart_policies_spell_and_behave_as_documented() {
        for (policy, text) in [
            (RestartPolicy::Always, "always"),
            (RestartPolicy::OnFailure, "on-failure"),
            (RestartPolicy::Never, "never"),
        ] {
            assert_eq!(serde_json::to_value(policy).unwrap(), json!(text));
        }
        assert!(RestartPolicy::Always.restarts_after(0));
        assert!(RestartPolicy::OnFailure.restarts_after(3));
        assert!(!RestartPolicy::OnFailure.restarts_after(0));
        assert!(!RestartPolicy::Never.restarts_after(3));
        let error = parse_error::<RestartPolicy>(json!("sometimes"));
        assert!(error.contains("unknown variant `sometimes`"), "{error}");
    }

    #[test]
    fn refuses_a_principal_assigned_twice() {
        let config = MachineConfig {
            principals: vec![
                assignment("acme/agent/pm"),
                assignment("acme/agent/dev"),
                assignment("acme/agent/pm"),
            ],
            bureau_version: None,
        };
        assert_eq!(
            config.validate().unwrap_err().to_string(),
            "machine config: principal \"acme/agent/pm\" is assigned twice (principals[0] and \
             principals[2]); keep one assignment per principal"
        );
    }

    #[test]
    fn refuses_an_empty_bureau_version() {
        let config = MachineConfig {
            principals: Vec::new(),
            bureau_version: Some(String::new()),
        };
        assert_eq!(
            config.validate().unwrap_err().to_string(),
            "machine config: bureau_version is empty; name a version such as \"0.2.0\", or leave \
             the field out to keep the running version"
        );
    }

    #[test]
    fn validates_every_assignment() {
        let mut bad = assignment("acme/agent/dev");
        bad.payload = json!(null);
        let config = MachineConfig {
            principals: vec![assignment("acme/agent/pm"), bad],
            bureau_version: None,
        };
        assert!(matches!(
            config.validate(),
            Err(ConfigError::PayloadNotObject { found: "null", .. })
        ));
    }

    #[test]
    fn refuses_a_payload_that_is_not_an_object() {
        let mut pm = assignment("acme/agent/pm");
        pm.payload = json!([1, 2]);
        assert_eq!(
            error_text(&pm),
            "machine config: principal \"acme/agent/pm\": payload is an array, not a JSON object; \
             write it as an object such as {\"task\": \"...\"} (or leave it out for {})"
        );
        for (payload, kind) in [
            (json!(null), "null"),
            (json!(true), "a boolean"),
            (json!(3), "a number"),
            (json!("go"), "a string"),
        ] {
            pm.payload = payload;
            assert!(
                error_text(&pm).contains(&format!("payload is {kind}, not a JSON object")),
                "{kind}"
            );
        }
    }

    #[test]
    fn refuses_a_start_condition_without_an_event_type() {
        let mut pm = assignment("acme/agent/pm");
        pm.start_condition = Some(StartCondition::default());
        assert_eq!(
            error_text(&pm),
            "machine config: principal \"acme/agent/pm\": start_condition.event_type is empty; \
             name the state event to wait for, such as \"m.bureau.workspace\""
        );
    }

    #[test]
    fn refuses_a_rule_without_actions() {
        let mut pm = assignment("acme/agent/pm");
        pm.authorization.grants.push(Grant {
            actions: Vec::new(),
            targets: vec!["acme/**".to_owned()],
            expires_at: None,
        });
        assert_eq!(
            error_text(&pm),
            "machine config: principal \"acme/agent/pm\": authorization.grants[0] has no actions; \
             list what it covers, such as [\"observe\"], or remove it"
        );
    }

    #[test]
    fn refuses_an_empty_action_name() {
        let mut pm = assignment("acme/agent/pm");
        pm.authorization.denials.push(Denial {
            actions: vec!["observe".to_owned(), String::new()],
            targets: Vec::new(),
        });
        assert_eq!(
            error_text(&pm),
            "machine config: principal \"acme/agent/pm\": authorization.denials[0].actions[1] is \
             empty; name an action such as \"observe\" or \"matrix/join\" (\"**\" for every action)"
        );
    }

    #[test]
    fn refuses_a_malformed_action() {
        let mut pm = assignment("acme/agent/pm");
        pm.authorization.grants.push(Grant {
            actions: vec!["Observe".to_owned()],
            ..Grant::default()
        });
        let reason = Glob::parse("Observe").unwrap_err();
        assert_eq!(
            error_text(&pm),
            format!(
                "machine config: principal \"acme/agent/pm\": authorization.grants[0].actions[0]: \
                 {reason}"
            )
        );
    }

    #[test]
    fn refuses_a_malformed_target() {
        let mut pm = assignment("acme/agent/pm");
        pm.authorization.grants.push(Grant {
            actions: vec!["observe".to_owned()],
            targets: vec!["acme/**".to_owned(), "acme//x".to_owned()],
            expires_at: None,
        });
        let reason = Glob::parse("acme//x").unwrap_err();
        assert_eq!(
            error_text(&pm),
            format!(
                "machine config: principal \"acme/agent/pm\": authorization.grants[0].targets[1]: \
                 {reason}"
            )
        );
    }

    #[test]
    fn refuses_a_malformed_actor() {
        let mut pm = assignment("acme/agent/pm");
        pm.authorization.allowances.push(Allowance {
            actions: vec!["observe".to_owned()],
            actors: vec!["acme/operator/**:bureau_local".to_owned()],
        });
        let reason = PrincipalPattern::parse("acme/operator/**:bureau_local").unwrap_err();
        assert_eq!(
            error_text(&pm),
            format!(
                "machine config: principal \"acme/agent/pm\": \
                 authorization.allowances[0].actors[0]: {reason}"
            )
        );
        assert!(error_text(&pm).contains("server glob \"bureau_local\""));
    }

    #[test]
    fn refuses_an_allowance_without_actors() {
        let mut pm = assignment("acme/agent/pm");
        pm.authorization.allowance_denials.push(AllowanceDenial {
            actions: vec!["interrupt".to_owned()],
            actors: Vec::new(),
        });
        assert_eq!(
            error_text(&pm),
            "machine config: principal \"acme/agent/pm\": authorization.allowance_denials[0] has \
             no actors; list who it applies to, such as [\"acme/operator/**\"], or remove it"
        );
    }
}
