//! User-ID patterns: `localpart_glob:server_glob`, such as `acme/fleet/*/agent/**:bureau.local`.
//!
//! Invariant: a pattern matches a [`UserId`] only when its localpart glob matches the localpart
//! and its server glob matches the server name byte for byte; a malformed pattern, or a string
//! that is not a valid user ID, never matches. The split is on the first `:` (localparts have
//! none), so a port stays with the server glob.

use std::fmt;
use std::str::FromStr;

use super::glob::{Glob, GlobError, Token, tokenize, tokens_match};
use super::ids::UserId;

/// A validated user-ID pattern: a [`Glob`] over the localpart and a wildcard pattern over the
/// server name. A leading `@` is accepted and ignored.
///
/// Example: `acme/fleet/*/agent/**:bureau.local` matches `@acme/fleet/prod/agent/pm:bureau.local`
/// but not `@acme/fleet/prod/agent/pm:other.example`.
///
/// ```
/// use bureau::naming::{UserId, UserIdPattern};
///
/// let pattern = UserIdPattern::parse("acme/fleet/*/agent/**:bureau.local")?;
/// assert!(pattern.matches(&UserId::parse("@acme/fleet/prod/agent/pm:bureau.local")?));
/// assert!(!pattern.matches(&UserId::parse("@acme/fleet/prod/agent/pm:other.example")?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserIdPattern {
    /// The pattern as written.
    text: String,
    /// The glob over the localpart.
    localpart: Glob,
    /// The wildcard pattern over the whole server name (`*` spans `.` and `:`).
    server: Vec<Token>,
}

/// Why a string is not a valid server glob (the part of a user-ID pattern after the first `:`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServerGlobError {
    /// Nothing after the `:`.
    ///
    /// Example: `"acme/**:"` → `server glob "": is empty; use * to match every server`.
    #[error("server glob \"\": is empty; use * to match every server")]
    Empty,

    /// A character that cannot appear in a server name and is not `*` or `?`.
    ///
    /// Example: `"bureau_local"` → `server glob "bureau_local": character '_' at byte 6 is not
    /// allowed; server globs use letters, digits, '.', '-', ':', '[', ']' and the wildcards '*'
    /// and '?'`.
    #[error(
        "server glob {glob:?}: character {character:?} at byte {position} is not allowed; server \
         globs use letters, digits, '.', '-', ':', '[', ']' and the wildcards '*' and '?'"
    )]
    InvalidCharacter {
        /// The whole server glob.
        glob: String,
        /// The first character that is not allowed.
        character: char,
        /// Its byte offset in `glob`.
        position: usize,
    },

    /// A `**`, which means nothing in a server name (it has no segments).
    ///
    /// Example: `"**.local"` → `server glob "**.local": "**" has no meaning in a server name,
    /// which has no segments; use "*", which matches any run of characters`.
    #[error(
        "server glob {glob:?}: \"**\" has no meaning in a server name, which has no segments; use \
         \"*\", which matches any run of characters"
    )]
    DoubleStar {
        /// The whole server glob.
        glob: String,
    },
}

/// Why a string is not a valid user-ID pattern. Every message names the whole pattern and
/// includes the localpart or server glob error in full.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserIdPatternError {
    /// The pattern is empty.
    ///
    /// Example: `""` → `user ID pattern "": is empty; write localpart_glob:server_glob, like
    /// acme/**:bureau.local`.
    #[error(
        "user ID pattern \"\": is empty; write localpart_glob:server_glob, like \
         acme/**:bureau.local"
    )]
    Empty,

    /// No `:` between the localpart glob and the server glob.
    ///
    /// Example: `"acme/**"` → `user ID pattern "acme/**": has no ':' before the server glob;
    /// write localpart_glob:server_glob, like acme/**:bureau.local (or acme/**:* for any
    /// server)`.
    #[error(
        "user ID pattern {pattern:?}: has no ':' before the server glob; write \
         localpart_glob:server_glob, like acme/**:bureau.local (or acme/**:* for any server)"
    )]
    MissingColon {
        /// The whole pattern.
        pattern: String,
    },

    /// The localpart glob is malformed.
    ///
    /// Example: `"acme/a**b:bureau.local"` → `user ID pattern "acme/a**b:bureau.local": glob
    /// "acme/a**b": segment "a**b" mixes "**" with other characters; …`.
    #[error("user ID pattern {pattern:?}: {reason}")]
    Localpart {
        /// The whole pattern.
        pattern: String,
        /// What is wrong with the localpart glob.
        reason: GlobError,
    },

    /// The server glob is malformed.
    ///
    /// Example: `"acme/**:bureau_local"` → `user ID pattern "acme/**:bureau_local": server glob
    /// "bureau_local": character '_' at byte 6 is not allowed; …`.
    #[error("user ID pattern {pattern:?}: {reason}")]
    Server {
        /// The whole pattern.
        pattern: String,
        /// What is wrong with the server glob.
        reason: ServerGlobError,
    },
}

