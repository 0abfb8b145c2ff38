//! Schema: the contents of Bureau's Matrix events, the control plane's wire format.
//!
//! Matrix is Bureau's single source of truth. Every `m.bureau.*` state event's content is a type
//! here, with serde for its JSON and a `validate` method that says what is wrong with a value
//! that parsed but cannot be used (naming the field, the bad value and what to do).
//!
//! Invariants:
//! - **Unknown fields are tolerated** (no `deny_unknown_fields`): a machine running an older
//!   Bureau must keep reading events written by a newer one. This is the opposite of the sandbox
//!   spec, which refuses unknown fields so that a misspelt isolation setting fails closed.
//! - Missing optional fields take their documented defaults; `None`, empty lists and empty maps
//!   are omitted when serializing, so an event carries only what was set.
//! - No floating-point numbers: Matrix room versions 6 and later refuse floats in events, so
//!   percentages are integers and times are integer milliseconds since the Unix epoch.
//! - Principal names are [`Localpart`](crate::naming::Localpart) or
//!   [`UserId`](crate::naming::UserId), validated while parsing.
//!
//! | Event type | Content | Room | State key |
//! |---|---|---|---|
//! | [`MACHINE_KEY`] | [`MachineKey`] | fleet machine room | machine localpart |
//! | [`MACHINE_INFO`] | [`MachineInfo`] | fleet machine room | machine localpart |
//! | [`MACHINE_STATUS`] | [`MachineStatus`] | fleet machine room | machine localpart |
//! | [`MACHINE_CONFIG`] | [`MachineConfig`] | machine config room | `""` (the room is the machine's own) |
//! | [`CREDENTIALS`] | [`Credentials`] | machine config room | principal localpart |
//! | [`TEMPLATE`] | [`Template`] | template room | template name |
//! | [`SERVICE`] | [`Service`] | fleet service room | service principal localpart |
//! | [`LAYOUT`] | [`Layout`] | config room | layout name (`""` for the default) |
//! | [`WEBRTC_OFFER`], [`WEBRTC_ANSWER`] | [`WebrtcSignal`] | fleet machine room | [`webrtc_state_key`] |
//! | [`TOKEN_SIGNING_KEY`] | [`TokenSigningKey`] | system room | machine localpart |
//!
//! Outcomes (a principal started, a sandbox exited, …) are `m.notice` messages in the config
//! room carrying an [`Outcome`] under [`OUTCOME_FIELD`], so any Matrix client shows the text.
//!
//! Example: a machine's desired state, parsed and checked.
//! ```
//! use bureau::schema::{MachineConfig, RestartPolicy};
//!
//! let config: MachineConfig = serde_json::from_str(r#"{
//!     "principals": [{"principal": "acme/agent/pm", "template": "agent-base",
//!                     "payload": {"task": "triage"}}],
//!     "a_field_from_the_future": true
//! }"#)?;
//! config.validate()?;
//! assert_eq!(config.principals[0].restart_policy, RestartPolicy::OnFailure);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod age;
mod authorization;
mod builtin;
mod config;
mod credentials;
mod inherit;
mod layout;
mod machine;
mod outcome;
mod service;
mod signal;
mod signing_key;
mod template;
mod template_ref;

pub use age::{AGE_RECIPIENT_LEN, AGE_RECIPIENT_PREFIX, AgeRecipientError, validate_age_recipient};
pub use authorization::{
    Allowance, AllowanceDenial, Authorization, Denial, Grant, PrincipalPattern,
    PrincipalPatternError,
};
pub use builtin::{AGENT_BASE_TEMPLATE, BASE_TEMPLATE};
pub use config::{
    ConfigError, MachineConfig, PrincipalAssignment, RestartPolicy, StartCondition, json_kind,
};
pub use credentials::{
    AGE_ARMOR_FOOTER, AGE_ARMOR_HEADER, CREDENTIALS_VERSION, Credentials, CredentialsError,
    MATRIX_TOKEN_CREDENTIAL, is_credential_name,
};

