//! Matrix IDs: user IDs (`@localpart:server`) and room aliases (`#localpart:server`).
//!
//! Invariant: both are a validated [`Localpart`] and [`ServerName`], so every user ID names a
//! principal that has socket paths, and `@` ↔ `#` maps a principal to its room one-to-one.
//! Parsing splits on the first `:` after the sigil: localparts never contain `:`, server names
//! may (for the port).

use std::fmt;
use std::str::FromStr;

use super::localpart::{Localpart, NameError};
use super::server::{ServerName, ServerNameError};

/// A Matrix user ID whose localpart is a Bureau principal name.
///
/// Example: `UserId::parse("@acme/fleet/prod/agent/pm:bureau.local")` → localpart
/// `acme/fleet/prod/agent/pm`, server `bureau.local`, displayed back as the same string.
///
/// ```
/// use bureau::naming::UserId;
///
/// let pm = UserId::parse("@acme/fleet/prod/agent/pm:bureau.local")?;
/// assert_eq!(pm.localpart().as_str(), "acme/fleet/prod/agent/pm");
/// assert_eq!(pm.server().as_str(), "bureau.local");
/// assert_eq!(pm.to_string(), "@acme/fleet/prod/agent/pm:bureau.local");
/// # Ok::<(), bureau::naming::MatrixIdError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId {
    localpart: Localpart,
    server: ServerName,
}

/// A Matrix room alias whose localpart is a Bureau principal name (the principal's room).
///
/// Example: `RoomAlias::parse("#acme/fleet/prod/machine/box1:bureau.local")` → localpart
/// `acme/fleet/prod/machine/box1`, server `bureau.local`.
///
/// ```
/// use bureau::naming::RoomAlias;
///
/// let room = RoomAlias::parse("#acme/fleet/prod/machine/box1:bureau.local")?;
/// assert_eq!(room.localpart().as_str(), "acme/fleet/prod/machine/box1");
/// assert_eq!(room.to_string(), "#acme/fleet/prod/machine/box1:bureau.local");
/// # Ok::<(), bureau::naming::MatrixIdError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomAlias {
    localpart: Localpart,
    server: ServerName,
}

/// Why a string is not a valid user ID or room alias. Every message names the kind of ID and
/// the whole input; localpart and server errors are included in full.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatrixIdError {
    /// The input does not start with the sigil (`@` for a user ID, `#` for a room alias).
    ///
    /// Example: `UserId::parse("acme/pm:bureau.local")` → `user ID "acme/pm:bureau.local": must
    /// start with '@' (expected @<localpart>:<server>, like @acme/agent/pm:bureau.local)`.
    #[error(
        "{kind} {input:?}: must start with {sigil:?} (expected {sigil}<localpart>:<server>, like \
         {sigil}acme/agent/pm:bureau.local)"
    )]
    MissingSigil {
        /// `"user ID"` or `"room alias"`.
        kind: &'static str,
        /// The whole input.
        input: String,
        /// The sigil it should start with.
        sigil: char,
    },

    /// No `:` between the localpart and the server name.
    ///
    /// Example: `UserId::parse("@acme/pm")` → `user ID "@acme/pm": has no ':' before the server
    /// name (expected @<localpart>:<server>, like @acme/agent/pm:bureau.local)`.
    #[error(
        "{kind} {input:?}: has no ':' before the server name (expected {sigil}<localpart>:<server>, \
         like {sigil}acme/agent/pm:bureau.local)"
    )]
    MissingServer {
        /// `"user ID"` or `"room alias"`.
        kind: &'static str,
        /// The whole input.
        input: String,
        /// The ID's sigil.
        sigil: char,
    },

    /// The localpart is invalid.
    ///
    /// Example: `UserId::parse("@acme/../x:bureau.local")` → `user ID "@acme/../x:bureau.local":
    /// localpart "acme/../x": segment ".." is a path traversal segment; …`.
    #[error("{kind} {input:?}: {reason}")]
    Localpart {
        /// `"user ID"` or `"room alias"`.
        kind: &'static str,
        /// The whole input.
        input: String,
        /// What is wrong with the localpart.
        reason: NameError,
    },

    /// The server name is invalid.
    ///
    /// Example: `UserId::parse("@acme/pm:bureau.local:0")` → `user ID "@acme/pm:bureau.local:0":
    /// server name "bureau.local:0": port "0" is not a number from 1 to 65535`.
    #[error("{kind} {input:?}: {reason}")]
    Server {
        /// `"user ID"` or `"room alias"`.
        kind: &'static str,
        /// The whole input.
        input: String,
        /// What is wrong with the server name.
        reason: ServerNameError,
    },
}

