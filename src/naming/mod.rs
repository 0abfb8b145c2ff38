//! Naming: principals' hierarchical localparts and everything derived from them.
//!
//! Invariant: every name that reaches a socket path, a Matrix ID or a permission check has passed
//! through this module's parser. A localpart such as `acme/fleet/prod/agent/pm` maps one-to-one
//! to
//!
//! ```text
//! @acme/fleet/prod/agent/pm:bureau.local    user ID            (UserId)
//! #acme/fleet/prod/agent/pm:bureau.local    the principal's room (RoomAlias)
//! <run-dir>/acme/fleet/prod/agent/pm.proxy.sock   credential proxy (proxy_socket_path)
//! <run-dir>/acme/fleet/prod/agent/pm.admin.sock   admin socket     (admin_socket_path)
//! ```
//!
//! and is granted permissions by globs such as `acme/fleet/prod/agent/**` ([`Glob`]) or
//! `acme/fleet/*/agent/**:bureau.local` ([`UserIdPattern`]).
//!
//! One concern per file: `localpart` (the rules), `server` (Matrix server names), `ids` (user IDs
//! and room aliases), `socket` (socket paths and the length bound), `glob` (localpart globs),
//! `pattern` (user-ID patterns). Validated types are stored as the text they were parsed from,
//! serialize as that text, and re-validate when deserialized.

/// Implements `Serialize` (as the `Display` text) and `Deserialize` (through `parse`, so the
/// validator runs) for a validated string type.
macro_rules! serde_as_validated_string {
    ($type:ty) => {
        impl serde::Serialize for $type {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $type {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <String as serde::Deserialize>::deserialize(deserializer)?;
                Self::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

mod glob;
mod ids;
mod localpart;
mod pattern;
#[doc(hidden)]
pub mod reference;
mod server;
mod socket;
#[cfg(test)]
mod strategies;

pub use glob::{Glob, GlobError, glob_matches};
pub use ids::{MatrixIdError, RoomAlias, UserId};
pub use localpart::{Localpart, NameError};
pub use pattern::{ServerGlobError, UserIdPattern, UserIdPatternError, user_id_pattern_matches};
pub use server::{ServerName, ServerNameError};
pub use socket::{
    ADMIN_SOCKET_SUFFIX, DEFAULT_RUN_DIR, PROXY_SOCKET_SUFFIX, SUN_PATH_LEN, admin_socket_path,
    max_localpart_len, proxy_socket_path,
};
