//! A machine's identity and its on-disk layout: who the machine is on Matrix, which rooms it
//! reads, and where the launcher and daemon keep their files.
//!
//! Invariant: every room alias and user ID the launcher and daemon use is derived here from one
//! [`MachineIdentity`], so the CLI that provisions a machine and the machine itself can never
//! disagree about names. The machine's localpart has the shape `<fleet>/machine/<name>`, e.g.
//! `acme/fleet/prod/machine/box1` in fleet `acme/fleet/prod` of namespace `acme`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::naming::{Localpart, NameError};
use crate::secret::Secret;

/// The segment that separates a machine's fleet from its name.
///
/// Example: `acme/fleet/prod/machine/box1` → fleet `acme/fleet/prod`.
pub const MACHINE_SEGMENT: &str = "/machine/";

/// Who a machine is: its homeserver, server name and localpart. Written by the launcher at first
/// boot to `<state-dir>/machine.json`, read by the daemon.
///
/// Example:
/// ```json
/// {"homeserver_url": "http://127.0.0.1:8008", "server_name": "bureau.local",
///  "machine": "acme/fleet/prod/machine/box1"}
/// ```
///
/// ```
/// use bureau::machine::MachineIdentity;
///
/// let box1 = MachineIdentity::new("http://127.0.0.1:8008", "bureau.local", "acme/fleet/prod/machine/box1")?;
/// assert_eq!(box1.fleet(), "acme/fleet/prod");
/// assert_eq!(box1.user_id(), "@acme/fleet/prod/machine/box1:bureau.local");
/// assert_eq!(box1.config_room_alias(), "#acme/fleet/prod/machine/box1:bureau.local");
/// assert_eq!(box1.machine_room_alias(), "#acme/fleet/prod/machine:bureau.local");
/// assert_eq!(box1.template_room_alias(), "#acme/template:bureau.local");
/// # Ok::<(), bureau::machine::MachineNameError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineIdentity {
    /// The homeserver's client-server API base URL.
    pub homeserver_url: String,
    /// The Matrix server name (the part after `:` in user IDs).
    pub server_name: String,
    /// The machine's localpart, `<fleet>/machine/<name>`.
    pub machine: Localpart,
}

/// Why a name is not a machine name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MachineNameError {
    /// Not a localpart at all.
    #[error("machine name {name:?}: {reason}")]
    Name {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: NameError,
    },
    /// No `/machine/` segment, so no fleet.
    #[error(
        "machine name {name:?} has no fleet: name machines <fleet>/machine/<name>, like \
         acme/fleet/prod/machine/box1 (the fleet is made by `bureau matrix setup acme --fleet prod`)"
    )]
    NoFleet {
        /// The name as given.
        name: String,
    },
}

/// Checks that `name` is a machine localpart `<fleet>/machine/<name>`.
///
/// Example: `acme/fleet/prod/machine/box1` → ok; `acme/box1` → [`MachineNameError::NoFleet`].
///
/// ```
/// use bureau::machine::parse_machine_name;
///
/// assert!(parse_machine_name("acme/fleet/prod/machine/box1").is_ok());
/// assert!(parse_machine_name("acme/box1").is_err());
/// ```
pub fn parse_machine_name(name: &str) -> Result<Localpart, MachineNameError> {
    let machine = Localpart::parse(name).map_err(|reason| MachineNameError::Name {
        name: name.to_owned(),
        reason,
    })?;
    match machine.as_str().rfind(MACHINE_SEGMENT) {
        Some(index) if index > 0 && index + MACHINE_SEGMENT.len() < machine.as_str().len() => {
            Ok(machine)
        }
        _ => Err(MachineNameError::NoFleet {
            name: name.to_owned(),
        }),
    }
}

impl MachineIdentity {
    /// A machine identity, checking the machine name.
    pub fn new(
        homeserver_url: &str,
        server_name: &str,
        machine: &str,
    ) -> Result<Self, MachineNameError> {
        Ok(Self {
            homeserver_url: homeserver_url.trim_end_matches('/').to_owned(),
            server_name: server_name.to_owned(),
            machine: parse_machine_name(machine)?,
        })
    }

    /// Reads the identity the launcher wrote at first boot (`<state-dir>/machine.json`). The
    /// error names the file.
    pub fn load(path: &Path) -> Result<Self, String> {
        std::fs::read(path)
            .map_err(|error| error.to_string())
            .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|error| error.to_string()))
            .map_err(|reason| format!("{}: {reason}", path.display()))
    }

    /// The fleet: everything before `/machine/`.
    pub fn fleet(&self) -> &str {
        let name = self.machine.as_str();
        name.rfind(MACHINE_SEGMENT)
            .map_or(name, |index| &name[..index])
    }

    /// The namespace: the first segment.
    pub fn namespace(&self) -> &str {
        self.machine.segments().next().unwrap_or_default()
    }

    /// The machine's Matrix user ID.
    pub fn user_id(&self) -> String {
        self.user_id_of(&self.machine)
    }

    /// A principal's Matrix user ID on this machine's server.
    pub fn user_id_of(&self, principal: &Localpart) -> String {
        format!("@{principal}:{}", self.server_name)
    }

    /// The machine's config room (`m.bureau.machine_config`, credentials, outcomes).
    pub fn config_room_alias(&self) -> String {
        format!("#{}:{}", self.machine, self.server_name)
    }

    /// The fleet's machine room (keys, info, status).
    pub fn machine_room_alias(&self) -> String {
        format!("#{}/machine:{}", self.fleet(), self.server_name)
    }

    /// The namespace's template room: where a plain template name such as `agent-base` is
    /// looked up.
    pub fn template_room_alias(&self) -> String {
        format!("#{}/template:{}", self.namespace(), self.server_name)
    }
}

