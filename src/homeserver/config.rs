//! What an instance is asked to be ([`HomeserverConfig`]) and the files that make Synapse that:
//! `homeserver.yaml`, `log.yaml`, the signing key and the instance's secrets.

use std::fmt;
use std::fs;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::HomeserverError;
use super::process::output_detail;

/// How to run a local homeserver. `HomeserverConfig::default()` is what tests want: server name
/// `bureau.local`, a free port, a fresh tmpfs data directory, a random shared secret.
#[derive(Clone)]
pub struct HomeserverConfig {
    /// The Matrix server name: users are `@user:SERVER_NAME`. Default `bureau.local`.
    pub server_name: String,
    /// The client-API port on `127.0.0.1`; `None` picks a free one.
    pub port: Option<u16>,
    /// Where the database, signing key, config and logs live; `None` makes a fresh directory on
    /// tmpfs (`/dev/shm`, else the temp directory) that is removed when the instance is dropped.
    /// A given directory is kept, and reused by the next start (same users, same rooms).
    pub data_dir: Option<PathBuf>,
    /// The `registration_shared_secret`; `None` keeps the data directory's own (random, made on
    /// its first start).
    pub shared_secret: Option<String>,
    /// Synapse's log level (`DEBUG`, `INFO`, `WARNING`, `ERROR`); the log is
    /// `DATA_DIR/homeserver.log`. Default `WARNING`.
    pub log_level: String,
    /// Where the venv lives; `None` is [`super::cache_dir`].
    pub cache_dir: Option<PathBuf>,
    /// How long Synapse may take to answer `/_matrix/client/versions`. Default 120 s.
    pub start_timeout: Duration,
    /// Open the standard `/register` flow, gated by a registration token (made by an admin with
    /// `POST /_synapse/admin/v1/registration_tokens/new`). Default false: accounts are made with
    /// the shared secret only.
    pub registration_requires_token: bool,
}

impl Default for HomeserverConfig {
    fn default() -> Self {
        Self {
            server_name: "bureau.local".to_owned(),
            port: None,
            data_dir: None,
            shared_secret: None,
            log_level: "WARNING".to_owned(),
            cache_dir: None,
            start_timeout: Duration::from_secs(120),
            registration_requires_token: false,
        }
    }
}

impl fmt::Debug for HomeserverConfig {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("HomeserverConfig")
            .field("server_name", &self.server_name)
            .field("port", &self.port)
            .field("data_dir", &self.data_dir)
            .field(
                "shared_secret",
                &self.shared_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("log_level", &self.log_level)
            .field("cache_dir", &self.cache_dir)
            .field("start_timeout", &self.start_timeout)
            .finish()
    }
}

impl HomeserverConfig {
    /// Refuses values that Synapse would reject later with a less clear message.
    pub(crate) fn validate(&self) -> Result<(), HomeserverError> {
        let name_ok = !self.server_name.is_empty()
            && self
                .server_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
        if !name_ok {
            return Err(HomeserverError::InvalidConfig(format!(
                "server name {:?} is not a hostname (letters, digits, '.', '-', optional :port)",
                self.server_name
            )));
        }
        if !LOG_LEVELS.contains(&self.log_level.as_str()) {
            return Err(HomeserverError::InvalidConfig(format!(
                "log level {:?} is not one of {}",
                self.log_level,
                LOG_LEVELS.join(", ")
            )));
        }
        if self.shared_secret.as_ref().is_some_and(String::is_empty) {
            return Err(HomeserverError::InvalidConfig(
                "the shared secret is empty".to_owned(),
            ));
        }
        Ok(())
    }
}

const LOG_LEVELS: [&str; 5] = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"];

/// The instance's files, as written by [`write_files`].
pub(crate) struct Written {
    pub config: PathBuf,
    pub shared_secret: String,
}

/// The secrets that must survive restarts of one data directory.
struct Secrets {
    registration: String,
    macaroon: String,
    form: String,
}

/// Writes (or rewrites) the instance's files in `data_dir` for `port`; the signing key and
/// secrets are made once per data directory and kept.
pub(crate) fn write_files(
    config: &HomeserverConfig,
    venv: &Path,
    data_dir: &Path,
    port: u16,
) -> Result<Written, HomeserverError> {
    let media = data_dir.join("media_store");
    fs::create_dir_all(&media).map_err(|source| HomeserverError::io("create", &media, source))?;
    let secrets = secrets(data_dir, config.shared_secret.as_deref())?;
    let signing_key = data_dir.join("signing.key");
    if !signing_key.is_file() {
        let program = venv.join("bin/generate_signing_key");
        let output = Command::new(&program)
            .arg("-o")
            .arg(&signing_key)
            .output()
            .map_err(|source| HomeserverError::Tool {
                program: program.display().to_string(),
                detail: source.to_string(),
            })?;
        if !output.status.success() {
            return Err(HomeserverError::Tool {
                program: program.display().to_string(),
                detail: output_detail(&output),
            });
        }
    }
    let log_config = data_dir.join("log.yaml");
    write_private(&log_config, &log_yaml(data_dir, &config.log_level))?;
    let homeserver = data_dir.join("homeserver.yaml");
    write_private(
        &homeserver,
        &homeserver_yaml(
            &config.server_name,
            port,
            data_dir,
            &secrets,
            config.registration_requires_token,
        ),
    )?;
    Ok(Written {
        config: homeserver,
        shared_secret: secrets.registration,
    })
}

