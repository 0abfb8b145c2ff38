//! Bureau: infrastructure for running organizations that include AI agents.
//!
//! The library holds every primitive and protocol so each can be tested without the binary;
//! `applets/` is a thin layer that parses arguments and wires these parts together.
//! `ARCHITECTURE.md` at the repository root is the code map.

pub mod bridge;
pub mod daemon;
pub mod demo;
pub mod devstack;
pub mod homeserver;
pub mod install;
pub mod launcher;
pub mod logging;
pub mod machine;
pub mod matrix;
pub mod naming;
pub mod operator;
pub mod proxy;
pub mod proxy_call;
pub mod sandbox;
pub mod schema;
pub mod sealed;
pub mod secret;
