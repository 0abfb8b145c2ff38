//! `bureau machine provision`: a machine's account, its config room, its invitations, and the
//! bootstrap file its launcher reads at first boot.
//!
//! Invariant: a machine is provisioned once. An existing machine account is refused, never
//! reset (a new password would lock the running machine out); everything that can be checked
//! (the fleet's rooms exist, the bootstrap path is free) is checked before the account is made.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::Operator;
use super::accounts::{ExistingAccount, create_account, random_password};
use super::error::{MatrixContext, OperatorError};
use super::rooms::{invite_once, require_room, setup_hint};
use crate::machine::{BootstrapFile, MachineIdentity};
use crate::matrix::setup::{RoomRole, ensure_room};
use crate::secret::{zeroize, zeroize_string};

/// What [`provision_machine`] made. Holds no secret: the password is only in the bootstrap file.
///
/// Example (as `--json`):
/// ```json
/// {"machine": "acme/fleet/prod/machine/box1",
///  "user_id": "@acme/fleet/prod/machine/box1:bureau.local",
///  "config_room": "#acme/fleet/prod/machine/box1:bureau.local", "config_room_id": "!abc",
///  "invited_to": ["#acme/fleet/prod/machine/box1:bureau.local",
///                 "#acme/fleet/prod/machine:bureau.local", "#acme/template:bureau.local"],
///  "bootstrap_file": "./bootstrap-box1.json"}
/// ```
#[derive(Debug, Clone, Serialize)]
pub struct ProvisionedMachine {
    /// The machine's localpart.
    pub machine: String,
    /// The machine's account.
    pub user_id: String,
    /// The config room's alias.
    pub config_room: String,
    /// The config room's ID.
    pub config_room_id: String,
    /// The rooms the machine was invited to (config, fleet machine room, template room).
    pub invited_to: Vec<String>,
    /// Where the bootstrap file was written (mode 0600).
    pub bootstrap_file: PathBuf,
}

/// `./bootstrap-<last segment>.json`, the default bootstrap file of `machine`.
///
/// Example: `acme/fleet/prod/machine/box1` → `./bootstrap-box1.json`.
///
/// ```
/// use std::path::Path;
/// use bureau::machine::MachineIdentity;
/// use bureau::operator::default_bootstrap_path;
///
/// let box1 = MachineIdentity::new("http://h", "s", "acme/fleet/prod/machine/box1")?;
/// assert_eq!(default_bootstrap_path(&box1), Path::new("./bootstrap-box1.json"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn default_bootstrap_path(machine: &MachineIdentity) -> PathBuf {
    let last = machine.machine.segments().next_back().unwrap_or("machine");
    PathBuf::from(format!("./bootstrap-{last}.json"))
}

/// The bootstrap file, created (0600, must not exist) before anything else and removed again
/// if provisioning fails before its contents are written.
struct ReservedFile {
    path: PathBuf,
    file: Option<std::fs::File>,
}

impl ReservedFile {
    fn create(path: &Path) -> Result<Self, OperatorError> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|error| OperatorError::Io {
                doing: "creating the bootstrap file",
                path: path.display().to_string(),
                reason: if error.kind() == std::io::ErrorKind::AlreadyExists {
                    "it already exists (it may hold another machine's password); move it away \
                     or choose another --bootstrap-file"
                        .to_owned()
                } else {
                    error.to_string()
                },
            })?;
        Ok(Self {
            path: path.to_owned(),
            file: Some(file),
        })
    }

    /// Writes `contents` and keeps the file.
    fn write(mut self, contents: &[u8]) -> Result<(), OperatorError> {
        let result = match self.file.take() {
            Some(mut file) => file.write_all(contents).and_then(|()| file.sync_all()),
            None => Ok(()),
        };
        result.map_err(|error| OperatorError::Io {
            doing: "writing the bootstrap file",
            path: self.path.display().to_string(),
            reason: error.to_string(),
        })?;
        // Written: keep it (the drop below removes only an unwritten file).
        self.path = PathBuf::new();
        Ok(())
    }
}