/// Splits `<sigil><localpart>:<server>` on the first `:` and validates both halves.
fn parse_id(
    input: &str,
    kind: &'static str,
    sigil: char,
) -> Result<(Localpart, ServerName), MatrixIdError> {
    let Some(rest) = input.strip_prefix(sigil) else {
        return Err(MatrixIdError::MissingSigil {
            kind,
            input: input.to_owned(),
            sigil,
        });
    };
    let Some((localpart, server)) = rest.split_once(':') else {
        return Err(MatrixIdError::MissingServer {
            kind,
            input: input.to_owned(),
            sigil,
        });
    };
    let localpart = Localpart::parse(localpart).map_err(|reason| MatrixIdError::Localpart {
        kind,
        input: input.to_owned(),
        reason,
    })?;
    let server = ServerName::parse(server).map_err(|reason| MatrixIdError::Server {
        kind,
        input: input.to_owned(),
        reason,
    })?;
    Ok((localpart, server))
}

impl UserId {
    /// The sigil that starts a user ID.
    ///
    /// Example: `@` in `@acme/agent/pm:bureau.local`.
    pub const SIGIL: char = '@';

    /// Builds a user ID from already validated parts (always valid).
    ///
    /// Example: (`acme/agent/pm`, `bureau.local`) → `@acme/agent/pm:bureau.local`.
    ///
    /// ```
    /// use bureau::naming::{Localpart, ServerName, UserId};
    ///
    /// let pm = UserId::new(Localpart::parse("acme/agent/pm")?, ServerName::parse("bureau.local")?);
    /// assert_eq!(pm.to_string(), "@acme/agent/pm:bureau.local");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(localpart: Localpart, server: ServerName) -> Self {
        Self { localpart, server }
    }

    /// Parses `@<localpart>:<server>`, splitting on the first `:`.
    ///
    /// Example: `"@acme/agent/pm:bureau.local:8448"` → localpart `acme/agent/pm`, server
    /// `bureau.local:8448`; `"@Acme/pm:bureau.local"` → `Err(user ID "@Acme/pm:bureau.local":
    /// localpart "Acme/pm": character 'A' at byte 0 is not allowed; …)`.
    ///
    /// ```
    /// use bureau::naming::UserId;
    ///
    /// let pm = UserId::parse("@acme/agent/pm:bureau.local:8448")?;
    /// assert_eq!(pm.server().port(), Some(8448));
    /// assert!(UserId::parse("@Acme/pm:bureau.local").is_err());
    /// # Ok::<(), bureau::naming::MatrixIdError>(())
    /// ```
    pub fn parse(input: &str) -> Result<Self, MatrixIdError> {
        let (localpart, server) = parse_id(input, "user ID", Self::SIGIL)?;
        Ok(Self { localpart, server })
    }

    /// The principal's localpart.
    ///
    /// Example: `@acme/agent/pm:bureau.local` → `acme/agent/pm`.
    ///
    /// ```
    /// # use bureau::naming::UserId;
    /// assert_eq!(UserId::parse("@acme/agent/pm:bureau.local")?.localpart().as_str(), "acme/agent/pm");
    /// # Ok::<(), bureau::naming::MatrixIdError>(())
    /// ```
    pub fn localpart(&self) -> &Localpart {
        &self.localpart
    }

    /// The homeserver's name.
    ///
    /// Example: `@acme/agent/pm:bureau.local` → `bureau.local`.
    ///
    /// ```
    /// # use bureau::naming::UserId;
    /// assert_eq!(UserId::parse("@acme/agent/pm:bureau.local")?.server().as_str(), "bureau.local");
    /// # Ok::<(), bureau::naming::MatrixIdError>(())
    /// ```
    pub fn server(&self) -> &ServerName {
        &self.server
    }

    /// The principal's room: the same localpart and server with `#` instead of `@`.
    ///
    /// Example: `@acme/fleet/prod/machine/box1:bureau.local` →
    /// `#acme/fleet/prod/machine/box1:bureau.local`.
    ///
    /// ```
    /// # use bureau::naming::UserId;
    /// let machine = UserId::parse("@acme/fleet/prod/machine/box1:bureau.local")?;
    /// assert_eq!(machine.room_alias().to_string(), "#acme/fleet/prod/machine/box1:bureau.local");
    /// # Ok::<(), bureau::naming::MatrixIdError>(())
    /// ```
    pub fn room_alias(&self) -> RoomAlias {
        RoomAlias::new(self.localpart.clone(), self.server.clone())
    }
}

