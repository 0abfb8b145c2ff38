//! A principal's authorization as written in its assignment: grants, denials, allowances and
//! allowance-denials (ARCHITECTURE §8).
//!
//! Invariant: this module only *describes* policy. Actions are globs over `/`-separated action
//! names (`observe`, `matrix/join`, `command/machine/**`); targets and actors are
//! [`PrincipalPattern`]s. That they parse is checked by
//! [`MachineConfig::validate`](super::MachineConfig::validate); evaluating them (a matching unexpired grant, no
//! matching denial, and for targeted actions a matching allowance on the target and no
//! allowance-denial) belongs to the `authz` module, never to a proxy. A proxy only matches the
//! grants it is given, and honours none past its `expires_at`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::naming::{Glob, GlobError, UserIdPattern, UserIdPatternError};

/// Everything a [`PrincipalAssignment`](super::PrincipalAssignment) says about authorization.
/// All four lists default to empty (the principal may do nothing, and nobody may act on it).
///
/// Example:
/// ```json
/// {"grants": [{"actions": ["observe"], "targets": ["acme/agent/**"]},
///             {"actions": ["matrix/join"], "expires_at": 1718000000000}],
///  "denials": [{"actions": ["observe"], "targets": ["acme/agent/secret"]}],
///  "allowances": [{"actions": ["observe"], "actors": ["acme/operator/**:bureau.local"]}],
///  "allowance_denials": [{"actions": ["interrupt"], "actors": ["acme/operator/intern"]}]}
/// ```
///
/// ```
/// use bureau::schema::Authorization;
///
/// let authorization: Authorization = serde_json::from_str(
///     r#"{"grants": [{"actions": ["observe"], "targets": ["acme/agent/**"]}]}"#,
/// )?;
/// assert_eq!(authorization.grants[0].actions, ["observe"]);
/// assert!(authorization.denials.is_empty());
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Authorization {
    /// What the principal may do.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<Grant>,
    /// What the principal may not do, whatever its grants say.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub denials: Vec<Denial>,
    /// Who may act on the principal (e.g. who may `observe` it).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowances: Vec<Allowance>,
    /// Who may not act on the principal, whatever the allowances say.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowance_denials: Vec<AllowanceDenial>,
}

impl Authorization {
    /// Whether nothing is granted, denied or allowed.
    ///
    /// Example: `Authorization::default().is_empty()` → `true`.
    ///
    /// ```
    /// # use bureau::schema::Authorization;
    /// assert!(Authorization::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Permission for the principal to perform `actions` on `targets`, until `expires_at`.
///
/// Actions are globs over action names (`observe`, `matrix/*`, `**`). Targets are
/// [`PrincipalPattern`]s; an empty `targets` list covers only actions that have no target (such
/// as `matrix/join`).
///
/// Example: `{"actions": ["observe", "interrupt"], "targets": ["acme/agent/**"], "expires_at":
/// 1718000000000}`.
///
/// ```
/// use bureau::schema::Grant;
///
/// let grant: Grant = serde_json::from_str(
///     r#"{"actions": ["observe"], "targets": ["acme/agent/**"], "expires_at": 2000}"#,
/// )?;
/// assert!(grant.is_active_at(1999));
/// assert!(!grant.is_active_at(2000));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Grant {
    /// Action globs.
    pub actions: Vec<String>,
    /// Target patterns.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    /// When the grant stops applying, in milliseconds since the Unix epoch; `None` never.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
}

impl Grant {
    /// Whether the grant applies at `now` (milliseconds since the Unix epoch): it has no expiry
    /// or expires strictly after `now`.
    ///
    /// Example: `expires_at: 2000` → active at 1999, not at 2000.
    ///
    /// ```
    /// # use bureau::schema::Grant;
    /// let forever = Grant { actions: vec!["observe".into()], ..Grant::default() };
    /// assert!(forever.is_active_at(u64::MAX));
    /// ```
    pub fn is_active_at(&self, now: u64) -> bool {
        self.expires_at.is_none_or(|expires_at| now < expires_at)
    }
}

