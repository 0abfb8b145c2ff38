//! Outcomes: what happened to principals and the daemon, posted as `m.notice` messages in the
//! machine's config room.
//!
//! Invariant: every outcome message carries both a human `body` (so any Matrix client shows
//! what happened) and the structured [`Outcome`] under [`OUTCOME_FIELD`] (so tools need not
//! parse text). The body is always [`Outcome::body`] of the structured part.

use serde::{Deserialize, Serialize};

use crate::naming::Localpart;

/// The content field that carries the structured [`Outcome`].
///
/// Example: `{"msgtype": "m.notice", "body": "…", "m.bureau.outcome": {"kind": …}}`.
pub const OUTCOME_FIELD: &str = "m.bureau.outcome";

/// The message type of outcome messages (notices: bots do not reply to them).
///
/// Example: `{"msgtype": "m.notice", …}`.
pub const NOTICE_MSGTYPE: &str = "m.notice";

/// Something that happened on a machine, tagged by `kind`.
///
/// Example: `{"kind": "sandbox_exited", "principal": "acme/agent/pm", "exit_code": 3,
/// "last_lines": ["Traceback (most recent call last):", "ValueError: bad task"]}`.
///
/// ```
/// use bureau::naming::Localpart;
/// use bureau::schema::Outcome;
///
/// let exited = Outcome::SandboxExited {
///     principal: Localpart::parse("acme/agent/pm")?,
///     exit_code: 3,
///     last_lines: vec!["ValueError: bad task".into()],
/// };
/// assert_eq!(exited.body(), "acme/agent/pm exited with code 3; last output:\nValueError: bad task");
/// assert_eq!(serde_json::to_value(&exited)?["kind"], "sandbox_exited");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// A principal's sandbox started its command.
    ///
    /// Example: `{"kind": "principal_started", "principal": "acme/agent/pm", "pid": 4242}`.
    PrincipalStarted {
        /// The principal.
        principal: Localpart,
        /// The sandbox's process ID on the host.
        pid: u32,
    },
    /// A principal's sandbox exited.
    ///
    /// Example: `{"kind": "sandbox_exited", "principal": "acme/agent/pm", "exit_code": 137}`.
    SandboxExited {
        /// The principal.
        principal: Localpart,
        /// The exit status: the command's own, 125 setup failed, 126 cannot execute, 127 not
        /// found, 128+n killed by signal n.
        exit_code: i32,
        /// The last lines of its terminal output (on failure).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        last_lines: Vec<String>,
    },
    /// A principal could not be started.
    ///
    /// Example: `{"kind": "principal_start_failed", "principal": "acme/agent/pm", "reason":
    /// "template \"claude\" does not exist; …"}`.
    PrincipalStartFailed {
        /// The principal as written in the assignment (text: a malformed name is reported too).
        principal: String,
        /// Why, as the error message.
        reason: String,
    },
    /// A principal was stopped on purpose: removed from the machine's config, or restarted
    /// because its assignment or template changed.
    ///
    /// Example: `{"kind": "principal_stopped", "principal": "acme/agent/pm", "reason": "removed
    /// from machine_config", "exit_code": 143}`.
    PrincipalStopped {
        /// The principal.
        principal: Localpart,
        /// Why it was stopped.
        reason: String,
        /// Its exit status.
        exit_code: i32,
    },
    /// A principal's credentials were replaced in its running proxy.
    ///
    /// Example: `{"kind": "credentials_rotated", "principal": "acme/agent/pm", "key_names":
    /// ["OPENAI_API_KEY"]}`.
    CredentialsRotated {
        /// The principal.
        principal: Localpart,
        /// The names of its credentials now (never the values).
        key_names: Vec<String>,
    },
    /// A running principal's changed credential bundle could not be installed in its proxy (it
    /// keeps the previous values).
    ///
    /// Example: `{"kind": "credentials_rotation_failed", "principal": "acme/agent/pm",
    /// "reason": "… was not sealed to this machine's key …"}`.
    CredentialsRotationFailed {
        /// The principal.
        principal: Localpart,
        /// Why, as the error message.
        reason: String,
    },
    /// The daemon replaced itself with another version.
    ///
    /// Example: `{"kind": "daemon_self_update", "from": "0.1.0", "to": "0.2.0"}`.
    DaemonSelfUpdate {
        /// The version before.
        from: String,
        /// The version after.
        to: String,
    },
}

/// The content of an outcome message: a notice whose body is the outcome in words.
///
/// Example:
/// ```json
/// {"msgtype": "m.notice",
///  "body": "acme/agent/pm started (pid 4242)",
///  "m.bureau.outcome": {"kind": "principal_started", "principal": "acme/agent/pm", "pid": 4242}}
/// ```
///
/// ```
/// use bureau::naming::Localpart;
/// use bureau::schema::{Outcome, OutcomeMessage};
///
/// let message = OutcomeMessage::from(Outcome::PrincipalStarted {
///     principal: Localpart::parse("acme/agent/pm")?,
///     pid: 4242,
/// });
/// let json = serde_json::to_value(&message)?;
/// assert_eq!(json["msgtype"], "m.notice");
/// assert_eq!(json["body"], "acme/agent/pm started (pid 4242)");
/// assert_eq!(json["m.bureau.outcome"]["pid"], 4242);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeMessage {
    /// [`NOTICE_MSGTYPE`].
    pub msgtype: String,
    /// The outcome in words.
    pub body: String,
    /// The outcome as data.
    #[serde(rename = "m.bureau.outcome")]
    pub outcome: Outcome,
}

