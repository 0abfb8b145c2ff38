//! The proxy primitive: one `bureau-proxy` per principal, serving HTTP on a Unix socket that is
//! mounted into the principal's sandbox as `/run/bureau/proxy.sock`. It adds the principal's
//! credentials to upstream requests, so the agent uses a secret without ever holding it; a
//! compromised sandbox can use only what its proxy holds, within the service rules and rate
//! limits the daemon set.
//!
//! Invariants: credentials live only in [`Secret`](crate::secret::Secret)s in this process
//! (mlocked, undumpable, zeroed); no response, error or log line carries one; the admin socket
//! is never mounted into a sandbox; policy is evaluated by the daemon and enforced here.
//!
//! Modules: `payload` (stdin: identity, credentials, grants), `service` (upstream, injection,
//! rules), `ratelimit`, `state` (live, replaceable configuration; grant matching; JSON errors),
//! `forward` (the streaming reverse proxy), `upstream` (connection pools), `matrix` (`/v1/matrix/*`), `server` (routers),
//! `access_log` (the batched request log).

pub mod access_log;
pub mod forward;
pub mod matrix;
pub mod payload;
pub mod ratelimit;
pub mod server;
pub mod service;
pub mod state;
pub mod upstream;

pub use payload::{Payload, PayloadFormat};
pub use server::{AppState, Shared, admin_router, agent_router};
pub use state::ProxyState;
