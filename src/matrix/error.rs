//! Errors of the Matrix client: each says what failed, against which homeserver, and what to do.

use std::time::Duration;

/// A failed Matrix call.
#[derive(Debug, thiserror::Error)]
pub enum MatrixError {
    /// The homeserver could not be reached at all.
    #[error(
        "cannot reach the homeserver at {url}: {reason}\nHint: check the URL, that the homeserver \
         is running, and the network (`bureau matrix doctor` checks each)"
    )]
    Unreachable { url: String, reason: String },
    /// The access token is unknown, expired or logged out.
    #[error(
        "the homeserver at {url} does not accept this session's access token ({errcode}: \
         {message})\nHint: log in again with `bureau login`"
    )]
    UnknownToken {
        url: String,
        errcode: String,
        message: String,
    },
    /// Rate limited; `retry_after` is what the server asked for, if anything.
    #[error("rate limited by {url} ({message}); retry after {retry_after:?}")]
    LimitExceeded {
        url: String,
        message: String,
        retry_after: Option<Duration>,
    },
    /// The server refused the request with a Matrix error.
    #[error("{method} {path} refused by {url}: {status} {errcode}: {message}")]
    Server {
        url: String,
        method: String,
        path: String,
        status: u16,
        errcode: String,
        message: String,
    },
    /// The response could not be understood.
    #[error("{method} {path} at {url}: unexpected response: {reason}")]
    BadResponse {
        url: String,
        method: String,
        path: String,
        reason: String,
    },
    /// A value we were asked to send or parse is invalid (a room ID, a user ID, …).
    #[error("{0}")]
    Invalid(String),
    /// The request timed out.
    #[error("{method} {path} at {url} timed out after {after:?}")]
    Timeout {
        url: String,
        method: String,
        path: String,
        after: Duration,
    },
}

impl MatrixError {
    /// The Matrix `errcode`, when the server sent one (`M_FORBIDDEN`, …).
    pub fn errcode(&self) -> Option<&str> {
        match self {
            MatrixError::UnknownToken { errcode, .. } | MatrixError::Server { errcode, .. } => {
                Some(errcode)
            }
            MatrixError::LimitExceeded { .. } => Some("M_LIMIT_EXCEEDED"),
            _ => None,
        }
    }

    /// Whether retrying the same request later may succeed (network trouble, rate limits,
    /// server errors), as opposed to a refusal that will not change.
    pub fn is_transient(&self) -> bool {
        match self {
            MatrixError::Unreachable { .. }
            | MatrixError::LimitExceeded { .. }
            | MatrixError::Timeout { .. } => true,
            MatrixError::Server { status, .. } => *status >= 500,
            _ => false,
        }
    }
}