impl From<Outcome> for OutcomeMessage {
    /// Example: any outcome → `{"msgtype": "m.notice", "body": outcome.body(), …}`.
    fn from(outcome: Outcome) -> Self {
        Self {
            msgtype: NOTICE_MSGTYPE.to_owned(),
            body: outcome.body(),
            outcome,
        }
    }
}

/// What an exit status means beyond the number, per the sandbox's conventions.
fn exit_meaning(exit_code: i32) -> Option<String> {
    match exit_code {
        125 => Some("the sandbox could not be set up".to_owned()),
        126 => Some("the command could not be executed".to_owned()),
        127 => Some("the command was not found".to_owned()),
        129..=192 => Some(format!("killed by signal {}", exit_code - 128)),
        _ => None,
    }
}

impl Outcome {
    /// The outcome in words, for the message body.
    ///
    /// Example: `sandbox_exited {acme/agent/pm, 137}` → `acme/agent/pm exited with code 137
    /// (killed by signal 9)`; `daemon_self_update {0.1.0, 0.2.0}` → `bureau-daemon updated from
    /// 0.1.0 to 0.2.0`.
    ///
    /// ```
    /// use bureau::schema::Outcome;
    ///
    /// let update = Outcome::DaemonSelfUpdate { from: "0.1.0".into(), to: "0.2.0".into() };
    /// assert_eq!(update.body(), "bureau-daemon updated from 0.1.0 to 0.2.0");
    /// ```
    pub fn body(&self) -> String {
        match self {
            Self::PrincipalStarted { principal, pid } => format!("{principal} started (pid {pid})"),
            Self::SandboxExited {
                principal,
                exit_code,
                last_lines,
            } => {
                let mut body = format!("{principal} exited with code {exit_code}");
                if let Some(meaning) = exit_meaning(*exit_code) {
                    body.push_str(&format!(" ({meaning})"));
                }
                if !last_lines.is_empty() {
                    body.push_str("; last output:\n");
                    body.push_str(&last_lines.join("\n"));
                }
                body
            }
            Self::PrincipalStartFailed { principal, reason } => {
                format!("{principal} failed to start: {reason}")
            }
            Self::PrincipalStopped {
                principal,
                reason,
                exit_code,
            } => format!("{principal} stopped ({reason}; exit code {exit_code})"),
            Self::CredentialsRotated {
                principal,
                key_names,
            } => {
                if key_names.is_empty() {
                    format!("{principal} credentials rotated (now none)")
                } else {
                    format!("{principal} credentials rotated ({})", key_names.join(", "))
                }
            }
            Self::CredentialsRotationFailed { principal, reason } => format!(
                "{principal} credentials could not be rotated (it keeps the previous ones): \
                 {reason}"
            ),
            Self::DaemonSelfUpdate { from, to } => {
                format!("bureau-daemon updated from {from} to {to}")
            }
        }
    }

