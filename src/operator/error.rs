//! The operator commands' error: what failed, on which account, room or template, and what to
//! do. Never a password, an access token or a credential value.

use crate::matrix::MatrixError;

/// Why an operator command failed.
///
/// Example: `credential provision` for a machine that never booted →
/// `machine acme/fleet/prod/machine/box1 has no key yet (no m.bureau.machine_key event with
/// state key "acme/fleet/prod/machine/box1" in #acme/fleet/prod/machine:bureau.local)`, with a
/// hint that the machine's launcher publishes it on first boot.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// The Matrix client has no session.
    ///
    /// Example: → `the Matrix client is not logged in`, hint `bureau login`.
    #[error(
        "the Matrix client is not logged in\nHint: log in first: `bureau login --homeserver URL \
         --user NAME --password-stdin`"
    )]
    NotLoggedIn,

    /// A Matrix call failed; `doing` says what it was for.
    ///
    /// Example: → `inviting @acme/fleet/prod/machine/box1:bureau.local to
    /// #acme/template:bureau.local: POST /_matrix/… refused by …: 403 M_FORBIDDEN: …`.
    #[error("{doing}: {source}")]
    Matrix {
        /// What the call was for, naming the account, room or event.
        doing: String,
        /// The client's error (names URL, method and path; never the token).
        source: Box<MatrixError>,
    },

    /// An account that must be new already exists.
    ///
    /// Example: → `account @acme/fleet/prod/machine/box1:bureau.local already exists; …`.
    #[error("account {user_id} already exists; {hint}")]
    AccountExists {
        /// The account.
        user_id: String,
        /// What to do instead.
        hint: &'static str,
    },

    /// A room Bureau's setup creates is missing.
    ///
    /// Example: → `room #acme/template:bureau.local does not exist\nHint: run `bureau matrix
    /// setup acme --fleet prod` first`.
    #[error("room {alias} does not exist\nHint: {hint}")]
    RoomMissing {
        /// The room's alias.
        alias: String,
        /// What creates it.
        hint: String,
    },

    /// The machine has not published its age key yet.
    #[error(
        "machine {machine} has no key yet (no m.bureau.machine_key event with state key \
         {machine:?} in {room})\nHint: the machine's launcher publishes its key on first boot; \
         start `bureau-launcher` on the machine (with the bootstrap file from `bureau machine \
         provision`), then run this again"
    )]
    NoMachineKey {
        /// The machine's localpart.
        machine: String,
        /// The fleet machine room's alias.
        room: String,
    },

    /// A state event the operator reads does not parse or validate.
    ///
    /// Example: → `m.bureau.machine_config in #acme/fleet/prod/machine/box1:bureau.local: …
    /// (fix it with `bureau matrix state set`)`.
    #[error("{event} in {room}: {reason}\nHint: fix it with `bureau matrix state set`")]
    BadEvent {
        /// The event type (and state key).
        event: String,
        /// The room.
        room: String,
        /// What is wrong with it.
        reason: String,
    },

    /// Input that cannot be used: a bad name, credential file, template, grant, payload.
    ///
    /// Example: → `credential name "openai-key" is not a credential name; …`.
    #[error("{0}")]
    Invalid(String),

    /// A file could not be read or written.
    ///
    /// Example: → `writing the bootstrap file ./bootstrap-box1.json: File exists (os error
    /// 17)`.
    #[error("{doing} {path}: {reason}")]
    Io {
        /// What the file was for.
        doing: &'static str,
        /// The file.
        path: String,
        /// The system's error.
        reason: String,
    },

    /// Sealing a credential bundle failed.
    #[error("sealing the credentials for {principal}: {reason}")]
    Seal {
        /// Whose bundle.
        principal: String,
        /// The sealing error (names recipients, never values).
        reason: String,
    },
}

/// Adds what a Matrix call was for to its error.
pub(super) trait MatrixContext<T> {
    /// Example: `client.join(room).await.doing(|| format!("joining {room}"))`.
    fn doing(self, what: impl FnOnce() -> String) -> Result<T, OperatorError>;
}

impl<T> MatrixContext<T> for Result<T, MatrixError> {
    fn doing(self, what: impl FnOnce() -> String) -> Result<T, OperatorError> {
        self.map_err(|source| OperatorError::Matrix {
            doing: what(),
            source: Box::new(source),
        })
    }
}