impl RoomAlias {
    /// The sigil that starts a room alias.
    ///
    /// Example: `#` in `#acme/agent/pm:bureau.local`.
    pub const SIGIL: char = '#';

    /// Builds a room alias from already validated parts (always valid).
    ///
    /// Example: (`acme/agent/pm`, `bureau.local`) → `#acme/agent/pm:bureau.local`.
    ///
    /// ```
    /// use bureau::naming::{Localpart, RoomAlias, ServerName};
    ///
    /// let room = RoomAlias::new(Localpart::parse("acme/agent/pm")?, ServerName::parse("bureau.local")?);
    /// assert_eq!(room.to_string(), "#acme/agent/pm:bureau.local");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(localpart: Localpart, server: ServerName) -> Self {
        Self { localpart, server }
    }

    /// Parses `#<localpart>:<server>`, splitting on the first `:`.
    ///
    /// Example: `"#acme/agent/pm:bureau.local"` → `Ok`; `"@acme/agent/pm:bureau.local"` →
    /// `Err(room alias "@acme/agent/pm:bureau.local": must start with '#' …)`.
    ///
    /// ```
    /// use bureau::naming::RoomAlias;
    ///
    /// assert!(RoomAlias::parse("#acme/agent/pm:bureau.local").is_ok());
    /// assert!(RoomAlias::parse("@acme/agent/pm:bureau.local").is_err());
    /// ```
    pub fn parse(input: &str) -> Result<Self, MatrixIdError> {
        let (localpart, server) = parse_id(input, "room alias", Self::SIGIL)?;
        Ok(Self { localpart, server })
    }

    /// The principal's localpart.
    ///
    /// Example: `#acme/agent/pm:bureau.local` → `acme/agent/pm`.
    ///
    /// ```
    /// # use bureau::naming::RoomAlias;
    /// assert_eq!(RoomAlias::parse("#acme/agent/pm:bureau.local")?.localpart().as_str(), "acme/agent/pm");
    /// # Ok::<(), bureau::naming::MatrixIdError>(())
    /// ```
    pub fn localpart(&self) -> &Localpart {
        &self.localpart
    }

    /// The homeserver's name.
    ///
    /// Example: `#acme/agent/pm:bureau.local` → `bureau.local`.
    ///
    /// ```
    /// # use bureau::naming::RoomAlias;
    /// assert_eq!(RoomAlias::parse("#acme/agent/pm:bureau.local")?.server().as_str(), "bureau.local");
    /// # Ok::<(), bureau::naming::MatrixIdError>(())
    /// ```
    pub fn server(&self) -> &ServerName {
        &self.server
    }
}

impl fmt::Display for UserId {
    /// Example: `@acme/agent/pm:bureau.local` → `@acme/agent/pm:bureau.local`.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{}{}:{}",
            Self::SIGIL,
            self.localpart,
            self.server
        )
    }
}