impl Drop for ReservedFile {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Provisions `machine`: checks the fleet machine room and the namespace's template room exist
/// and `bootstrap_path` is free, creates the machine's account with a random password (refusing
/// an existing one), creates (or repairs) its config room with Bureau's admin-only power levels,
/// invites the machine to its config room, the fleet machine room and the template room, and
/// writes the bootstrap file (identity and password, mode 0600).
///
/// Example: `acme/fleet/prod/machine/box1` after `bureau matrix setup acme --fleet prod` →
/// account `@acme/fleet/prod/machine/box1:bureau.local`, room
/// `#acme/fleet/prod/machine/box1:bureau.local`, `./bootstrap-box1.json`; a second time →
/// `Err(account … already exists; …)`.
pub async fn provision_machine(
    operator: &Operator,
    machine: &MachineIdentity,
    bootstrap_path: &Path,
) -> Result<ProvisionedMachine, OperatorError> {
    let machine_room_alias = machine.machine_room_alias();
    let template_room_alias = machine.template_room_alias();
    let machine_room = require_room(operator, &machine_room_alias, || setup_hint(machine)).await?;
    let template_room =
        require_room(operator, &template_room_alias, || setup_hint(machine)).await?;

    let reserved = ReservedFile::create(bootstrap_path)?;
    let password = random_password()?;
    let machine_client = create_account(
        operator,
        &machine.machine,
        &password,
        ExistingAccount::Refuse {
            hint: "it was provisioned before, and its password is not reset (that would lock \
                   out the running machine); decommission the old machine first, or provision \
                   a new name",
        },
    )
    .await?;
    // The launcher logs in with the bootstrap file; this session was only a check.
    let user_id = machine.user_id();
    machine_client
        .logout()
        .await
        .doing(|| format!("logging out the check session of {user_id}"))?;

    let config_alias = machine.config_room_alias();
    let (_report, config_room) = ensure_room(
        operator.client(),
        machine.machine.as_str(),
        machine.machine.as_str(),
        RoomRole::Config,
        None,
    )
    .await
    .doing(|| format!("creating the config room {config_alias}"))?;

    let rooms = [
        (&config_room, &config_alias),
        (&machine_room, &machine_room_alias),
        (&template_room, &template_room_alias),
    ];
    for (room_id, alias) in rooms {
        invite_once(operator, room_id, alias, &user_id).await?;
    }

    let mut bootstrap = BootstrapFile {
        identity: machine.clone(),
        password: password
            .expose_str()
            .ok_or_else(|| OperatorError::Invalid("the new password is not UTF-8".to_owned()))?
            .to_owned(),
    };
    let encoded = serde_json::to_vec_pretty(&bootstrap);
    zeroize_string(&mut bootstrap.password);
    let mut encoded = encoded
        .map_err(|error| OperatorError::Invalid(format!("encoding the bootstrap file: {error}")))?;
    encoded.push(b'\n');
    let written = reserved.write(&encoded);
    zeroize(&mut encoded);
    written?;

    Ok(ProvisionedMachine {
        machine: machine.machine.to_string(),
        user_id,
        config_room: config_alias.clone(),
        config_room_id: config_room.to_string(),
        invited_to: vec![config_alias, machine_room_alias, template_room_alias],
        bootstrap_file: bootstrap_path.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_reserved_file_is_0600_and_removed_unless_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bootstrap.json");
        let reserved = ReservedFile::create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(ReservedFile::create(&path).is_err(), "the path is taken");
        drop(reserved);
        assert!(!path.exists());

        let reserved = ReservedFile::create(&path).unwrap();
        reserved.write(b"{}").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{}");
        let error = ReservedFile::create(&path).err().unwrap().to_string();
        assert!(error.contains("already exists"), "{error}");
    }
}
