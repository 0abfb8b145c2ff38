//! What a machine publishes about itself in the fleet's machine room: its age public key
//! ([`MachineKey`]), its inventory ([`MachineInfo`]) and its heartbeat ([`MachineStatus`]).
//!
//! Invariant: these are reports, written only by the machine they describe (state key = the
//! machine's localpart); nothing here is desired state. A [`MachineKey`] that validates names
//! an age X25519 key, so credential bundles can be encrypted to it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::age::{AgeRecipientError, validate_age_recipient};
use crate::naming::Localpart;

/// The only machine key algorithm: age with an X25519 recipient.
///
/// Example: `{"algorithm": "age-x25519", …}`.
pub const MACHINE_KEY_ALGORITHM: &str = "age-x25519";

/// The machine's age public key (`m.bureau.machine_key`), published by the launcher when it
/// generates its keypair; credential bundles for the machine are encrypted to it.
///
/// Example:
/// ```json
/// {"algorithm": "age-x25519",
///  "public_key": "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"}
/// ```
///
/// ```
/// use bureau::schema::MachineKey;
///
/// let key = MachineKey::age_x25519("age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p");
/// key.validate()?;
/// assert_eq!(serde_json::to_value(&key)?["algorithm"], "age-x25519");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineKey {
    /// Always [`MACHINE_KEY_ALGORITHM`] (`age-x25519`) today.
    pub algorithm: String,
    /// The age recipient, `age1…`.
    pub public_key: String,
}

/// Why a [`MachineKey`] cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MachineKeyError {
    /// An algorithm other than `age-x25519`.
    ///
    /// Example: `"rsa"` → `machine key: algorithm "rsa" is not supported; this Bureau only
    /// knows "age-x25519" (upgrade Bureau if a newer machine published this key)`.
    #[error(
        "machine key: algorithm {algorithm:?} is not supported; this Bureau only knows \
         \"age-x25519\" (upgrade Bureau if a newer machine published this key)"
    )]
    UnsupportedAlgorithm {
        /// The algorithm as given.
        algorithm: String,
    },

    /// The public key is not an age recipient.
    ///
    /// Example: `"age1abc"` → `machine key: public_key: age recipient "age1abc": is 7 bytes
    /// long, …`.
    #[error("machine key: public_key: {0}")]
    PublicKey(#[from] AgeRecipientError),
}

impl MachineKey {
    /// A key of the `age-x25519` algorithm.
    ///
    /// Example: `MachineKey::age_x25519("age1…")` → `{"algorithm": "age-x25519", "public_key":
    /// "age1…"}`.
    ///
    /// ```
    /// # use bureau::schema::MachineKey;
    /// assert_eq!(MachineKey::age_x25519("age1xyz").algorithm, "age-x25519");
    /// ```
    pub fn age_x25519(public_key: impl Into<String>) -> Self {
        Self {
            algorithm: MACHINE_KEY_ALGORITHM.to_owned(),
            public_key: public_key.into(),
        }
    }

    /// Checks the algorithm is `age-x25519` and the public key is an age recipient.
    ///
    /// Example: algorithm `"rsa"` → `Err(machine key: algorithm "rsa" is not supported; …)`.
    ///
    /// ```
    /// # use bureau::schema::MachineKey;
    /// assert!(MachineKey::age_x25519("age1short").validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<(), MachineKeyError> {
        if self.algorithm != MACHINE_KEY_ALGORITHM {
            return Err(MachineKeyError::UnsupportedAlgorithm {
                algorithm: self.algorithm.clone(),
            });
        }
        validate_age_recipient(&self.public_key)?;
        Ok(())
    }
}