/// Whether `byte` may appear in a server glob: server-name characters plus `*` and `?`.
fn is_server_glob_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'-' | b':' | b'[' | b']' | b'*' | b'?')
}

/// Validates a server glob and turns it into tokens.
fn parse_server_glob(glob: &str) -> Result<Vec<Token>, ServerGlobError> {
    if glob.is_empty() {
        return Err(ServerGlobError::Empty);
    }
    if let Some((position, character)) = glob
        .char_indices()
        .find(|&(_, character)| !(character.is_ascii() && is_server_glob_byte(character as u8)))
    {
        return Err(ServerGlobError::InvalidCharacter {
            glob: glob.to_owned(),
            character,
            position,
        });
    }
    if glob.contains("**") {
        return Err(ServerGlobError::DoubleStar {
            glob: glob.to_owned(),
        });
    }
    Ok(tokenize(glob))
}

impl UserIdPattern {
    /// Parses `localpart_glob:server_glob`, splitting on the first `:`; a leading `@` is
    /// ignored. The server glob is matched against the whole server name: `*` matches any run
    /// of characters (including `.` and `:`), `?` exactly one.
    ///
    /// Example: `"acme/fleet/*/agent/**:bureau.local"` → `Ok`; `"acme/**:*"` → `Ok` (any
    /// server); `"acme/**"` → `Err(user ID pattern "acme/**": has no ':' before the server
    /// glob; …)`.
    ///
    /// ```
    /// use bureau::naming::UserIdPattern;
    ///
    /// assert!(UserIdPattern::parse("acme/fleet/*/agent/**:bureau.local").is_ok());
    /// assert!(UserIdPattern::parse("@acme/**:*.local:8448").is_ok());
    /// assert!(UserIdPattern::parse("acme/**").is_err());
    /// ```
    pub fn parse(pattern: &str) -> Result<Self, UserIdPatternError> {
        if pattern.is_empty() {
            return Err(UserIdPatternError::Empty);
        }
        let body = pattern.strip_prefix(UserId::SIGIL).unwrap_or(pattern);
        let Some((localpart_glob, server_glob)) = body.split_once(':') else {
            return Err(UserIdPatternError::MissingColon {
                pattern: pattern.to_owned(),
            });
        };
        let localpart =
            Glob::parse(localpart_glob).map_err(|reason| UserIdPatternError::Localpart {
                pattern: pattern.to_owned(),
                reason,
            })?;
        let server =
            parse_server_glob(server_glob).map_err(|reason| UserIdPatternError::Server {
                pattern: pattern.to_owned(),
                reason,
            })?;
        Ok(Self {
            text: pattern.to_owned(),
            localpart,
            server,
        })
    }

    /// The pattern as written.
    ///
    /// Example: `acme/**:bureau.local` → `"acme/**:bureau.local"`.
    ///
    /// ```
    /// # use bureau::naming::UserIdPattern;
    /// assert_eq!(UserIdPattern::parse("acme/**:bureau.local")?.as_str(), "acme/**:bureau.local");
    /// # Ok::<(), bureau::naming::UserIdPatternError>(())
    /// ```
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The glob over the localpart.
    ///
    /// Example: `acme/**:bureau.local` → `acme/**`.
    ///
    /// ```
    /// # use bureau::naming::UserIdPattern;
    /// assert_eq!(UserIdPattern::parse("acme/**:bureau.local")?.localpart_glob().as_str(), "acme/**");
    /// # Ok::<(), bureau::naming::UserIdPatternError>(())
    /// ```
    pub fn localpart_glob(&self) -> &Glob {
        &self.localpart
    }

    /// Whether `user_id` matches: the localpart glob matches its localpart and the server glob
    /// its whole server name (port included, byte for byte).
    ///
    /// Example: `acme/*:*.local` matches `@acme/pm:bureau.local`, not `@acme/pm:bureau.local:8448`
    /// (the port is part of the server name) and not `@acme/a/pm:bureau.local`.
    ///
    /// ```
    /// use bureau::naming::{UserId, UserIdPattern};
    ///
    /// let pattern = UserIdPattern::parse("acme/*:*.local")?;
    /// assert!(pattern.matches(&UserId::parse("@acme/pm:bureau.local")?));
    /// assert!(!pattern.matches(&UserId::parse("@acme/pm:bureau.local:8448")?));
    /// assert!(!pattern.matches(&UserId::parse("@acme/a/pm:bureau.local")?));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn matches(&self, user_id: &UserId) -> bool {
        tokens_match(&self.server, user_id.server().as_str().as_bytes())
            && self.localpart.matches(user_id.localpart().as_str())
    }
}