/// Loads `DATA_DIR/secrets.json`, creating it with random values on first use; `shared_secret`
/// replaces the stored registration secret.
fn secrets(data_dir: &Path, shared_secret: Option<&str>) -> Result<Secrets, HomeserverError> {
    let path = data_dir.join("secrets.json");
    let stored: Option<Value> = fs::read_to_string(&path)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok());
    let field = |name: &str| -> Option<String> {
        stored
            .as_ref()
            .and_then(|value| value.get(name))
            .and_then(Value::as_str)
            .filter(|value| !value.is_empty())
            .map(str::to_owned)
    };
    let secrets = Secrets {
        registration: match shared_secret {
            Some(secret) => secret.to_owned(),
            None => field("registration_shared_secret").map_or_else(random_hex, Ok)?,
        },
        macaroon: field("macaroon_secret_key").map_or_else(random_hex, Ok)?,
        form: field("form_secret").map_or_else(random_hex, Ok)?,
    };
    let json = serde_json::json!({
        "registration_shared_secret": secrets.registration,
        "macaroon_secret_key": secrets.macaroon,
        "form_secret": secrets.form,
    });
    write_private(&path, &format!("{json:#}\n"))?;
    Ok(secrets)
}

/// 32 random bytes from the kernel, as hex.
pub(crate) fn random_hex() -> Result<String, HomeserverError> {
    let mut bytes = [0_u8; 32];
    fs::File::open("/dev/urandom")
        .and_then(|mut file| file.read_exact(&mut bytes))
        .map_err(|source| HomeserverError::io("read", "/dev/urandom", source))?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// Writes `contents` to `path` readable by the owner only (the files hold secrets).
fn write_private(path: &Path, contents: &str) -> Result<(), HomeserverError> {
    let temporary = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut file = fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)?;
        std::io::Write::write_all(&mut file, contents.as_bytes())?;
        fs::rename(&temporary, path)
    };
    write().map_err(|source| HomeserverError::io("write", path, source))
}

/// A YAML scalar: JSON strings are valid YAML and escape everything that matters.
fn quote(text: &str) -> String {
    Value::String(text.to_owned()).to_string()
}

fn path_quote(path: &Path) -> String {
    quote(&path.to_string_lossy())
}

/// The rate limiters Synapse 1.163 knows, each relaxed to [`RELAXED`]; a limiter with sub-keys
/// lists them. Tests hammer the server (many logins, rooms, joins, messages per second) and must
/// never see a 429. (`rc_federation` and `rc_remote_media_downloads` only limit federation, which
/// these instances do not serve.)
const RATE_LIMITERS: &[(&str, &[&str])] = &[
    ("rc_message", &[]),
    ("rc_registration", &[]),
    ("rc_registration_token_validity", &[]),
    ("rc_login", &["address", "account", "failed_attempts"]),
    ("rc_joins", &["local", "remote"]),
    ("rc_joins_per_room", &[]),
    ("rc_invites", &["per_room", "per_user", "per_issuer"]),
    ("rc_third_party_invite", &[]),
    ("rc_3pid_validation", &[]),
    ("rc_admin_redaction", &[]),
    ("rc_media_create", &[]),
    ("rc_presence", &["per_user"]),
    ("rc_delayed_event_mgmt", &[]),
    ("rc_room_creation", &[]),
    ("rc_reports", &[]),
    ("rc_user_directory", &[]),
    ("rc_profile", &[]),
    ("rc_key_requests", &[]),
];

const RELAXED: &str = "{per_second: 100000, burst_count: 100000}";