impl fmt::Display for RoomAlias {
    /// Example: `#acme/agent/pm:bureau.local` → `#acme/agent/pm:bureau.local`.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{}{}:{}",
            Self::SIGIL,
            self.localpart,
            self.server
        )
    }
}

impl FromStr for UserId {
    type Err = MatrixIdError;

    /// Same as [`UserId::parse`]. Example: `"@acme/pm:bureau.local".parse::<UserId>()` → `Ok`.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        Self::parse(input)
    }
}

impl FromStr for RoomAlias {
    type Err = MatrixIdError;

    /// Same as [`RoomAlias::parse`]. Example: `"#acme/pm:bureau.local".parse::<RoomAlias>()` →
    /// `Ok`.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        Self::parse(input)
    }
}

serde_as_validated_string!(UserId);
serde_as_validated_string!(RoomAlias);

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::naming::strategies::{valid_localpart, valid_server_name};

    #[test]
    fn user_id_parses_and_displays_unchanged() {
        let input = "@acme/fleet/prod/agent/pm:bureau.local";
        let user_id = UserId::parse(input).unwrap();
        assert_eq!(user_id.localpart().as_str(), "acme/fleet/prod/agent/pm");
        assert_eq!(user_id.server().as_str(), "bureau.local");
        assert_eq!(user_id.to_string(), input);
        assert_eq!(input.parse::<UserId>().unwrap(), user_id);
    }

    #[test]
    fn splits_on_the_first_colon_so_ports_stay_with_the_server() {
        let user_id = UserId::parse("@acme/pm:bureau.local:8448").unwrap();
        assert_eq!(user_id.localpart().as_str(), "acme/pm");
        assert_eq!(user_id.server().as_str(), "bureau.local:8448");
        let user_id = UserId::parse("@acme/pm:[::1]:8448").unwrap();
        assert_eq!(user_id.server().host(), "[::1]");
        assert_eq!(user_id.to_string(), "@acme/pm:[::1]:8448");
    }

    #[test]
    fn room_alias_is_the_user_id_with_a_hash() {
        let machine = UserId::parse("@acme/fleet/prod/machine/box1:bureau.local").unwrap();
        let room = machine.room_alias();
        assert_eq!(
            room.to_string(),
            "#acme/fleet/prod/machine/box1:bureau.local"
        );
        assert_eq!(room.localpart(), machine.localpart());
        assert_eq!(room.server(), machine.server());
        assert_eq!(
            RoomAlias::parse("#acme/fleet/prod/machine/box1:bureau.local").unwrap(),
            room
        );
        assert_eq!(
            "#acme/pm:bureau.local".parse::<RoomAlias>().unwrap(),
            RoomAlias::new(
                Localpart::parse("acme/pm").unwrap(),
                ServerName::parse("bureau.local").unwrap()
            )
        );
    }

    #[test]
    fn rejects_a_missing_or_wrong_sigil() {
        assert_eq!(
            UserId::parse("acme/pm:bureau.local"),
            Err(MatrixIdError::MissingSigil {
                kind: "user ID",
                input: "acme/pm:bureau.local".into(),
                sigil: '@',
            })
        );
        let message = UserId::parse("#acme/pm:bureau.local")
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with("user ID \"#acme/pm:bureau.local\""),
            "{message}"
        );
        assert!(message.contains("must start with '@'"), "{message}");
        let message = RoomAlias::parse("@acme/pm:bureau.local")
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with("room alias \"@acme/pm:bureau.local\""),
            "{message}"
        );
        assert!(message.contains("must start with '#'"), "{message}");
        assert!(UserId::parse("").is_err());
    }

    #[test]
    fn rejects_a_missing_server() {
        assert_eq!(
            UserId::parse("@acme/pm"),
            Err(MatrixIdError::MissingServer {
                kind: "user ID",
                input: "@acme/pm".into(),
                sigil: '@',
            })
        );
        let message = UserId::parse("@acme/pm").unwrap_err().to_string();
        assert!(
            message.contains("no ':' before the server name"),
            "{message}"
        );
    }

    #[test]
    fn localpart_errors_name_the_id_and_the_segment() {
        let error = UserId::parse("@acme/../x:bureau.local").unwrap_err();
        assert!(matches!(
            &error,
            MatrixIdError::Localpart {
                reason: NameError::TraversalSegment { .. },
                ..
            }
        ));
        let message = error.to_string();
        assert!(
            message.contains("user ID \"@acme/../x:bureau.local\""),
            "{message}"
        );
        assert!(message.contains("\"..\"") && message.contains("path traversal"));

        let message = UserId::parse("@:bureau.local").unwrap_err().to_string();
        assert!(message.contains("is empty"), "{message}");
        let message = RoomAlias::parse("#Acme:bureau.local")
            .unwrap_err()
            .to_string();
        assert!(message.contains("'A' at byte 0"), "{message}");
    }

    #[test]
    fn server_errors_name_the_id_and_the_problem() {
        let error = UserId::parse("@acme/pm:bureau.local:0").unwrap_err();
        assert!(matches!(
            &error,
            MatrixIdError::Server {
                reason: ServerNameError::InvalidPort { .. },
                ..
            }
        ));
        let message = error.to_string();
        assert!(message.contains("\"@acme/pm:bureau.local:0\""), "{message}");
        assert!(message.contains("port \"0\""), "{message}");
        assert!(UserId::parse("@acme/pm:").is_err());
    }

    #[test]
    fn serde_round_trips_and_validates() {
        let user_id = UserId::parse("@acme/pm:bureau.local").unwrap();
        let json = serde_json::to_string(&user_id).unwrap();
        assert_eq!(json, "\"@acme/pm:bureau.local\"");
        assert_eq!(serde_json::from_str::<UserId>(&json).unwrap(), user_id);
        assert!(serde_json::from_str::<UserId>("\"@acme/../pm:bureau.local\"").is_err());

        let room = user_id.room_alias();
        let json = serde_json::to_string(&room).unwrap();
        assert_eq!(json, "\"#acme/pm:bureau.local\"");
        assert_eq!(serde_json::from_str::<RoomAlias>(&json).unwrap(), room);
        assert!(serde_json::from_str::<RoomAlias>("\"#acme/pm\"").is_err());
    }

    proptest! {
        #[test]
        fn valid_ids_round_trip_through_display(
            localpart in valid_localpart(),
            server in valid_server_name(),
        ) {
            let text = format!("@{localpart}:{server}");
            let user_id = UserId::parse(&text).unwrap();
            prop_assert_eq!(user_id.localpart().as_str(), localpart.as_str());
            prop_assert_eq!(user_id.server().as_str(), server.as_str());
            prop_assert_eq!(user_id.to_string(), text.clone());
            prop_assert_eq!(UserId::parse(&user_id.to_string()).unwrap(), user_id.clone());

            let room = user_id.room_alias();
            prop_assert_eq!(room.to_string(), format!("#{}", &text[1..]));
            prop_assert_eq!(RoomAlias::parse(&room.to_string()).unwrap(), room);
        }

        #[test]
        fn parse_never_panics(input in any::<String>()) {
            if let Ok(user_id) = UserId::parse(&input) {
                prop_assert_eq!(user_id.to_string(), input.clone());
            }
            if let Ok(room) = RoomAlias::parse(&input) {
                prop_assert_eq!(room.to_string(), input);
            }
        }

        #[test]
        fn parse_never_panics_on_near_valid_input(input in "[@#][a-zA-Z0-9./:\\[\\]_=-]{0,40}") {
            if let Ok(user_id) = UserId::parse(&input) {
                prop_assert_eq!(user_id.to_string(), input.clone());
            }
            if let Ok(room) = RoomAlias::parse(&input) {
                prop_assert_eq!(room.to_string(), input);
            }
        }
    }
}