/// The machine's hardware and software inventory (`m.bureau.machine_info`), published by the
/// daemon at start-up and when it changes. Every field defaults to empty/zero.
///
/// Example:
/// ```json
/// {"hostname": "box1", "kernel": "6.8.0-45-generic",
///  "cpu_model": "AMD EPYC 9454", "cpu_count": 96, "memory_bytes": 540000000000,
///  "bureau_version": "0.1.0", "labels": {"gpu": "mi300x", "zone": "lab"}}
/// ```
///
/// ```
/// use bureau::schema::MachineInfo;
///
/// let info: MachineInfo = serde_json::from_str(r#"{"hostname": "box1", "cpu_count": 96}"#)?;
/// assert_eq!((info.hostname.as_str(), info.cpu_count, info.memory_bytes), ("box1", 96, 0));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MachineInfo {
    /// The host's name (`uname -n`).
    pub hostname: String,
    /// The kernel release (`uname -r`).
    pub kernel: String,
    /// The CPU model name (from `/proc/cpuinfo`).
    pub cpu_model: String,
    /// Logical CPUs.
    pub cpu_count: u32,
    /// Physical memory in bytes.
    pub memory_bytes: u64,
    /// The running Bureau's version.
    pub bureau_version: String,
    /// Free-form labels for placement and display, e.g. `{"gpu": "mi300x"}`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// The machine's heartbeat (`m.bureau.machine_status`), published by the daemon periodically.
/// Every field defaults to empty/zero.
///
/// Example:
/// ```json
/// {"reported_at": 1718000000000, "cpu_percent": 37,
///  "memory_used_bytes": 8000000000, "memory_total_bytes": 64000000000,
///  "principals": [{"localpart": "acme/agent/pm", "state": "running", "pid": 4242},
///                 {"localpart": "acme/agent/dev", "state": "failed"}],
///  "bureau_version": "0.1.0"}
/// ```
///
/// ```
/// use bureau::schema::{MachineStatus, PrincipalState};
///
/// let status: MachineStatus = serde_json::from_str(
///     r#"{"cpu_percent": 37, "principals": [{"localpart": "acme/agent/pm", "state": "running", "pid": 42}]}"#,
/// )?;
/// assert_eq!(status.principals[0].state, PrincipalState::Running);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MachineStatus {
    /// When this heartbeat was taken, in milliseconds since the Unix epoch.
    pub reported_at: u64,
    /// Whole-machine CPU use over the last interval, 0–100 (an integer: Matrix refuses floats).
    pub cpu_percent: u32,
    /// Memory in use, in bytes.
    pub memory_used_bytes: u64,
    /// Physical memory, in bytes.
    pub memory_total_bytes: u64,
    /// Every principal the daemon manages on this machine and its state.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub principals: Vec<PrincipalStatus>,
    /// The running Bureau's version.
    pub bureau_version: String,
}

/// One principal in a [`MachineStatus`].
///
/// Example: `{"localpart": "acme/agent/pm", "state": "running", "pid": 4242}`.
///
/// ```
/// use bureau::schema::{PrincipalState, PrincipalStatus};
///
/// let status: PrincipalStatus = serde_json::from_str(r#"{"localpart": "acme/agent/pm", "state": "starting"}"#)?;
/// assert_eq!((status.state, status.pid), (PrincipalState::Starting, None));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrincipalStatus {
    /// The principal.
    pub localpart: Localpart,
    /// Its lifecycle state.
    pub state: PrincipalState,
    /// The sandbox's process ID on the host, while it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
}

