//! Template references: how an assignment or a template names a template.
//!
//! Three forms, told apart by their sigil and their `:`s:
//!
//! ```text
//! agent-base                              the fleet's default template room
//! acme/template:agent-base                the room #acme/template on the fleet's server
//! #acme/template:bureau.local:agent-base  the room #acme/template:bureau.local (any server)
//! ```
//!
//! Invariant: the template name (the template event's state key) and the room are validated with
//! the naming rules, so a reference never smuggles a traversal or an unknown character into a
//! lookup. In the `#` form the name is what follows the **last** `:`, so a server with a port is
//! written `#acme/template:bureau.local:8448:agent-base`. Which room "default" and "the fleet's
//! server" mean is up to whoever resolves the reference; two spellings of one template are
//! different references.

use std::fmt;
use std::str::FromStr;

use crate::naming::{Localpart, MatrixIdError, NameError, RoomAlias};

/// A validated reference to a template.
///
/// Example: `"#acme/template:bureau.local:agent-base"` → room `#acme/template:bureau.local`,
/// name `agent-base`; displayed and serialized as the same text.
///
/// ```
/// use bureau::schema::{TemplateRef, TemplateRoom};
///
/// let reference = TemplateRef::parse("#acme/template:bureau.local:agent-base")?;
/// assert_eq!(reference.name().as_str(), "agent-base");
/// assert!(matches!(reference.room(), TemplateRoom::Alias(alias) if alias.to_string() == "#acme/template:bureau.local"));
/// assert_eq!(reference.to_string(), "#acme/template:bureau.local:agent-base");
/// assert_eq!(TemplateRef::parse("agent-base")?.room(), &TemplateRoom::Default);
/// # Ok::<(), bureau::schema::TemplateRefError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TemplateRef {
    room: TemplateRoom,
    name: Localpart,
}

/// The room a [`TemplateRef`] looks in.
///
/// Example: `agent-base` → `Default`; `acme/template:agent-base` → `Local(acme/template)`;
/// `#acme/template:bureau.local:agent-base` → `Alias(#acme/template:bureau.local)`.
///
/// ```
/// use bureau::schema::{TemplateRef, TemplateRoom};
///
/// let reference = TemplateRef::parse("acme/template:agent-base")?;
/// assert!(matches!(reference.room(), TemplateRoom::Local(room) if room.as_str() == "acme/template"));
/// # Ok::<(), bureau::schema::TemplateRefError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TemplateRoom {
    /// The fleet's default template room.
    Default,
    /// A room alias localpart on the fleet's own server.
    Local(Localpart),
    /// A fully qualified room alias.
    Alias(RoomAlias),
}

/// Why a string is not a template reference. Every message names the whole reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateRefError {
    /// The reference is empty.
    ///
    /// Example: `""` → `template reference "": is empty; name a template such as agent-base or
    /// #acme/template:bureau.local:agent-base`.
    #[error(
        "template reference \"\": is empty; name a template such as agent-base or \
         #acme/template:bureau.local:agent-base"
    )]
    Empty,

    /// A room but no template name.
    ///
    /// Example: `"#acme/template:bureau.local"` → `template reference
    /// "#acme/template:bureau.local": names a room but no template; write the template's name
    /// after the last ':', like #acme/template:bureau.local:agent-base`.
    #[error(
        "template reference {input:?}: names a room but no template; write the template's name \
         after the last ':', like #acme/template:bureau.local:agent-base"
    )]
    MissingName {
        /// The whole reference.
        input: String,
    },

    /// More than one `:` without the `#` that introduces a server.
    ///
    /// Example: `"acme/template:bureau.local:agent-base"` → `template reference
    /// "acme/template:bureau.local:agent-base": has more than one ':'; a room on a named server
    /// starts with '#', like #acme/template:bureau.local:agent-base`.
    #[error(
        "template reference {input:?}: has more than one ':'; a room on a named server starts \
         with '#', like #acme/template:bureau.local:agent-base"
    )]
    ServerWithoutSigil {
        /// The whole reference.
        input: String,
    },

    /// The template name is not a valid name.
    ///
    /// Example: `"Agent"` → `template reference "Agent": template name: localpart "Agent":
    /// character 'A' at byte 0 is not allowed; …`.
    #[error("template reference {input:?}: template name: {reason}")]
    Name {
        /// The whole reference.
        input: String,
        /// What is wrong with the name.
        reason: NameError,
    },

    /// The room (without server) is not a valid localpart.
    ///
    /// Example: `"acme/../t:base"` → `template reference "acme/../t:base": room: localpart
    /// "acme/../t": segment ".." is a path traversal segment; …`.
    #[error("template reference {input:?}: room: {reason}")]
    Room {
        /// The whole reference.
        input: String,
        /// What is wrong with the room's localpart.
        reason: NameError,
    },

    /// The room alias is not valid.
    ///
    /// Example: `"#acme/t:bureau_local:base"` → `template reference "#acme/t:bureau_local:base":
    /// room alias "#acme/t:bureau_local": server name "bureau_local": …`.
    #[error("template reference {input:?}: {reason}")]
    Alias {
        /// The whole reference.
        input: String,
        /// What is wrong with the alias (boxed: it is large and rare).
        reason: Box<MatrixIdError>,
    },
}

