//! The launcher's first boot: turn a bootstrap file from `bureau machine provision` into a
//! machine — log in, keep the session for the daemon, make the machine's age key and publish
//! its public half — and, on every later boot, load what the first one made.
//!
//! Invariant: this is the only place the launcher talks to the network, and it does so only
//! while no `machine.json` exists (the first boot). The bootstrap file's one-time password is
//! deleted once the session is saved.

use std::path::Path;

use crate::machine::{BootstrapFile, MachineIdentity, MachinePaths};
use crate::matrix::{Client, ConnectOptions, Session};
use crate::schema::{MACHINE_KEY, MachineKey as MachineKeyEvent};
use crate::sealed::MachineKey;
use crate::secret::zeroize;

/// Loads the machine (later boots) or makes it from `bootstrap` (first boot). Errors name the
/// file or step and say what to do.
pub async fn boot(
    paths: &MachinePaths,
    bootstrap: Option<&Path>,
) -> Result<(MachineIdentity, MachineKey), String> {
    let identity_path = paths.machine_identity();
    if identity_path.exists() {
        if bootstrap.is_some() {
            tracing::warn!(
                path = %identity_path.display(),
                "this machine is already provisioned; ignoring --bootstrap-file"
            );
        }
        let identity = MachineIdentity::load(&identity_path)?;
        let key = MachineKey::load(&paths.machine_key()).map_err(|error| error.to_string())?;
        return Ok((identity, key));
    }
    let Some(bootstrap) = bootstrap else {
        return Err(format!(
            "this machine is not provisioned ({} does not exist): run `bureau machine provision \
             NAME` as an operator, copy the bootstrap file here, and start bureau-launcher once \
             with --bootstrap-file FILE",
            identity_path.display()
        ));
    };
    first_boot(paths, bootstrap).await
}

async fn first_boot(
    paths: &MachinePaths,
    bootstrap_path: &Path,
) -> Result<(MachineIdentity, MachineKey), String> {
    let in_file = |reason: String| format!("bootstrap file {}: {reason}", bootstrap_path.display());
    let mut bytes = std::fs::read(bootstrap_path).map_err(|error| in_file(error.to_string()))?;
    let parsed: Result<BootstrapFile, _> = serde_json::from_slice(&bytes);
    zeroize(&mut bytes);
    let (identity, password) = parsed
        .map_err(|error| in_file(error.to_string()))?
        .into_parts();
    for dir in [&paths.state_dir, &paths.run_dir, &paths.workspace_dir] {
        std::fs::create_dir_all(dir)
            .map_err(|error| format!("creating {}: {error}", dir.display()))?;
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&paths.state_dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|error| format!("securing {}: {error}", paths.state_dir.display()))?;

    let client = Client::connect(&identity.homeserver_url, &ConnectOptions::default())
        .await
        .map_err(|error| error.to_string())?;
    let (client, device_id) = client
        .login_password(identity.machine.as_str(), &password)
        .await
        .map_err(|error| {
            format!(
                "logging in as {}: {error}\nHint: the password in the bootstrap file does not \
                 (or no longer) match the machine's account; provision the machine again",
                identity.user_id()
            )
        })?;
    let (Some(user_id), Some(token)) = (client.user_id(), client.access_token()) else {
        return Err("the login returned no session".to_owned());
    };
    Session {
        homeserver_url: identity.homeserver_url.clone(),
        user_id: user_id.clone(),
        access_token: token.duplicate(),
        device_id: Some(device_id),
    }
    .save(&paths.session())
    .map_err(|error| error.to_string())?;

    let (key, _created) =
        MachineKey::load_or_generate(&paths.machine_key()).map_err(|error| error.to_string())?;
    let mut rooms = Vec::new();
    for alias in [identity.config_room_alias(), identity.machine_room_alias()] {
        let room = client
            .resolve_alias(&alias)
            .await
            .map_err(|error| error.to_string())?
            .ok_or_else(|| {
                format!("room {alias} does not exist; provision the machine with `bureau machine provision`")
            })?;
        client
            .join(room.as_str())
            .await
            .map_err(|error| format!("joining {alias}: {error}"))?;
        rooms.push(room);
    }
    let content = serde_json::to_value(MachineKeyEvent::age_x25519(key.recipient()))
        .map_err(|error| error.to_string())?;
    client
        .state_put(&rooms[1], MACHINE_KEY, identity.machine.as_str(), &content)
        .await
        .map_err(|error| format!("publishing the machine key: {error}"))?;

    let json = serde_json::to_vec_pretty(&identity).map_err(|error| error.to_string())?;
    std::fs::write(paths.machine_identity(), json)
        .map_err(|error| format!("writing {}: {error}", paths.machine_identity().display()))?;
    if let Err(error) = std::fs::remove_file(bootstrap_path) {
        tracing::warn!(%error, path = %bootstrap_path.display(), "cannot delete the used bootstrap file; delete it");
    }
    tracing::info!(machine = %identity.machine, recipient = %key.recipient(), "machine provisioned");
    Ok((identity, key))
}
