//! Bureau: infrastructure for running organizations that include AI agents.
//!
//! The library holds every primitive and protocol so each can be tested without the binary;
//! `applets/` is a thin layer that parses arguments and wires these parts together.
//! `ARCHITECTURE.md` at the repository root is the code map.

pub mod bridge;
pub mod homeserver;
pub mod install;
pub mod logging;
pub mod matrix;
pub mod naming;
pub mod proxy;
pub mod proxy_call;
pub mod sandbox;
pub mod schema;
pub mod secret;