impl TemplateRef {
    /// Parses one of the three forms (see the module documentation).
    ///
    /// Example: `"acme/template:agent-base"` → room `Local(acme/template)`, name `agent-base`;
    /// `"#acme/template:bureau.local"` → `Err(… names a room but no template; …)`.
    ///
    /// ```
    /// use bureau::schema::TemplateRef;
    ///
    /// assert_eq!(TemplateRef::parse("acme/template:agent-base")?.name().as_str(), "agent-base");
    /// assert!(TemplateRef::parse("#acme/template:bureau.local").is_err());
    /// # Ok::<(), bureau::schema::TemplateRefError>(())
    /// ```
    pub fn parse(input: &str) -> Result<Self, TemplateRefError> {
        if input.is_empty() {
            return Err(TemplateRefError::Empty);
        }
        let (room, name) = if input.starts_with(RoomAlias::SIGIL) {
            // `#room:server:name`: the alias needs its own ':', so two at least.
            let (alias, name) = match input.rsplit_once(':') {
                Some((alias, name)) if alias.contains(':') && !name.is_empty() => (alias, name),
                _ => {
                    return Err(TemplateRefError::MissingName {
                        input: input.to_owned(),
                    });
                }
            };
            let alias = RoomAlias::parse(alias).map_err(|reason| TemplateRefError::Alias {
                input: input.to_owned(),
                reason: Box::new(reason),
            })?;
            (TemplateRoom::Alias(alias), name)
        } else if let Some((room, name)) = input.split_once(':') {
            if name.contains(':') {
                return Err(TemplateRefError::ServerWithoutSigil {
                    input: input.to_owned(),
                });
            }
            if name.is_empty() {
                return Err(TemplateRefError::MissingName {
                    input: input.to_owned(),
                });
            }
            let room = Localpart::parse(room).map_err(|reason| TemplateRefError::Room {
                input: input.to_owned(),
                reason,
            })?;
            (TemplateRoom::Local(room), name)
        } else {
            (TemplateRoom::Default, input)
        };
        let name = Localpart::parse(name).map_err(|reason| TemplateRefError::Name {
            input: input.to_owned(),
            reason,
        })?;
        Ok(Self { room, name })
    }

    /// A reference to `name` in the fleet's default template room.
    ///
    /// Example: `agent-base` → the reference `agent-base`.
    ///
    /// ```
    /// use bureau::naming::Localpart;
    /// use bureau::schema::TemplateRef;
    ///
    /// let reference = TemplateRef::named(Localpart::parse("agent-base")?);
    /// assert_eq!(reference, TemplateRef::parse("agent-base")?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn named(name: Localpart) -> Self {
        Self {
            room: TemplateRoom::Default,
            name,
        }
    }

    /// The room to look in.
    ///
    /// Example: `agent-base` → [`TemplateRoom::Default`].
    ///
    /// ```
    /// # use bureau::schema::{TemplateRef, TemplateRoom};
    /// assert_eq!(TemplateRef::parse("agent-base")?.room(), &TemplateRoom::Default);
    /// # Ok::<(), bureau::schema::TemplateRefError>(())
    /// ```
    pub fn room(&self) -> &TemplateRoom {
        &self.room
    }

    /// The template's name: the state key of its `m.bureau.template` event.
    ///
    /// Example: `#acme/template:bureau.local:8448:agent-base` → `agent-base`.
    ///
    /// ```
    /// # use bureau::schema::TemplateRef;
    /// let reference = TemplateRef::parse("#acme/template:bureau.local:8448:agent-base")?;
    /// assert_eq!(reference.name().as_str(), "agent-base");
    /// # Ok::<(), bureau::schema::TemplateRefError>(())
    /// ```
    pub fn name(&self) -> &Localpart {
        &self.name
    }
}