/// Now, in milliseconds since the Unix epoch: the unit of every timestamp in Bureau's events
/// (`updated_at`, `reported_at`, `expires_at`, …), as in Matrix's `origin_server_ts`.
///
/// Example: a value around `1_790_000_000_000` in late 2026.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}
pub use inherit::{MAX_INHERITANCE_DEPTH, merge, resolve};
pub use layout::{Layout, LayoutError, LayoutPane, LayoutWindow, Split};
pub use machine::{
    MACHINE_KEY_ALGORITHM, MachineInfo, MachineKey, MachineKeyError, MachineStatus, PrincipalState,
    PrincipalStatus,
};
pub use outcome::{NOTICE_MSGTYPE, OUTCOME_FIELD, Outcome, OutcomeMessage};
pub use service::{Service, ServiceEndpoint, ServiceError};
pub use signal::{SignalError, SignalKind, WebrtcSignal, parse_webrtc_state_key, webrtc_state_key};
pub use signing_key::{SIGNING_KEY_ALGORITHM, SigningKeyError, TokenSigningKey};
pub use template::{
    HealthCheck, MOUNT_PLACEHOLDERS, NetworkMode, ProxyService, SeccompMode, Template,
    TemplateError, TemplateMount, TemplateNamespaces, TemplateResources, TemplateSecurity,
};
pub use template_ref::{TemplateRef, TemplateRefError, TemplateRoom};

/// The machine's age public key, to which credential bundles for it are encrypted.
///
/// Room: the fleet's machine room; state key: the machine's localpart. Content: [`MachineKey`].
pub const MACHINE_KEY: &str = "m.bureau.machine_key";

/// The machine's hardware inventory (hostname, kernel, CPU, memory, labels).
///
/// Room: the fleet's machine room; state key: the machine's localpart. Content: [`MachineInfo`].
pub const MACHINE_INFO: &str = "m.bureau.machine_info";

/// The machine's heartbeat (CPU, memory, the principals it runs).
///
/// Room: the fleet's machine room; state key: the machine's localpart. Content:
/// [`MachineStatus`].
pub const MACHINE_STATUS: &str = "m.bureau.machine_status";

/// The machine's desired state: which principals to run, how, and with what authorization.
///
/// Room: the machine's config room; state key: `""` (the room belongs to that one machine).
/// Content: [`MachineConfig`].
pub const MACHINE_CONFIG: &str = "m.bureau.machine_config";
/// The state key of [`MACHINE_CONFIG`]: empty, since the config room belongs to one machine.
pub const MACHINE_CONFIG_STATE_KEY: &str = "";

/// A principal's age-encrypted credential bundle.
///
/// Room: the machine's config room; state key: the principal's localpart. Content:
/// [`Credentials`].
pub const CREDENTIALS: &str = "m.bureau.credentials";

/// A sandbox profile that principals are started from.
///
/// Room: a template room; state key: the template's name (e.g. `agent-base`). Content:
/// [`Template`].
pub const TEMPLATE: &str = "m.bureau.template";

/// A service registration in the fleet's service directory.
///
/// Room: the fleet's service room; state key: the service principal's localpart. Content:
/// [`Service`].
pub const SERVICE: &str = "m.bureau.service";

/// A tmux layout for observation and the dashboard.
///
/// Room: a config room; state key: the layout's name (`""` for the room's default). Content:
/// [`Layout`].
pub const LAYOUT: &str = "m.bureau.layout";

/// A WebRTC offer from one machine to another.
///
/// Room: the fleet's machine room; state key: [`webrtc_state_key`] (`<offerer>|<target>`).
/// Content: [`WebrtcSignal`] with kind `offer`.
pub const WEBRTC_OFFER: &str = "m.bureau.webrtc_offer";

/// A WebRTC answer to an offer.
///
/// Room: the fleet's machine room; state key: the offer's key (`<offerer>|<target>`). Content:
/// [`WebrtcSignal`] with kind `answer`.
pub const WEBRTC_ANSWER: &str = "m.bureau.webrtc_answer";

/// The Ed25519 public key that verifies a machine's service tokens and peer authentication.
///
/// Room: the system room; state key: the machine's localpart. Content: [`TokenSigningKey`].
pub const TOKEN_SIGNING_KEY: &str = "m.bureau.token_signing_key";

/// A state event content type with one fixed event type.
///
/// Example: a Matrix client can write `put_state::<MachineConfig>(room, state_key, &config)` and
/// take the event type from `MachineConfig::EVENT_TYPE` (`m.bureau.machine_config`).
/// [`WebrtcSignal`] is not one: its event type depends on its kind
/// ([`WebrtcSignal::event_type`]).
///
/// ```
/// use bureau::schema::{MachineConfig, StateEventContent, MACHINE_CONFIG};
///
/// assert_eq!(MachineConfig::EVENT_TYPE, MACHINE_CONFIG);
/// ```
pub trait StateEventContent: serde::Serialize + serde::de::DeserializeOwned {
    /// The Matrix event type, e.g. `m.bureau.machine_config`.
    const EVENT_TYPE: &'static str;
}