/// Whether `user_id` matches `pattern`; false if either is malformed.
///
/// Example: (`acme/fleet/*/agent/**:bureau.local`, `@acme/fleet/prod/agent/pm:bureau.local`) →
/// `true`; (`acme/**:bureau.local`, `@acme/../x:bureau.local`) → `false` (invalid user ID).
///
/// ```
/// use bureau::naming::user_id_pattern_matches;
///
/// assert!(user_id_pattern_matches(
///     "acme/fleet/*/agent/**:bureau.local",
///     "@acme/fleet/prod/agent/pm:bureau.local",
/// ));
/// assert!(!user_id_pattern_matches("acme/**:bureau.local", "@acme/../x:bureau.local"));
/// assert!(!user_id_pattern_matches("acme/**", "@acme/pm:bureau.local"));
/// ```
pub fn user_id_pattern_matches(pattern: &str, user_id: &str) -> bool {
    let Ok(pattern) = UserIdPattern::parse(pattern) else {
        return false;
    };
    UserId::parse(user_id).is_ok_and(|user_id| pattern.matches(&user_id))
}

impl fmt::Display for UserIdPattern {
    /// Example: `acme/**:bureau.local` → `acme/**:bureau.local`.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.text)
    }
}

impl FromStr for UserIdPattern {
    type Err = UserIdPatternError;

    /// Same as [`UserIdPattern::parse`]. Example: `"acme/**:*".parse::<UserIdPattern>()` → `Ok`.
    fn from_str(pattern: &str) -> Result<Self, Self::Err> {
        Self::parse(pattern)
    }
}