/// What `bureau machine provision` hands to a new machine: its identity and a one-time password
/// for its account. The launcher reads it at first boot, logs in, and deletes it.
///
/// Example (`bootstrap.json`, mode 0600):
/// ```json
/// {"homeserver_url": "http://127.0.0.1:8008", "server_name": "bureau.local",
///  "machine": "acme/fleet/prod/machine/box1", "password": "…"}
/// ```
#[derive(Serialize, Deserialize)]
pub struct BootstrapFile {
    /// Who the machine is.
    #[serde(flatten)]
    pub identity: MachineIdentity,
    /// The machine account's password.
    pub password: String,
}

impl std::fmt::Debug for BootstrapFile {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("BootstrapFile")
            .field("identity", &self.identity)
            .field("password", &"[redacted]")
            .finish()
    }
}

impl BootstrapFile {
    /// Splits the file into the identity and the password, moving the password into a
    /// [`Secret`].
    pub fn into_parts(self) -> (MachineIdentity, Secret) {
        (self.identity, Secret::from_string(self.password))
    }
}

/// Where the launcher and daemon keep their files. Production: `/var/lib/bureau`,
/// `/run/bureau`, `/var/bureau/workspace`; rootless mode and tests: all under one directory
/// ([`MachinePaths::under`]).
///
/// ```
/// use std::path::Path;
/// use bureau::machine::MachinePaths;
///
/// let paths = MachinePaths::under(Path::new("/tmp/b"));
/// assert_eq!(paths.launcher_socket(), Path::new("/tmp/b/run/launcher.sock"));
/// assert_eq!(paths.machine_key(), Path::new("/tmp/b/state/machine.key"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachinePaths {
    /// Keys, session, launcher state, per-principal logs (0700).
    pub state_dir: PathBuf,
    /// Sockets (launcher, proxies).
    pub run_dir: PathBuf,
    /// Principals' workspaces.
    pub workspace_dir: PathBuf,
}

impl MachinePaths {
    /// The production layout.
    pub fn system() -> Self {
        Self {
            state_dir: PathBuf::from("/var/lib/bureau"),
            run_dir: PathBuf::from("/run/bureau"),
            workspace_dir: PathBuf::from("/var/bureau/workspace"),
        }
    }

    /// Everything under `root` (rootless mode): `root/state`, `root/run`, `root/workspace`.
    pub fn under(root: &Path) -> Self {
        Self {
            state_dir: root.join("state"),
            run_dir: root.join("run"),
            workspace_dir: root.join("workspace"),
        }
    }

    /// `--dir DIR` as the launcher and daemon take it: everything under DIR when given, the
    /// production layout otherwise.
    pub fn from_dir_option(dir: Option<&Path>) -> Self {
        dir.map_or_else(Self::system, Self::under)
    }

    /// `<state>/machine.json`: the [`MachineIdentity`].
    pub fn machine_identity(&self) -> PathBuf {
        self.state_dir.join("machine.json")
    }

    /// `<state>/machine.key`: the machine's age identity (0600).
    pub fn machine_key(&self) -> PathBuf {
        self.state_dir.join("machine.key")
    }

    /// `<state>/session.json`: the machine account's Matrix session (0600).
    pub fn session(&self) -> PathBuf {
        self.state_dir.join("session.json")
    }

    /// `<state>/launcher.json`: the launcher's record of running sandboxes.
    pub fn launcher_state(&self) -> PathBuf {
        self.state_dir.join("launcher.json")
    }

    /// `<state>/principals/<localpart>/`: a principal's logs, payload and exit status.
    pub fn principal_dir(&self, principal: &Localpart) -> PathBuf {
        self.state_dir.join("principals").join(principal.as_str())
    }

    /// `<workspace>/<localpart>`: a principal's workspace, `/workspace` inside its sandbox.
    pub fn workspace(&self, principal: &Localpart) -> PathBuf {
        self.workspace_dir.join(principal.as_str())
    }

    /// `<run>/launcher.sock`.
    pub fn launcher_socket(&self) -> PathBuf {
        self.run_dir.join("launcher.sock")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_names_need_a_fleet() {
        assert!(parse_machine_name("acme/fleet/prod/machine/box1").is_ok());
        for bad in ["acme/box1", "machine/box1", "acme/fleet/prod/machine"] {
            let error = parse_machine_name(bad).unwrap_err();
            assert!(
                matches!(error, MachineNameError::NoFleet { .. }),
                "{bad}: {error}"
            );
        }
        assert!(matches!(
            parse_machine_name("acme/../machine/x"),
            Err(MachineNameError::Name { .. })
        ));
    }

    #[test]
    fn bootstrap_debug_hides_the_password() {
        let file = BootstrapFile {
            identity: MachineIdentity::new("http://h", "s", "a/machine/b").unwrap(),
            password: "hunter2-canary".into(),
        };
        assert!(!format!("{file:?}").contains("hunter2"));
        let json = serde_json::to_value(&file).unwrap();
        assert_eq!(json["machine"], "a/machine/b");
    }
}