/// A principal's lifecycle state, as reported in a heartbeat.
///
/// Example: `"running"` → [`PrincipalState::Running`]; a state this Bureau does not know (from a
/// newer machine) → [`PrincipalState::Unknown`], so the rest of the heartbeat still reads.
///
/// ```
/// use bureau::schema::PrincipalState;
///
/// assert_eq!(serde_json::from_str::<PrincipalState>(r#""failed""#)?, PrincipalState::Failed);
/// assert_eq!(serde_json::from_str::<PrincipalState>(r#""hibernating""#)?, PrincipalState::Unknown);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalState {
    /// Its sandbox is being created.
    Starting,
    /// Its command is running.
    Running,
    /// It was stopped on purpose, or exited successfully and is not restarted.
    Stopped,
    /// It exited with an error or could not be started.
    Failed,
    /// A state written by a newer Bureau (serialized as `"unknown"`).
    #[serde(other)]
    Unknown,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::age::tests::RECIPIENT;
    use super::super::test_support::{parse_error, round_trip, tolerates_unknown_fields};
    use super::*;

    fn key_json() -> serde_json::Value {
        json!({"algorithm": "age-x25519", "public_key": RECIPIENT})
    }

    fn info_json() -> serde_json::Value {
        json!({
            "hostname": "box1", "kernel": "6.8.0-45-generic", "cpu_model": "AMD EPYC 9454",
            "cpu_count": 96, "memory_bytes": 540_000_000_000_u64, "bureau_version": "0.1.0",
            "labels": {"gpu": "mi300x", "zone": "lab"}
        })
    }

    fn status_json() -> serde_json::Value {
        json!({
            "reported_at": 1_718_000_000_000_u64, "cpu_percent": 37,
            "memory_used_bytes": 8_000_000_000_u64, "memory_total_bytes": 64_000_000_000_u64,
            "principals": [
                {"localpart": "acme/agent/pm", "state": "running", "pid": 4242},
                {"localpart": "acme/agent/dev", "state": "starting"},
                {"localpart": "acme/agent/qa", "state": "stopped"},
                {"localpart": "acme/agent/ops", "state": "failed"}
            ],
            "bureau_version": "0.1.0"
        })
    }

    #[test]
    fn machine_key_round_trips_and_validates() {
        let key: MachineKey = round_trip(key_json());
        key.validate().unwrap();
        assert_eq!(key, MachineKey::age_x25519(RECIPIENT));
        tolerates_unknown_fields::<MachineKey>(key_json());
    }

    #[test]
    fn machine_key_refuses_another_algorithm() {
        let key = MachineKey {
            algorithm: "rsa".to_owned(),
            public_key: RECIPIENT.to_owned(),
        };
        assert_eq!(
            key.validate().unwrap_err().to_string(),
            "machine key: algorithm \"rsa\" is not supported; this Bureau only knows \
             \"age-x25519\" (upgrade Bureau if a newer machine published this key)"
        );
    }

    #[test]
    fn machine_key_refuses_a_public_key_without_the_age1_prefix() {
        let key = MachineKey::age_x25519("x25519:abc");
        assert_eq!(
            key.validate().unwrap_err().to_string(),
            "machine key: public_key: age recipient \"x25519:abc\": does not start with \"age1\"; \
             use an age X25519 public key (`age-keygen -y KEYFILE` prints it), never the secret key"
        );
    }

    #[test]
    fn machine_key_requires_its_fields() {
        let error = parse_error::<MachineKey>(json!({"algorithm": "age-x25519"}));
        assert!(error.contains("missing field `public_key`"), "{error}");
    }

    #[test]
    fn machine_info_round_trips() {
        let info: MachineInfo = round_trip(info_json());
        assert_eq!(info.labels["gpu"], "mi300x");
        tolerates_unknown_fields::<MachineInfo>(info_json());
    }

    #[test]
    fn machine_info_defaults_every_field() {
        let info: MachineInfo = serde_json::from_value(json!({})).unwrap();
        assert_eq!(info, MachineInfo::default());
    }

    #[test]
    fn machine_status_round_trips() {
        let status: MachineStatus = round_trip(status_json());
        assert_eq!(status.principals[0].pid, Some(4242));
        assert_eq!(status.principals[3].state, PrincipalState::Failed);
        tolerates_unknown_fields::<MachineStatus>(status_json());
    }

    #[test]
    fn machine_status_reads_a_state_from_a_newer_bureau_as_unknown() {
        let status: MachineStatus = serde_json::from_value(json!({
            "principals": [{"localpart": "acme/agent/pm", "state": "hibernating", "future": 1}]
        }))
        .unwrap();
        assert_eq!(status.principals[0].state, PrincipalState::Unknown);
        assert_eq!(
            serde_json::to_value(PrincipalState::Unknown).unwrap(),
            json!("unknown")
        );
    }

    #[test]
    fn machine_status_refuses_an_invalid_principal_name() {
        let error = parse_error::<MachineStatus>(json!({
            "principals": [{"localpart": "acme/../x", "state": "running"}]
        }));
        assert!(error.contains("localpart \"acme/../x\""), "{error}");
    }
}
