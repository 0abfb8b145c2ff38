//! The Matrix client: Bureau's control plane speaks only the standard client-server API (plus
//! Synapse's shared-secret registration for bootstrap), through ruma's request and response
//! types over hyper-util and rustls.
//!
//! Invariants: the access token lives in a [`Secret`](crate::secret::Secret) and never appears in
//! an error, a log line or `Debug` output; errors name the homeserver URL, the method and path,
//! and say what to do; room IDs of room version 12 (`!opaque`) and older (`!local:server`) both
//! work.
//!
//! Modules: `client` (connection, `send`), `api` (the calls), `register`, `sync` (the resumable
//! stream with backoff), `session` (the saved login), `error`.

pub mod api;
pub mod client;
pub mod error;
pub mod register;
pub mod session;
pub mod setup;
pub mod sync;

pub use api::RoomOptions;
pub use client::{Client, ConnectOptions, parse_room_id, parse_user_id};
pub use error::MatrixError;
pub use session::{Session, SessionError, default_session_path};
pub use sync::{Backoff, SyncBatch, SyncStream};
