//! The launcher's wire contract (`launcher.sock`): one CBOR request, one CBOR response, per
//! connection. The client writes its request and shuts down its write half; the launcher
//! answers and closes.
//!
//! Invariant: nothing on this wire is a secret in clear. Credential bundles travel sealed
//! (age ciphertext); the launcher decrypts them itself and hands the values only to the
//! principal's proxy, over a pipe.

use std::path::Path;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::naming::Localpart;
use crate::proxy::payload::Grant;
use crate::schema::{Credentials, Template};

/// The largest request or response accepted (a template plus a payload fit easily).
pub const MAX_MESSAGE_BYTES: u64 = 4 * 1024 * 1024;

/// What the daemon (or an operator tool) asks the launcher.
///
/// Example (as JSON, for reading; the wire is CBOR): `{"action": "destroy-sandbox",
/// "principal": "acme/agent/pm", "force": false}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Request {
    /// The launcher's version, pid and machine.
    Status,
    /// Every sandbox the launcher knows, running or exited.
    ListSandboxes,
    /// Start a principal: its proxy, then its sandbox.
    CreateSandbox(Box<CreateSandbox>),
    /// Stop a principal's sandbox (SIGTERM, then SIGKILL after a grace period; at once with
    /// `force`) and its proxy, and forget it.
    DestroySandbox {
        /// The principal.
        principal: Localpart,
        /// Skip the grace period.
        #[serde(default)]
        force: bool,
    },
    /// Send a signal to a principal's sandbox (forwarded to its command).
    SignalSandbox {
        /// The principal.
        principal: Localpart,
        /// The signal number (e.g. 1 for SIGHUP).
        signal: i32,
    },
    /// Wait until a principal's sandbox exits; answers [`Response::Exited`].
    WaitSandbox {
        /// The principal.
        principal: Localpart,
    },
    /// Replace a running principal's `/run/bureau/payload.json` and send it SIGHUP.
    UpdatePayload {
        /// The principal.
        principal: Localpart,
        /// The payload as JSON text (an object).
        payload_json: String,
    },
    /// Decrypt a credential bundle and install it in the principal's running proxy (live
    /// rotation). Answers [`Response::KeyNames`]; the values never leave the launcher except to
    /// the proxy.
    DecryptCredentials {
        /// The principal.
        principal: Localpart,
        /// The sealed bundle.
        credentials: Credentials,
    },
    /// Replace the grants the principal's running proxy enforces (live: no restart). Answers
    /// [`Response::Ok`].
    UpdateGrants {
        /// The principal.
        principal: Localpart,
        /// Every grant it now has, expiry included.
        grants: Vec<Grant>,
    },
}

/// Everything the launcher needs to start one principal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateSandbox {
    /// The principal.
    pub principal: Localpart,
    /// Its template, already resolved (no `inherits`) and validated.
    pub template: Template,
    /// Its payload as JSON text (an object), delivered as `/run/bureau/payload.json`.
    pub payload_json: String,
    /// Its sealed credential bundle; `MATRIX_ACCESS_TOKEN` inside becomes the proxy's Matrix
    /// identity.
    #[serde(default)]
    pub credentials: Option<Credentials>,
    /// The grants its proxy enforces (later changes go live through
    /// [`Request::UpdateGrants`]).
    #[serde(default)]
    pub grants: Vec<Grant>,
    /// An opaque fingerprint of the desired state this sandbox was made from (grants aside);
    /// returned by `list-sandboxes` so a restarted daemon can tell "same" from "changed".
    pub config_hash: String,
}

/// A sandbox as the launcher sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxInfo {
    /// The principal.
    pub principal: Localpart,
    /// The sandbox's process on the host (`bureau-sandbox`, the parent of the principal's pid 1).
    pub pid: u32,
    /// The principal's proxy.
    pub proxy_pid: u32,
    /// [`CreateSandbox::config_hash`].
    pub config_hash: String,
    /// When it started, milliseconds since the Unix epoch.
    pub started_at_ms: u64,
    /// The exit status once it exited (see [`Response::Exited`]); `None` while running.
    #[serde(default)]
    pub exit_code: Option<i32>,
}

/// The launcher's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum Response {
    /// Done, nothing to report.
    Ok,
    /// [`Request::Status`].
    Status {
        /// The launcher's Bureau version.
        version: String,
        /// The launcher's pid.
        pid: u32,
        /// The machine's localpart.
        machine: String,
        /// How many sandboxes it knows.
        sandboxes: u32,
    },
    /// [`Request::ListSandboxes`].
    Sandboxes {
        /// The sandboxes, by principal.
        sandboxes: Vec<SandboxInfo>,
    },
    /// [`Request::CreateSandbox`]: it runs.
    Created {
        /// The new sandbox.
        sandbox: SandboxInfo,
    },
    /// [`Request::WaitSandbox`] / [`Request::DestroySandbox`]: it exited.
    Exited {
        /// The exit status: the command's own, 125 setup failed, 126 cannot execute, 127 not
        /// found, 128+n killed by signal n.
        exit_code: i32,
        /// The last lines of its output (when it failed).
        #[serde(default)]
        last_lines: Vec<String>,
    },
    /// [`Request::DecryptCredentials`]: the names now installed.
    KeyNames {
        /// Credential names (never values).
        key_names: Vec<String>,
    },
    /// The request failed; the message names what and says what to do.
    Error {
        /// Human-readable reason.
        message: String,
    },
}