    /// The principal the outcome is about, if it is a valid name.
    ///
    /// Example: `principal_started {acme/agent/pm, …}` → `Some(acme/agent/pm)`;
    /// `daemon_self_update` → `None`.
    ///
    /// ```
    /// use bureau::schema::Outcome;
    ///
    /// let update = Outcome::DaemonSelfUpdate { from: "0.1.0".into(), to: "0.2.0".into() };
    /// assert!(update.principal().is_none());
    /// ```
    pub fn principal(&self) -> Option<&Localpart> {
        match self {
            Self::PrincipalStarted { principal, .. }
            | Self::SandboxExited { principal, .. }
            | Self::PrincipalStopped { principal, .. }
            | Self::CredentialsRotated { principal, .. }
            | Self::CredentialsRotationFailed { principal, .. } => Some(principal),
            // Its principal is text (it may be the malformed name the failure is about).
            Self::PrincipalStartFailed { .. } | Self::DaemonSelfUpdate { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::test_support::{parse_error, round_trip, tolerates_unknown_fields};
    use super::*;

    fn pm() -> Localpart {
        Localpart::parse("acme/agent/pm").unwrap()
    }

    fn exited(exit_code: i32, last_lines: &[&str]) -> Outcome {
        Outcome::SandboxExited {
            principal: pm(),
            exit_code,
            last_lines: last_lines.iter().map(|line| (*line).to_owned()).collect(),
        }
    }

    #[test]
    fn every_kind_round_trips() {
        for json in [
            json!({"kind": "principal_started", "principal": "acme/agent/pm", "pid": 4242}),
            json!({"kind": "sandbox_exited", "principal": "acme/agent/pm", "exit_code": 3,
                   "last_lines": ["Traceback (most recent call last):", "ValueError: bad task"]}),
            json!({"kind": "sandbox_exited", "principal": "acme/agent/pm", "exit_code": 0}),
            json!({"kind": "principal_start_failed", "principal": "acme/agent/pm",
                   "reason": "template \"claude\" does not exist"}),
            json!({"kind": "credentials_rotated", "principal": "acme/agent/pm",
                   "key_names": ["GITHUB_TOKEN", "OPENAI_API_KEY"]}),
            json!({"kind": "daemon_self_update", "from": "0.1.0", "to": "0.2.0"}),
        ] {
            round_trip::<Outcome>(json.clone());
            tolerates_unknown_fields::<Outcome>(json);
        }
    }

    #[test]
    fn messages_round_trip_and_tolerate_client_fields() {
        let json = json!({
            "msgtype": "m.notice",
            "body": "acme/agent/pm started (pid 4242)",
            "m.bureau.outcome": {"kind": "principal_started", "principal": "acme/agent/pm", "pid": 4242}
        });
        let message: OutcomeMessage = round_trip(json.clone());
        assert_eq!(message.body, message.outcome.body());
        tolerates_unknown_fields::<OutcomeMessage>(json);
    }

    #[test]
    fn a_message_is_a_notice_whose_body_is_the_outcome_in_words() {
        let outcome = exited(3, &["boom"]);
        let message = OutcomeMessage::from(outcome.clone());
        assert_eq!(
            serde_json::to_value(&message).unwrap(),
            json!({
                "msgtype": "m.notice",
                "body": "acme/agent/pm exited with code 3; last output:\nboom",
                "m.bureau.outcome": {"kind": "sandbox_exited", "principal": "acme/agent/pm",
                                     "exit_code": 3, "last_lines": ["boom"]}
            })
        );
        assert_eq!(message.outcome, outcome);
    }

    #[test]
    fn refuses_an_unknown_kind() {
        let error =
            parse_error::<Outcome>(json!({"kind": "principal_hibernated", "principal": "a"}));
        assert!(
            error.contains("unknown variant `principal_hibernated`"),
            "{error}"
        );
    }

    #[test]
    fn bodies_say_what_happened() {
        let cases = [
            (
                Outcome::PrincipalStarted {
                    principal: pm(),
                    pid: 4242,
                },
                "acme/agent/pm started (pid 4242)",
            ),
            (exited(0, &[]), "acme/agent/pm exited with code 0"),
            (
                exited(
                    3,
                    &["Traceback (most recent call last):", "ValueError: bad task"],
                ),
                "acme/agent/pm exited with code 3; last output:\nTraceback (most recent call \
                 last):\nValueError: bad task",
            ),
            (
                exited(125, &["sandbox: landlock: not supported"]),
                "acme/agent/pm exited with code 125 (the sandbox could not be set up); last \
                 output:\nsandbox: landlock: not supported",
            ),
            (
                exited(126, &[]),
                "acme/agent/pm exited with code 126 (the command could not be executed)",
            ),
            (
                exited(127, &[]),
                "acme/agent/pm exited with code 127 (the command was not found)",
            ),
            (
                exited(137, &[]),
                "acme/agent/pm exited with code 137 (killed by signal 9)",
            ),
            (
                Outcome::PrincipalStartFailed {
                    principal: "acme/agent/pm".to_owned(),
                    reason: "template \"claude\" does not exist".to_owned(),
                },
                "acme/agent/pm failed to start: template \"claude\" does not exist",
            ),
            (
                Outcome::PrincipalStopped {
                    principal: pm(),
                    reason: "removed from machine_config".to_owned(),
                    exit_code: 143,
                },
                "acme/agent/pm stopped (removed from machine_config; exit code 143)",
            ),
            (
                Outcome::CredentialsRotated {
                    principal: pm(),
                    key_names: vec!["GITHUB_TOKEN".to_owned(), "OPENAI_API_KEY".to_owned()],
                },
                "acme/agent/pm credentials rotated (GITHUB_TOKEN, OPENAI_API_KEY)",
            ),
            (
                Outcome::CredentialsRotated {
                    principal: pm(),
                    key_names: Vec::new(),
                },
                "acme/agent/pm credentials rotated (now none)",
            ),
            (
                Outcome::DaemonSelfUpdate {
                    from: "0.1.0".to_owned(),
                    to: "0.2.0".to_owned(),
                },
                "bureau-daemon updated from 0.1.0 to 0.2.0",
            ),
        ];
        for (outcome, body) in cases {
            assert_eq!(outcome.body(), body);
        }
    }

    #[test]
    fn names_the_principal() {
        assert_eq!(exited(1, &[]).principal(), Some(&pm()));
        let update = Outcome::DaemonSelfUpdate {
            from: "a".to_owned(),
            to: "b".to_owned(),
        };
        assert_eq!(update.principal(), None);
    }
}
