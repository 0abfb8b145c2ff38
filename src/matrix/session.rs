//! The saved login: `$BUREAU_SESSION_FILE`, else `~/.config/bureau/session.json`, mode 0600 in a
//! 0700 directory, written atomically (temporary file + rename). In memory the access token is a
//! [`Secret`]; the file's bytes are zeroed after parsing.
//!
//! Example file:
//! ```json
//! {"homeserver_url": "http://127.0.0.1:6167", "user_id": "@ben:bureau.local",
//!  "access_token": "syt_…", "device_id": "ABCDEF"}
//! ```

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ruma::OwnedUserId;
use serde::{Deserialize, Serialize};

use super::client::{Client, ConnectOptions, parse_user_id};
use super::error::MatrixError;
use crate::secret::{Secret, zeroize};

/// A logged-in session.
#[derive(Debug)]
pub struct Session {
    pub homeserver_url: String,
    pub user_id: OwnedUserId,
    pub access_token: Secret,
    pub device_id: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct SessionFile {
    homeserver_url: String,
    user_id: String,
    access_token: String,
    #[serde(default)]
    device_id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(
        "no saved session at {path}\nHint: log in first: `bureau login --homeserver URL --user NAME --password-stdin`"
    )]
    Missing { path: PathBuf },
    #[error(
        "cannot read the session file {path}: {reason}\nHint: log in again with `bureau login`"
    )]
    Unreadable { path: PathBuf, reason: String },
    #[error("cannot write the session file {path}: {reason}")]
    Unwritable { path: PathBuf, reason: String },
    #[error(transparent)]
    Matrix(Box<MatrixError>),
}

impl From<MatrixError> for SessionError {
    fn from(error: MatrixError) -> Self {
        Self::Matrix(Box::new(error))
    }
}

/// Where the session lives: `$BUREAU_SESSION_FILE`, `$XDG_CONFIG_HOME/bureau/session.json`, or
/// `~/.config/bureau/session.json`.
pub fn default_session_path() -> PathBuf {
    if let Some(path) = std::env::var_os("BUREAU_SESSION_FILE") {
        return PathBuf::from(path);
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    config.join("bureau").join("session.json")
}

impl Session {
    /// Reads a saved session.
    pub fn load(path: &Path) -> Result<Self, SessionError> {
        let mut bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(SessionError::Missing {
                    path: path.to_owned(),
                });
            }
            Err(error) => {
                return Err(SessionError::Unreadable {
                    path: path.to_owned(),
                    reason: error.to_string(),
                });
            }
        };
        let parsed: Result<SessionFile, _> = serde_json::from_slice(&bytes);
        zeroize(&mut bytes);
        let file = parsed.map_err(|error| SessionError::Unreadable {
            path: path.to_owned(),
            reason: error.to_string(),
        })?;
        Ok(Self {
            homeserver_url: file.homeserver_url,
            user_id: parse_user_id(&file.user_id)?,
            access_token: Secret::from_string(file.access_token),
            device_id: file.device_id,
        })
    }

    /// Writes the session with mode 0600, atomically.
    pub fn save(&self, path: &Path) -> Result<(), SessionError> {
        let unwritable = |reason: String| SessionError::Unwritable {
            path: path.to_owned(),
            reason,
        };
        let token = self
            .access_token
            .expose_str()
            .ok_or_else(|| unwritable("the access token is not UTF-8".to_owned()))?;
        let file = SessionFile {
            homeserver_url: self.homeserver_url.clone(),
            user_id: self.user_id.to_string(),
            access_token: token.to_owned(),
            device_id: self.device_id.clone(),
        };
        let mut json =
            serde_json::to_vec_pretty(&file).map_err(|error| unwritable(error.to_string()))?;
        drop(Secret::from_string(file.access_token));
        let result = write_private(path, &json);
        zeroize(&mut json);
        result.map_err(|error| unwritable(error.to_string()))
    }

    /// Connects to the session's homeserver as its user.
    pub async fn connect(&self, options: &ConnectOptions) -> Result<Client, MatrixError> {
        let client = Client::connect(&self.homeserver_url, options).await?;
        Ok(client.with_session(self.user_id.clone(), self.access_token.duplicate()))
    }
}

/// Writes `contents` to `path` with mode 0600 (parent directory 0700 if created), atomically.
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
    }
    let temporary = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)?;
    // The mode above only applies to a new file; make sure of it.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(contents)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_with_mode_0600_and_loads_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nested/session.json");
        let session = Session {
            homeserver_url: "http://127.0.0.1:1".to_owned(),
            user_id: parse_user_id("@ben:bureau.local").expect("user"),
            access_token: Secret::from_string("syt_canary".to_owned()),
            device_id: Some("DEV".to_owned()),
        };
        session.save(&path).expect("save");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let loaded = Session::load(&path).expect("load");
        assert_eq!(loaded.user_id, session.user_id);
        assert!(loaded.access_token.constant_time_eq(b"syt_canary"));
        assert!(!format!("{loaded:?}").contains("syt_canary"));
    }

    #[test]
    fn missing_session_says_how_to_log_in() {
        let error = Session::load(Path::new("/nonexistent/session.json")).expect_err("missing");
        assert!(error.to_string().contains("bureau login"), "{error}");
    }
}