impl StateEventContent for MachineKey {
    const EVENT_TYPE: &'static str = MACHINE_KEY;
}
impl StateEventContent for MachineInfo {
    const EVENT_TYPE: &'static str = MACHINE_INFO;
}
impl StateEventContent for MachineStatus {
    const EVENT_TYPE: &'static str = MACHINE_STATUS;
}
impl StateEventContent for MachineConfig {
    const EVENT_TYPE: &'static str = MACHINE_CONFIG;
}
impl StateEventContent for Credentials {
    const EVENT_TYPE: &'static str = CREDENTIALS;
}
impl StateEventContent for Template {
    const EVENT_TYPE: &'static str = TEMPLATE;
}
impl StateEventContent for Service {
    const EVENT_TYPE: &'static str = SERVICE;
}
impl StateEventContent for Layout {
    const EVENT_TYPE: &'static str = LAYOUT;
}
impl StateEventContent for TokenSigningKey {
    const EVENT_TYPE: &'static str = TOKEN_SIGNING_KEY;
}

/// Whether `value` equals its type's default (for `skip_serializing_if`).
fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// Whether `value` is `false` (for `skip_serializing_if`).
fn is_false(value: &bool) -> bool {
    !*value
}

/// Whether `text` is a lowercase token: non-empty, `[a-z0-9._-]`, not starting with `.` or `-`.
/// Used for names that become one path or URL segment (service names, endpoint names).
fn is_lowercase_token(text: &str) -> bool {
    !text.is_empty()
        && !text.starts_with(['.', '-'])
        && text.bytes().all(|byte| {
            byte.is_ascii_lowercase() || byte.is_ascii_digit() || b"._-".contains(&byte)
        })
}

#[cfg(test)]
mod test_support {
    //! Helpers shared by the schema tests.

    use serde::Serialize;
    use serde::de::DeserializeOwned;
    use serde_json::Value;

    /// Parses `json` as `T`, serializes it back and asserts the result equals `json`.
    pub fn round_trip<T: Serialize + DeserializeOwned>(json: Value) -> T {
        let parsed: T = serde_json::from_value(json.clone()).unwrap();
        let back = serde_json::to_value(&parsed).unwrap();
        assert_eq!(back, json, "round trip changed the JSON");
        parsed
    }

    /// Adds unknown fields to `json` (an object), parses it as `T`, and asserts the known fields
    /// serialize exactly as `json` did without the additions.
    pub fn tolerates_unknown_fields<T: Serialize + DeserializeOwned>(json: Value) {
        let mut extended = json.clone();
        let Value::Object(fields) = &mut extended else {
            panic!("test JSON must be an object");
        };
        fields.insert(
            "field_from_a_newer_bureau".to_owned(),
            serde_json::json!({"nested": [1, 2, 3]}),
        );
        fields.insert("m.future.flag".to_owned(), Value::Bool(true));
        let parsed: T = serde_json::from_value(extended).unwrap();
        assert_eq!(serde_json::to_value(&parsed).unwrap(), json);
    }

    /// Parses `json` as `T`, expecting a parse error, and returns its message.
    pub fn parse_error<T: DeserializeOwned + std::fmt::Debug>(json: Value) -> String {
        serde_json::from_value::<T>(json).unwrap_err().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_are_the_documented_strings() {
        let all = [
            (MACHINE_KEY, "m.bureau.machine_key"),
            (MACHINE_INFO, "m.bureau.machine_info"),
            (MACHINE_STATUS, "m.bureau.machine_status"),
            (MACHINE_CONFIG, "m.bureau.machine_config"),
            (CREDENTIALS, "m.bureau.credentials"),
            (TEMPLATE, "m.bureau.template"),
            (SERVICE, "m.bureau.service"),
            (LAYOUT, "m.bureau.layout"),
            (WEBRTC_OFFER, "m.bureau.webrtc_offer"),
            (WEBRTC_ANSWER, "m.bureau.webrtc_answer"),
            (TOKEN_SIGNING_KEY, "m.bureau.token_signing_key"),
        ];
        for (constant, expected) in all {
            assert_eq!(constant, expected);
        }
        assert_eq!(Template::EVENT_TYPE, TEMPLATE);
        assert_eq!(Credentials::EVENT_TYPE, CREDENTIALS);
        assert_eq!(TokenSigningKey::EVENT_TYPE, TOKEN_SIGNING_KEY);
    }

    #[test]
    fn lowercase_tokens() {
        for good in ["openai", "a.b_c-d", "0"] {
            assert!(is_lowercase_token(good), "{good}");
        }
        for bad in ["", ".hidden", "-x", "Upper", "a/b", "a b"] {
            assert!(!is_lowercase_token(bad), "{bad}");
        }
    }
}