serde_as_validated_string!(UserIdPattern);

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::naming::strategies::{valid_localpart, valid_server_name};

    fn user_id(text: &str) -> UserId {
        UserId::parse(text).unwrap()
    }

    fn error_text(pattern: &str) -> String {
        UserIdPattern::parse(pattern).unwrap_err().to_string()
    }

    #[test]
    fn matches_localpart_and_server() {
        let pattern = UserIdPattern::parse("acme/fleet/*/agent/**:bureau.local").unwrap();
        assert!(pattern.matches(&user_id("@acme/fleet/prod/agent/pm:bureau.local")));
        assert!(pattern.matches(&user_id("@acme/fleet/dev/agent/a/b:bureau.local")));
        assert!(pattern.matches(&user_id("@acme/fleet/dev/agent:bureau.local")));
        assert!(!pattern.matches(&user_id("@acme/fleet/prod/agent/pm:other.example")));
        assert!(!pattern.matches(&user_id("@acme/fleet/prod/agent/pm:bureau.local:8448")));
        assert!(!pattern.matches(&user_id("@acme/fleet/a/b/agent/pm:bureau.local")));
        assert_eq!(pattern.localpart_glob().as_str(), "acme/fleet/*/agent/**");
    }

    #[test]
    fn server_glob_wildcards_span_dots_and_ports() {
        assert!(user_id_pattern_matches("**:*", "@a/b:x.y:8448"));
        assert!(user_id_pattern_matches("**:*.local", "@a:bureau.local"));
        assert!(user_id_pattern_matches("**:*.local", "@a:x.bureau.local"));
        assert!(!user_id_pattern_matches(
            "**:*.local",
            "@a:bureau.local:8448"
        ));
        assert!(user_id_pattern_matches(
            "**:bureau.local:*",
            "@a:bureau.local:8448"
        ));
        assert!(user_id_pattern_matches(
            "**:bureau.local:84?8",
            "@a:bureau.local:8448"
        ));
        assert!(user_id_pattern_matches("**:[::1]:8448", "@a:[::1]:8448"));
        assert!(!user_id_pattern_matches("**:[::1]:8448", "@a:[::1]:8449"));
        assert!(!user_id_pattern_matches(
            "**:bureau.local",
            "@a:BUREAU.LOCAL"
        ));
    }

    #[test]
    fn splits_on_the_first_colon_and_accepts_a_leading_at() {
        let pattern = UserIdPattern::parse("@acme/**:bureau.local:8448").unwrap();
        assert_eq!(pattern.localpart_glob().as_str(), "acme/**");
        assert_eq!(pattern.to_string(), "@acme/**:bureau.local:8448");
        assert!(pattern.matches(&user_id("@acme/pm:bureau.local:8448")));
    }

    #[test]
    fn rejects_empty_and_missing_colon() {
        assert_eq!(UserIdPattern::parse(""), Err(UserIdPatternError::Empty));
        assert!(error_text("").contains("is empty"));
        assert_eq!(
            UserIdPattern::parse("acme/**"),
            Err(UserIdPatternError::MissingColon {
                pattern: "acme/**".into()
            })
        );
        let message = error_text("acme/**");
        assert!(message.contains("\"acme/**\"") && message.contains("no ':'"));
        assert!(!user_id_pattern_matches("acme/**", "@acme/pm:bureau.local"));
        assert!(!user_id_pattern_matches("", "@acme/pm:bureau.local"));
    }

    #[test]
    fn reports_localpart_glob_errors_in_full() {
        let error = UserIdPattern::parse("acme/a**b:bureau.local").unwrap_err();
        assert!(matches!(
            &error,
            UserIdPatternError::Localpart {
                reason: GlobError::DoubleStarInSegment { .. },
                ..
            }
        ));
        let message = error.to_string();
        assert!(message.contains("\"acme/a**b:bureau.local\""), "{message}");
        assert!(message.contains("\"a**b\""), "{message}");
        assert!(error_text(":bureau.local").contains("glob \"\": is empty"));
        assert!(!user_id_pattern_matches(
            "acme/a**b:bureau.local",
            "@acme/ab:bureau.local"
        ));
    }

    #[test]
    fn reports_server_glob_errors_in_full() {
        assert_eq!(
            UserIdPattern::parse("acme/**:"),
            Err(UserIdPatternError::Server {
                pattern: "acme/**:".into(),
                reason: ServerGlobError::Empty,
            })
        );
        assert!(error_text("acme/**:").contains("server glob \"\": is empty"));

        assert_eq!(
            UserIdPattern::parse("acme/**:bureau_local"),
            Err(UserIdPatternError::Server {
                pattern: "acme/**:bureau_local".into(),
                reason: ServerGlobError::InvalidCharacter {
                    glob: "bureau_local".into(),
                    character: '_',
                    position: 6,
                },
            })
        );
        assert!(error_text("acme/**:bureau_local").contains("'_' at byte 6"));

        assert_eq!(
            UserIdPattern::parse("acme/**:**.local"),
            Err(UserIdPatternError::Server {
                pattern: "acme/**:**.local".into(),
                reason: ServerGlobError::DoubleStar {
                    glob: "**.local".into()
                },
            })
        );
        assert!(error_text("acme/**:**.local").contains("use \"*\""));
        assert!(!user_id_pattern_matches(
            "acme/**:**",
            "@acme/pm:bureau.local"
        ));
    }

    #[test]
    fn invalid_user_ids_never_match() {
        for user_id in [
            "",
            "acme/pm:bureau.local",
            "@acme/../x:bureau.local",
            "@a:b:0",
        ] {
            assert!(!user_id_pattern_matches("**:*", user_id), "{user_id:?}");
        }
    }

    #[test]
    fn from_str_display_and_serde() {
        let pattern: UserIdPattern = "acme/*:*".parse().unwrap();
        assert_eq!(pattern.as_str(), "acme/*:*");
        let json = serde_json::to_string(&pattern).unwrap();
        assert_eq!(json, "\"acme/*:*\"");
        assert_eq!(
            serde_json::from_str::<UserIdPattern>(&json).unwrap(),
            pattern
        );
        assert!(serde_json::from_str::<UserIdPattern>("\"acme/*\"").is_err());
    }

    proptest! {
        #[test]
        fn literal_pattern_matches_exactly_its_user_id(
            localpart in valid_localpart(),
            server in valid_server_name(),
            other_localpart in valid_localpart(),
            other_server in valid_server_name(),
        ) {
            let pattern = format!("{localpart}:{server}");
            let own = format!("@{localpart}:{server}");
            let other = format!("@{other_localpart}:{other_server}");
            prop_assert!(user_id_pattern_matches(&pattern, &own));
            let with_sigil = format!("@{pattern}");
            prop_assert!(user_id_pattern_matches(&with_sigil, &own));
            prop_assert!(user_id_pattern_matches("**:*", &own));
            prop_assert_eq!(
                user_id_pattern_matches(&pattern, &other),
                localpart == other_localpart && server == other_server
            );
        }

        #[test]
        fn never_panics(pattern in any::<String>(), user_id in any::<String>()) {
            let _ = user_id_pattern_matches(&pattern, &user_id);
        }

        #[test]
        fn never_panics_on_near_valid_input(
            pattern in "@?[a-c*?/]{0,12}:[a-c*?.:\\[\\]0-9]{0,12}",
            user_id in "@[a-c/]{0,12}:[a-c.:0-9]{0,12}",
        ) {
            let matched = user_id_pattern_matches(&pattern, &user_id);
            if matched {
                prop_assert!(UserId::parse(&user_id).is_ok());
            }
        }
    }
}