impl fmt::Display for TemplateRef {
    /// Example: (`Local(acme/template)`, `agent-base`) → `acme/template:agent-base`.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.room {
            TemplateRoom::Default => write!(formatter, "{}", self.name),
            TemplateRoom::Local(room) => write!(formatter, "{room}:{}", self.name),
            TemplateRoom::Alias(alias) => write!(formatter, "{alias}:{}", self.name),
        }
    }
}

impl FromStr for TemplateRef {
    type Err = TemplateRefError;

    /// Same as [`TemplateRef::parse`]. Example: `"agent-base".parse::<TemplateRef>()` → `Ok`.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        Self::parse(input)
    }
}

impl serde::Serialize for TemplateRef {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for TemplateRef {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_text(input: &str) -> String {
        TemplateRef::parse(input).unwrap_err().to_string()
    }

    #[test]
    fn parses_the_three_forms_and_displays_them_back() {
        for text in [
            "agent-base",
            "agent/claude",
            "acme/template:agent-base",
            "#acme/template:bureau.local:agent-base",
            "#acme/template:bureau.local:8448:agent-base",
        ] {
            assert_eq!(TemplateRef::parse(text).unwrap().to_string(), text);
        }
        let qualified = TemplateRef::parse("#acme/template:bureau.local:8448:agent-base").unwrap();
        let TemplateRoom::Alias(alias) = qualified.room() else {
            panic!("expected an alias room");
        };
        assert_eq!(alias.server().port(), Some(8448));
        assert_eq!(qualified.name().as_str(), "agent-base");
    }

    #[test]
    fn serializes_as_its_text() {
        let reference: TemplateRef = serde_json::from_str("\"acme/template:agent-base\"").unwrap();
        assert_eq!(
            serde_json::to_string(&reference).unwrap(),
            "\"acme/template:agent-base\""
        );
        let error = serde_json::from_str::<TemplateRef>("\"\"").unwrap_err();
        assert!(
            error
                .to_string()
                .contains("template reference \"\": is empty")
        );
    }

    #[test]
    fn refuses_an_empty_reference() {
        assert_eq!(
            error_text(""),
            "template reference \"\": is empty; name a template such as agent-base or \
             #acme/template:bureau.local:agent-base"
        );
    }

    #[test]
    fn refuses_a_room_without_a_template_name() {
        for input in [
            "#acme/template:bureau.local",
            "acme/template:",
            "#acme/t:x:",
        ] {
            assert_eq!(
                error_text(input),
                format!(
                    "template reference {input:?}: names a room but no template; write the \
                     template's name after the last ':', like \
                     #acme/template:bureau.local:agent-base"
                )
            );
        }
    }

    #[test]
    fn refuses_a_server_without_the_sigil() {
        assert_eq!(
            error_text("acme/template:bureau.local:agent-base"),
            "template reference \"acme/template:bureau.local:agent-base\": has more than one ':'; \
             a room on a named server starts with '#', like \
             #acme/template:bureau.local:agent-base"
        );
    }

    #[test]
    fn refuses_an_invalid_template_name() {
        let reason = Localpart::parse("Agent").unwrap_err();
        assert_eq!(
            error_text("Agent"),
            format!("template reference \"Agent\": template name: {reason}")
        );
        let reason = Localpart::parse("..").unwrap_err();
        assert_eq!(
            error_text("acme/template:.."),
            format!("template reference \"acme/template:..\": template name: {reason}")
        );
    }

    #[test]
    fn refuses_an_invalid_room() {
        let reason = Localpart::parse("acme/../t").unwrap_err();
        assert_eq!(
            error_text("acme/../t:base"),
            format!("template reference \"acme/../t:base\": room: {reason}")
        );
        let reason = RoomAlias::parse("#acme/t:bureau_local").unwrap_err();
        assert_eq!(
            error_text("#acme/t:bureau_local:base"),
            format!("template reference \"#acme/t:bureau_local:base\": {reason}")
        );
    }
}
