//! What the proxy is given on stdin before it serves: its principal's Matrix identity,
//! credentials and grants. CBOR from the launcher, JSON for operators and tests; both of the
//! shape
//!
//! ```json
//! {"identity": {"homeserver_url": "http://127.0.0.1:6167", "user_id": "@acme/agent/pm:bureau.local",
//!               "access_token": "syt_…"},
//!  "credentials": {"OPENAI_API_KEY": "sk-…"},
//!  "grants": [{"actions": ["matrix/join"], "targets": ["#acme/**"], "expires_at": 1795600000000}]}
//! ```
//!
//! Invariant: every secret leaves the decoder as a [`Secret`]; the raw input buffer is zeroed
//! by [`decode`] whatever the outcome.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::secret::{Secret, zeroize};

/// The principal's Matrix identity (for the `/v1/matrix/*` routes).
#[derive(Debug)]
pub struct Identity {
    pub homeserver_url: String,
    pub user_id: String,
    pub access_token: Secret,
}

/// A grant, as the daemon computed it: what the principal may do (`actions`, e.g.
/// `matrix/join`) on what (`targets`, as the proxy matches them: globs over room aliases or
/// IDs, none meaning any target), until when (`expires_at`, milliseconds since the Unix epoch;
/// none means for good). The proxy stops honouring a grant the moment it expires, without
/// waiting for the daemon.
pub use crate::schema::Grant;

/// A grant as the proxy accepts one (payload and admin route): strict, so a misspelt field
/// (`expires`, `action`) is an error rather than a grant that never expires or allows nothing.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantWire {
    actions: Vec<String>,
    #[serde(default)]
    targets: Vec<String>,
    #[serde(default)]
    expires_at: Option<u64>,
}

/// The grants in `wire`, each with at least one action; the error names the first that has
/// none.
pub fn accept_grants(wire: Vec<GrantWire>) -> Result<Vec<Grant>, String> {
    if let Some(index) = wire.iter().position(|grant| grant.actions.is_empty()) {
        return Err(format!(
            "grants[{index}] has no actions; list what it allows, e.g. [\"matrix/join\"]"
        ));
    }
    Ok(wire
        .into_iter()
        .map(|grant| Grant {
            actions: grant.actions,
            targets: grant.targets,
            expires_at: grant.expires_at,
        })
        .collect())
}

/// The decoded payload.
#[derive(Debug, Default)]
pub struct Payload {
    pub identity: Option<Identity>,
    pub credentials: BTreeMap<String, Secret>,
    pub grants: Vec<Grant>,
}

#[derive(Deserialize)]
struct IdentityWire {
    homeserver_url: String,
    user_id: String,
    access_token: String,
}

#[derive(Deserialize)]
struct PayloadWire {
    #[serde(default)]
    identity: Option<IdentityWire>,
    #[serde(default)]
    credentials: BTreeMap<String, String>,
    #[serde(default)]
    grants: Vec<GrantWire>,
}

/// The payload's encoding on stdin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadFormat {
    Cbor,
    Json,
}

/// Why a payload was refused (never quotes a value).
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("the payload on stdin is not valid {format}: {reason}")]
    Malformed {
        format: &'static str,
        reason: String,
    },
    #[error("credential name {0:?} is invalid: use A-Z, 0-9 and _ (e.g. OPENAI_API_KEY)")]
    BadCredentialName(String),
    #[error("the payload's {0}")]
    BadGrant(String),
}

/// Credential names: `[A-Z0-9_]+`.
pub fn is_credential_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|byte| byte.is_ascii_uppercase() || byte.is_ascii_digit() || byte == b'_')
}

/// Decodes `raw` and zeroes it.
pub fn decode(raw: &mut Vec<u8>, format: PayloadFormat) -> Result<Payload, PayloadError> {
    let parsed: Result<PayloadWire, PayloadError> = match format {
        PayloadFormat::Json => {
            serde_json::from_slice(raw).map_err(|error| PayloadError::Malformed {
                format: "JSON",
                // serde_json's messages give a position, never the offending value.
                reason: error.to_string(),
            })
        }
        PayloadFormat::Cbor => {
            minicbor_serde::from_slice(raw).map_err(|error| PayloadError::Malformed {
                format: "CBOR",
                reason: error.to_string(),
            })
        }
    };
    zeroize(raw);
    raw.clear();
    let wire = parsed?;
    let grants = accept_grants(wire.grants).map_err(PayloadError::BadGrant)?;
    let mut credentials = BTreeMap::new();
    for (name, value) in wire.credentials {
        if !is_credential_name(&name) {
            drop(Secret::from_string(value));
            return Err(PayloadError::BadCredentialName(name));
        }
        credentials.insert(name, Secret::from_string(value));
    }
    Ok(Payload {
        identity: wire.identity.map(|identity| Identity {
            homeserver_url: identity.homeserver_url,
            user_id: identity.user_id,
            access_token: Secret::from_string(identity.access_token),
        }),
        credentials,
        grants,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_payload_decodes_and_the_input_is_zeroed() {
        let mut raw = br#"{"credentials": {"API_KEY": "canary-123"},
            "grants": [{"actions": ["matrix/join"]}]}"#
            .to_vec();
        let payload = decode(&mut raw, PayloadFormat::Json).expect("decode");
        assert!(raw.is_empty());
        assert!(payload.credentials["API_KEY"].constant_time_eq(b"canary-123"));
        assert_eq!(payload.grants[0].actions, ["matrix/join"]);
        assert!(!format!("{payload:?}").contains("canary-123"));
    }

    #[test]
    fn a_grant_with_a_misspelt_field_or_no_actions_is_refused() {
        for (payload, named) in [
            (
                r#"{"grants": [{"actions": ["matrix/join"], "expires": 5}]}"#,
                "unknown field",
            ),
            (
                r#"{"grants": [{"action": ["matrix/join"]}]}"#,
                "unknown field",
            ),
            (
                r#"{"grants": [{"actions": []}]}"#,
                "grants[0] has no actions",
            ),
        ] {
            let error =
                decode(&mut payload.as_bytes().to_vec(), PayloadFormat::Json).expect_err("refused");
            assert!(error.to_string().contains(named), "{error}");
        }
        let mut good = br#"{"grants": [{"actions": ["matrix/join"], "expires_at": 5}]}"#.to_vec();
        let payload = decode(&mut good, PayloadFormat::Json).expect("decodes");
        assert_eq!(payload.grants[0].expires_at, Some(5));
    }

    #[test]
    fn cbor_payload_decodes_like_json() {
        #[derive(serde::Serialize)]
        struct Wire {
            credentials: BTreeMap<&'static str, &'static str>,
        }
        let mut raw = minicbor_serde::to_vec(Wire {
            credentials: BTreeMap::from([("TOKEN", "t-1")]),
        })
        .expect("encode");
        let payload = decode(&mut raw, PayloadFormat::Cbor).expect("decode");
        assert!(payload.credentials["TOKEN"].constant_time_eq(b"t-1"));
    }

    #[test]
    fn malformed_input_and_bad_names_are_refused_without_echoing_values() {
        let mut raw = br#"{"credentials": {"lower": "canary-456"}}"#.to_vec();
        let error = decode(&mut raw, PayloadFormat::Json).expect_err("bad name");
        assert!(error.to_string().contains("lower"));
        assert!(!error.to_string().contains("canary-456"));
        let mut raw = b"{not json".to_vec();
        assert!(decode(&mut raw, PayloadFormat::Json).is_err());
    }
}