/// A refusal of `actions` on `targets` that overrides any grant.
///
/// Example: `{"actions": ["observe"], "targets": ["acme/agent/secret"]}`.
///
/// ```
/// use bureau::schema::Denial;
///
/// let denial: Denial = serde_json::from_str(r#"{"actions": ["**"], "targets": ["acme/prod/**"]}"#)?;
/// assert_eq!(denial.targets, ["acme/prod/**"]);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Denial {
    /// Action globs.
    pub actions: Vec<String>,
    /// Target patterns; empty covers the actions that have no target.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
}

/// Permission for `actors` to perform `actions` on this principal.
///
/// Example: `{"actions": ["observe"], "actors": ["acme/operator/**:bureau.local"]}`.
///
/// ```
/// use bureau::schema::Allowance;
///
/// let allowance: Allowance = serde_json::from_str(r#"{"actions": ["observe"], "actors": ["acme/operator/**"]}"#)?;
/// assert_eq!(allowance.actors, ["acme/operator/**"]);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Allowance {
    /// Action globs.
    pub actions: Vec<String>,
    /// Who may act: principal patterns (at least one).
    pub actors: Vec<String>,
}

/// A refusal for `actors` to perform `actions` on this principal that overrides any allowance.
///
/// Example: `{"actions": ["interrupt"], "actors": ["acme/operator/intern"]}`.
///
/// ```
/// use bureau::schema::AllowanceDenial;
///
/// let denial: AllowanceDenial = serde_json::from_str(r#"{"actions": ["interrupt"], "actors": ["acme/operator/intern"]}"#)?;
/// assert_eq!(denial.actions, ["interrupt"]);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AllowanceDenial {
    /// Action globs.
    pub actions: Vec<String>,
    /// Who may not act: principal patterns (at least one).
    pub actors: Vec<String>,
}

/// A pattern naming principals: a localpart [`Glob`] (`acme/agent/**`, any server) or, with a
/// `:`, a [`UserIdPattern`] (`acme/agent/**:bureau.local`, that server only).
///
/// Example: `"acme/agent/**"` → `Localpart`; `"acme/agent/**:*.local"` → `UserId`.
///
/// ```
/// use bureau::schema::PrincipalPattern;
///
/// assert!(matches!(PrincipalPattern::parse("acme/agent/**")?, PrincipalPattern::Localpart(_)));
/// assert!(matches!(PrincipalPattern::parse("acme/**:bureau.local")?, PrincipalPattern::UserId(_)));
/// assert!(PrincipalPattern::parse("acme//x").is_err());
/// # Ok::<(), bureau::schema::PrincipalPatternError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PrincipalPattern {
    /// A glob over localparts, on any server.
    Localpart(Glob),
    /// A glob over localparts and a pattern over server names.
    UserId(UserIdPattern),
}

/// Why a string is not a [`PrincipalPattern`]; the message is the glob's or the user-ID
/// pattern's own, which names the pattern and the bad part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrincipalPatternError {
    /// The localpart glob is malformed.
    ///
    /// Example: `"acme//x"` → `glob "acme//x": empty segment at byte 5 ('//'); …`.
    #[error(transparent)]
    Localpart(GlobError),
    /// The user-ID pattern is malformed.
    ///
    /// Example: `"acme/**:bureau_local"` → `user ID pattern "acme/**:bureau_local": server glob
    /// "bureau_local": character '_' at byte 6 is not allowed; …`.
    #[error(transparent)]
    UserId(UserIdPatternError),
}

impl PrincipalPattern {
    /// Parses a user-ID pattern when `text` contains `:` (or starts with `@`), else a localpart
    /// glob.
    ///
    /// Example: `"@acme/**:bureau.local"` → `UserId`; `"acme/*"` → `Localpart`.
    ///
    /// ```
    /// # use bureau::schema::PrincipalPattern;
    /// assert_eq!(PrincipalPattern::parse("acme/*")?.to_string(), "acme/*");
    /// # Ok::<(), bureau::schema::PrincipalPatternError>(())
    /// ```
    pub fn parse(text: &str) -> Result<Self, PrincipalPatternError> {
        if text.contains(':') || text.starts_with('@') {
            UserIdPattern::parse(text)
                .map(Self::UserId)
                .map_err(PrincipalPatternError::UserId)
        } else {
            Glob::parse(text)
                .map(Self::Localpart)
                .map_err(PrincipalPatternError::Localpart)
        }
    }
}