fn homeserver_yaml(
    server_name: &str,
    port: u16,
    data_dir: &Path,
    secrets: &Secrets,
    registration_requires_token: bool,
) -> String {
    let mut limits = String::new();
    for (name, parts) in RATE_LIMITERS {
        if parts.is_empty() {
            limits.push_str(&format!("{name}: {RELAXED}\n"));
        } else {
            limits.push_str(&format!("{name}:\n"));
            for part in *parts {
                limits.push_str(&format!("  {part}: {RELAXED}\n"));
            }
        }
    }
    format!(
        "# Written by bureau::homeserver on every start; edit src/homeserver/config.rs, not this.
server_name: {server_name}
public_baseurl: {public_baseurl}
report_stats: false
listeners:
  - port: {port}
    bind_addresses: ['127.0.0.1']
    type: http
    tls: false
    x_forwarded: false
    resources:
      - names: [client]  # client API, /_synapse/admin and media; no federation
        compress: false
database:
  name: sqlite3
  args:
    database: {database}
log_config: {log_config}
media_store_path: {media}
signing_key_path: {signing_key}
registration_shared_secret: {registration}
macaroon_secret_key: {macaroon}
form_secret: {form}
{registration_mode}
# No federation, no key servers, no phoning home.
federation_domain_whitelist: []
trusted_key_servers: []
suppress_key_server_warning: true
allow_public_rooms_over_federation: false
url_preview_enabled: false
enable_metrics: false
# Features the tests rely on.
presence:
  enabled: true
user_directory:
  search_all_users: true
# Rate limits relaxed: tests must never see a 429.
{limits}",
        server_name = quote(server_name),
        public_baseurl = quote(&format!("http://127.0.0.1:{port}/")),
        database = path_quote(&data_dir.join("homeserver.db")),
        log_config = path_quote(&data_dir.join("log.yaml")),
        media = path_quote(&data_dir.join("media_store")),
        signing_key = path_quote(&data_dir.join("signing.key")),
        registration = quote(&secrets.registration),
        macaroon = quote(&secrets.macaroon),
        form = quote(&secrets.form),
        registration_mode = if registration_requires_token {
            "enable_registration: true\nregistration_requires_token: true"
        } else {
            "enable_registration: false"
        },
    )
}

fn log_yaml(data_dir: &Path, level: &str) -> String {
    format!(
        "version: 1
formatters:
  precise:
    format: '%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(request)s - %(message)s'
handlers:
  file:
    class: logging.FileHandler
    formatter: precise
    filename: {log}
    encoding: utf8
loggers:
  synapse.storage.SQL:
    level: WARNING
  twisted:
    level: WARNING
root:
  level: {level}
  handlers: [file]
disable_existing_loggers: false
",
        log = path_quote(&data_dir.join("homeserver.log")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets() -> Secrets {
        Secrets {
            registration: "reg\"secret".to_owned(),
            macaroon: "m".to_owned(),
            form: "f".to_owned(),
        }
    }

    #[test]
    fn listens_on_loopback_with_the_client_resource_only() {
        let yaml = homeserver_yaml("bureau.local", 6167, Path::new("/d"), &secrets(), false);
        assert!(yaml.contains("  - port: 6167\n    bind_addresses: ['127.0.0.1']\n"));
        assert!(yaml.contains("names: [client]"));
        assert!(!yaml.contains("federation]"));
        assert!(yaml.contains("enable_registration: false\n"));
        assert!(yaml.contains("trusted_key_servers: []\n"));
        assert!(yaml.contains("report_stats: false\n"));
        assert!(yaml.contains("presence:\n  enabled: true\n"));
        assert!(yaml.contains("registration_shared_secret: \"reg\\\"secret\"\n"));
    }

    #[test]
    fn relaxes_every_rate_limiter() {
        let yaml = homeserver_yaml("bureau.local", 1, Path::new("/d"), &secrets(), false);
        for (name, parts) in RATE_LIMITERS {
            if parts.is_empty() {
                assert!(yaml.contains(&format!("\n{name}: {RELAXED}\n")), "{name}");
            } else {
                for part in *parts {
                    assert!(
                        yaml.contains(&format!("\n  {part}: {RELAXED}\n")),
                        "{name}.{part}"
                    );
                }
            }
        }
        let expected: usize = RATE_LIMITERS
            .iter()
            .map(|(_, parts)| parts.len().max(1))
            .sum();
        assert_eq!(yaml.matches("per_second: 100000").count(), expected);
    }

    #[test]
    fn refuses_bad_values() {
        let bad_name = HomeserverConfig {
            server_name: "bad name\n".to_owned(),
            ..HomeserverConfig::default()
        };
        assert!(bad_name.validate().is_err());
        let bad_level = HomeserverConfig {
            log_level: "LOUD".to_owned(),
            ..HomeserverConfig::default()
        };
        assert!(bad_level.validate().is_err());
        assert!(HomeserverConfig::default().validate().is_ok());
    }

    #[test]
    fn debug_hides_the_shared_secret() {
        let config = HomeserverConfig {
            shared_secret: Some("hunter2".to_owned()),
            ..HomeserverConfig::default()
        };
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