/// Why a launcher exchange failed (not the launcher's own refusals: those are
/// [`Response::Error`]).
#[derive(Debug, thiserror::Error)]
pub enum IpcError {
    /// The socket could not be reached.
    #[error(
        "cannot reach the launcher at {socket}: {source}\nHint: is bureau-launcher running? \
         (`bureau-launcher --help`)"
    )]
    Connect {
        /// The socket path.
        socket: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Reading or writing failed mid-exchange.
    #[error("launcher exchange failed: {0}")]
    Io(#[from] std::io::Error),
    /// The bytes were not a message.
    #[error("launcher message is not valid CBOR for this Bureau version: {0}")]
    Decode(String),
    /// The message was too large.
    #[error("launcher message larger than {MAX_MESSAGE_BYTES} bytes")]
    TooLarge,
}

/// Encodes a message as CBOR.
pub fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, IpcError> {
    minicbor_serde::to_vec(message).map_err(|error| IpcError::Decode(error.to_string()))
}

/// Decodes a CBOR message.
pub fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, IpcError> {
    minicbor_serde::from_slice(bytes).map_err(|error| IpcError::Decode(error.to_string()))
}

/// Reads one whole message (until the peer shuts down its write half).
pub async fn read_message<R: AsyncRead + Unpin>(reader: &mut R) -> Result<Vec<u8>, IpcError> {
    let mut bytes = Vec::new();
    reader
        .take(MAX_MESSAGE_BYTES + 1)
        .read_to_end(&mut bytes)
        .await?;
    if bytes.len() as u64 > MAX_MESSAGE_BYTES {
        return Err(IpcError::TooLarge);
    }
    Ok(bytes)
}

/// Writes one whole message and shuts down the write half.
pub async fn write_message<W: AsyncWrite + Unpin>(
    writer: &mut W,
    bytes: &[u8],
) -> Result<(), IpcError> {
    writer.write_all(bytes).await?;
    writer.shutdown().await?;
    Ok(())
}

/// One exchange with the launcher at `socket`.
///
/// Example: `call(Path::new("/run/bureau/launcher.sock"), &Request::Status)` →
/// `Response::Status { … }`.
pub async fn call(socket: &Path, request: &Request) -> Result<Response, IpcError> {
    let mut stream = UnixStream::connect(socket)
        .await
        .map_err(|source| IpcError::Connect {
            socket: socket.display().to_string(),
            source,
        })?;
    write_message(&mut stream, &encode(request)?).await?;
    let bytes = read_message(&mut stream).await?;
    decode(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pm() -> Localpart {
        Localpart::parse("acme/agent/pm").unwrap()
    }

    #[test]
    fn requests_round_trip_through_cbor() {
        let requests = [
            Request::Status,
            Request::ListSandboxes,
            Request::DestroySandbox {
                principal: pm(),
                force: true,
            },
            Request::SignalSandbox {
                principal: pm(),
                signal: 1,
            },
            Request::UpdateGrants {
                principal: pm(),
                grants: vec![Grant {
                    actions: vec!["matrix/join".into()],
                    targets: vec!["#acme/**".into()],
                    expires_at: None,
                }],
            },
            Request::UpdatePayload {
                principal: pm(),
                payload_json: r#"{"task": "x"}"#.into(),
            },
            Request::CreateSandbox(Box::new(CreateSandbox {
                principal: pm(),
                template: Template::agent_base(),
                payload_json: "{}".into(),
                credentials: None,
                grants: vec![Grant {
                    actions: vec!["matrix/send".into()],
                    targets: vec![],
                    expires_at: Some(1_795_600_000_000),
                }],
                config_hash: "abc".into(),
            })),
        ];
        for request in requests {
            let decoded: Request = decode(&encode(&request).unwrap()).unwrap();
            assert_eq!(decoded, request);
        }
    }

    #[test]
    fn responses_round_trip_through_cbor() {
        let responses = [
            Response::Ok,
            Response::Exited {
                exit_code: 3,
                last_lines: vec!["boom".into()],
            },
            Response::Error {
                message: "no sandbox for acme/agent/pm".into(),
            },
            Response::Sandboxes {
                sandboxes: vec![SandboxInfo {
                    principal: pm(),
                    pid: 42,
                    proxy_pid: 41,
                    config_hash: "abc".into(),
                    started_at_ms: 1,
                    exit_code: None,
                }],
            },
        ];
        for response in responses {
            let decoded: Response = decode(&encode(&response).unwrap()).unwrap();
            assert_eq!(decoded, response);
        }
    }

    #[test]
    fn garbage_is_a_decode_error_not_a_panic() {
        assert!(matches!(
            decode::<Request>(b"\xff\x00garbage"),
            Err(IpcError::Decode(_))
        ));
    }
}