impl fmt::Display for PrincipalPattern {
    /// Example: `acme/agent/**:bureau.local` → `acme/agent/**:bureau.local`.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Localpart(glob) => formatter.write_str(glob.as_str()),
            Self::UserId(pattern) => formatter.write_str(pattern.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::test_support::{round_trip, tolerates_unknown_fields};
    use super::*;

    fn authorization_json() -> serde_json::Value {
        json!({
            "grants": [
                {"actions": ["observe", "interrupt"], "targets": ["acme/agent/**"]},
                {"actions": ["matrix/join"], "expires_at": 1_718_000_000_000_u64}
            ],
            "denials": [{"actions": ["observe"], "targets": ["acme/agent/secret"]}],
            "allowances": [{"actions": ["observe"], "actors": ["acme/operator/**:bureau.local"]}],
            "allowance_denials": [{"actions": ["interrupt"], "actors": ["acme/operator/intern"]}]
        })
    }

    #[test]
    fn authorization_round_trips() {
        let authorization: Authorization = round_trip(authorization_json());
        assert_eq!(authorization.grants[1].expires_at, Some(1_718_000_000_000));
        assert_eq!(
            authorization.allowance_denials[0].actors,
            ["acme/operator/intern"]
        );
        tolerates_unknown_fields::<Authorization>(authorization_json());
    }

    #[test]
    fn each_rule_tolerates_unknown_fields() {
        tolerates_unknown_fields::<Grant>(json!({"actions": ["observe"], "targets": ["a/**"]}));
        tolerates_unknown_fields::<Denial>(json!({"actions": ["observe"]}));
        tolerates_unknown_fields::<Allowance>(json!({"actions": ["observe"], "actors": ["a"]}));
        tolerates_unknown_fields::<AllowanceDenial>(json!({"actions": ["x"], "actors": ["a"]}));
    }

    #[test]
    fn empty_authorization_serializes_as_an_empty_object() {
        let authorization: Authorization = round_trip(json!({}));
        assert!(authorization.is_empty());
    }

    #[test]
    fn grant_expiry_is_exclusive() {
        let grant = Grant {
            actions: vec!["observe".to_owned()],
            targets: Vec::new(),
            expires_at: Some(2000),
        };
        assert!(grant.is_active_at(0));
        assert!(grant.is_active_at(1999));
        assert!(!grant.is_active_at(2000));
        assert!(!grant.is_active_at(u64::MAX));
    }

    #[test]
    fn principal_patterns_choose_their_kind_by_the_colon() {
        let localpart = PrincipalPattern::parse("acme/agent/**").unwrap();
        assert!(matches!(localpart, PrincipalPattern::Localpart(_)));
        assert_eq!(localpart.to_string(), "acme/agent/**");
        let user_id = PrincipalPattern::parse("acme/agent/**:*.local").unwrap();
        assert!(matches!(user_id, PrincipalPattern::UserId(_)));
        assert_eq!(user_id.to_string(), "acme/agent/**:*.local");
        assert!(matches!(
            PrincipalPattern::parse("@acme/**"),
            Err(PrincipalPatternError::UserId(
                UserIdPatternError::MissingColon { .. }
            ))
        ));
    }

    #[test]
    fn principal_pattern_errors_are_the_naming_errors() {
        assert_eq!(
            PrincipalPattern::parse("acme//x").unwrap_err().to_string(),
            Glob::parse("acme//x").unwrap_err().to_string()
        );
        assert_eq!(
            PrincipalPattern::parse("acme/**:bureau_local")
                .unwrap_err()
                .to_string(),
            UserIdPattern::parse("acme/**:bureau_local")
                .unwrap_err()
                .to_string()
        );
    }
}
