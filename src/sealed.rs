//! Sealed credential bundles: the machine's age X25519 key ([`MachineKey`]), and sealing
//! ([`seal`]) and opening ([`open`]) the `m.bureau.credentials` bundles encrypted to it.
//!
//! Invariant: plaintext exists only inside [`Secret`]s and short-lived buffers that are zeroed
//! before they are dropped; the machine's secret key lives only in its 0600 file and in memory.
//! No error, log line or `Debug` output contains a secret value, the secret key or ciphertext:
//! errors name paths, recipients and credential names, which are public.
//!
//! The plaintext of a bundle is the flat JSON map `{"NAME": "value"}` (ARCHITECTURE §7),
//! encrypted with age to every recipient (the machine's key, plus escrow keys) and ASCII-armored.
//!
//! Example:
//! ```
//! use std::collections::BTreeMap;
//! use bureau::sealed::{MachineKey, open, seal};
//! use bureau::secret::Secret;
//!
//! let machine = MachineKey::generate();
//! let mut values = BTreeMap::new();
//! values.insert("OPENAI_API_KEY".to_owned(), Secret::from_string("sk-example".to_owned()));
//! let bundle = seal(&values, &[machine.recipient()])?;
//! assert_eq!(bundle.key_names, ["OPENAI_API_KEY"]);
//! let opened = open(&bundle, &machine)?;
//! assert!(opened["OPENAI_API_KEY"].constant_time_eq(b"sk-example"));
//! # Ok::<(), bureau::sealed::SealError>(())
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use age::armor::{ArmoredReader, ArmoredWriter, Format};
use age::secrecy::ExposeSecret;
use serde::de::{self, Deserialize, Deserializer, Visitor};

use crate::schema::{
    AgeRecipientError, CREDENTIALS_VERSION, Credentials, CredentialsError, is_credential_name,
    validate_age_recipient,
};
use crate::secret::Secret;

/// The prefix of an age X25519 secret key, as written to the machine's key file.
///
/// Example: `AGE-SECRET-KEY-1QQPQ…` (never print one).
pub const AGE_SECRET_KEY_PREFIX: &str = "AGE-SECRET-KEY-1";

/// A machine's age X25519 keypair. Credential bundles for the machine are encrypted to its
/// [`recipient`](MachineKey::recipient), published as `m.bureau.machine_key`; only the launcher
/// holds the secret half.
///
/// `Debug` shows the public recipient and never the secret key.
///
/// Example:
/// ```
/// use bureau::sealed::MachineKey;
///
/// let key = MachineKey::generate();
/// assert!(key.recipient().starts_with("age1"));
/// assert!(!format!("{key:?}").contains("AGE-SECRET-KEY"));
/// ```
pub struct MachineKey {
    identity: age::x25519::Identity,
}

impl fmt::Debug for MachineKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("MachineKey")
            .field("recipient", &self.recipient())
            .field("identity", &format_args!("[redacted]"))
            .finish()
    }
}

impl MachineKey {
    /// A fresh keypair from the operating system's random source.
    ///
    /// Example: `MachineKey::generate().recipient()` → `"age1…"` (62 bytes).
    pub fn generate() -> MachineKey {
        MachineKey {
            identity: age::x25519::Identity::generate(),
        }
    }

    /// The public key, `age1…`: what bundles for this machine are encrypted to.
    ///
    /// Example: → `"age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"`.
    pub fn recipient(&self) -> String {
        self.identity.to_public().to_string()
    }

    /// Writes the secret key to a new file at `path`, mode 0600, in the format of
    /// `age-keygen` (a `# public key: age1…` comment, then `AGE-SECRET-KEY-1…`). The parent
    /// directory is created with mode 0700 if missing. An existing file is never replaced.
    ///
    /// Example: `/var/lib/bureau/machine.key` already exists → `Err(machine key
    /// /var/lib/bureau/machine.key already exists: this machine already has a key; …)`.
    ///
    /// ```
    /// use bureau::sealed::MachineKey;
    ///
    /// let directory = tempfile::tempdir()?;
    /// let path = directory.path().join("state/machine.key");
    /// let key = MachineKey::generate();
    /// key.write_new(&path)?;
    /// assert_eq!(MachineKey::load(&path)?.recipient(), key.recipient());
    /// assert!(key.write_new(&path).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn write_new(&self, path: &Path) -> Result<(), SealError> {
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(|source| SealError::KeyDirectory {
                    path: parent.to_owned(),
                    source,
                })?;
        }
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|source| {
                if source.kind() == io::ErrorKind::AlreadyExists {
                    SealError::KeyExists {
                        path: path.to_owned(),
                    }
                } else {
                    SealError::KeyWrite {
                        path: path.to_owned(),
                        source,
                    }
                }
            })?;
        let text = self.key_file_text();
        let written = file
            .set_permissions(std::fs::Permissions::from_mode(0o600))
            .and_then(|()| file.write_all(text.expose()))
            .and_then(|()| file.sync_all());
        drop(text);
        if let Err(source) = written {
            drop(file);
            let _ = std::fs::remove_file(path);
            return Err(SealError::KeyWrite {
                path: path.to_owned(),
                source,
            });
        }
        Ok(())
    }

    /// The key file's contents, held in a [`Secret`] (the intermediate strings are zeroed).
    fn key_file_text(&self) -> Secret {
        let secret_key = self.identity.to_string();
        let recipient = self.recipient();
        let exposed = secret_key.expose_secret();
        let mut text = String::with_capacity(recipient.len() + exposed.len() + 32);
        text.push_str("# public key: ");
        text.push_str(&recipient);
        text.push('\n');
        text.push_str(exposed);
        text.push('\n');
        Secret::from_string(text)
    }

    /// Reads the secret key from `path`. The file must not be readable or writable by group or
    /// others; it may hold `#` comment lines, as `age-keygen` writes.
    ///
    /// Example: a key file with mode 0644 → `Err(machine key /var/lib/bureau/machine.key has
    /// mode 0644, which lets group or others access it; run `chmod 600 …`)`.
    ///
    /// ```
    /// use std::os::unix::fs::PermissionsExt;
    /// use bureau::sealed::MachineKey;
    ///
    /// let directory = tempfile::tempdir()?;
    /// let path = directory.path().join("machine.key");
    /// MachineKey::generate().write_new(&path)?;
    /// std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
    /// assert!(MachineKey::load(&path).unwrap_err().to_string().contains("chmod 600"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn load(path: &Path) -> Result<MachineKey, SealError> {
        let read_error = |source| SealError::KeyRead {
            path: path.to_owned(),
            source,
        };
        let mut file = File::open(path).map_err(read_error)?;
        let metadata = file.metadata().map_err(read_error)?;
        let mode = metadata.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(SealError::KeyPermissions {
                path: path.to_owned(),
                mode,
            });
        }
        // The key file is small; reserve enough that reading never reallocates (which would
        // leave an unzeroed copy behind).
        let capacity = usize::try_from(metadata.len()).unwrap_or(0).min(64 * 1024) + 64;
        let mut buffer = Vec::with_capacity(capacity);
        let read = file.read_to_end(&mut buffer);
        let text = Secret::new(buffer);
        read.map_err(read_error)?;
        let identity = text
            .expose_str()
            .and_then(|text| {
                text.lines()
                    .map(str::trim)
                    .find(|line| !line.is_empty() && !line.starts_with('#'))
            })
            .filter(|line| line.starts_with(AGE_SECRET_KEY_PREFIX))
            .and_then(|line| line.parse::<age::x25519::Identity>().ok())
            .ok_or_else(|| SealError::KeyInvalid {
                path: path.to_owned(),
            })?;
        Ok(MachineKey { identity })
    }

    /// Loads the key at `path`, or generates one and writes it there if there is no file.
    /// Returns the key and whether it was created.
    ///
    /// Example: first boot → `(key, true)`; every later boot → `(the same key, false)`.
    ///
    /// ```
    /// use bureau::sealed::MachineKey;
    ///
    /// let directory = tempfile::tempdir()?;
    /// let path = directory.path().join("machine.key");
    /// let (first, created) = MachineKey::load_or_generate(&path)?;
    /// assert!(created);
    /// let (again, created) = MachineKey::load_or_generate(&path)?;
    /// assert!(!created);
    /// assert_eq!(first.recipient(), again.recipient());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn load_or_generate(path: &Path) -> Result<(MachineKey, bool), SealError> {
        match MachineKey::load(path) {
            Ok(key) => return Ok((key, false)),
            Err(SealError::KeyRead { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
        let key = MachineKey::generate();
        match key.write_new(path) {
            Ok(()) => Ok((key, true)),
            // Another process wrote a key between our read and our write: use that one.
            Err(SealError::KeyExists { .. }) => Ok((MachineKey::load(path)?, false)),
            Err(error) => Err(error),
        }
    }
}

/// Why a key could not be written or read, or a bundle sealed or opened. Messages name paths,
/// recipients and credential names; never a secret value, the secret key or ciphertext.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The machine already has a key file.
    ///
    /// Example: → `machine key /var/lib/bureau/machine.key already exists: this machine already
    /// has a key; load it instead, or move the file away to give the machine a new key (bundles
    /// sealed to the old key then need re-provisioning)`.
    #[error(
        "machine key {} already exists: this machine already has a key; load it instead, or \
         move the file away to give the machine a new key (bundles sealed to the old key then \
         need re-provisioning)",
        path.display()
    )]
    KeyExists {
        /// The key file.
        path: PathBuf,
    },

    /// The key's directory could not be created.
    ///
    /// Example: → `machine key directory /var/lib/bureau: cannot create it: Permission denied
    /// (os error 13); run as the bureau user, or create it with mode 0700`.
    #[error(
        "machine key directory {}: cannot create it: {source}; run as the bureau user, or create \
         it with mode 0700",
        path.display()
    )]
    KeyDirectory {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },

    /// The key file could not be written (a partial file is removed).
    ///
    /// Example: → `machine key /var/lib/bureau/machine.key: cannot write it: No space left on
    /// device (os error 28)`.
    #[error("machine key {}: cannot write it: {source}", path.display())]
    KeyWrite {
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },

    /// The key file could not be read.
    ///
    /// Example: → `machine key /var/lib/bureau/machine.key: cannot read it: No such file or
    /// directory (os error 2)`.
    #[error("machine key {}: cannot read it: {source}", path.display())]
    KeyRead {
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },

    /// The key file is accessible to group or others.
    ///
    /// Example: mode 0644 → `machine key /var/lib/bureau/machine.key has mode 0644, which lets
    /// group or others access it; run `chmod 600 /var/lib/bureau/machine.key` (and consider the
    /// key exposed if others could read it)`.
    #[error(
        "machine key {} has mode {mode:04o}, which lets group or others access it; run `chmod 600 \
         {}` (and consider the key exposed if others could read it)",
        path.display(),
        path.display()
    )]
    KeyPermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },

    /// The key file does not hold an age X25519 secret key. The contents are never quoted.
    ///
    /// Example: → `machine key /var/lib/bureau/machine.key does not hold an age X25519 secret
    /// key (a line AGE-SECRET-KEY-1…); restore it from backup, or move it away to generate a new
    /// one`.
    #[error(
        "machine key {} does not hold an age X25519 secret key (a line {AGE_SECRET_KEY_PREFIX}…); \
         restore it from backup, or move it away to generate a new one",
        path.display()
    )]
    KeyInvalid {
        /// The key file.
        path: PathBuf,
    },

    /// A credential name outside `[A-Z0-9_]+`.
    ///
    /// Example: `"openai-key"` → `credential name "openai-key" is not a credential name; names
    /// use only A-Z, 0-9 and '_' (like OPENAI_API_KEY)`.
    #[error(
        "credential name {name:?} is not a credential name; names use only A-Z, 0-9 and '_' \
         (like OPENAI_API_KEY)"
    )]
    BadCredentialName {
        /// The name as given.
        name: String,
    },

    /// A credential value that is not UTF-8 text (bundles hold JSON strings).
    ///
    /// Example: → `credential "SSH_KEY" is not UTF-8 text; encode binary credentials (base64)
    /// before sealing them`.
    #[error(
        "credential {name:?} is not UTF-8 text; encode binary credentials (base64) before sealing \
         them"
    )]
    NotText {
        /// The credential's name.
        name: String,
    },

    /// No recipients to seal to.
    ///
    /// Example: → `seal: no recipients; seal to at least the machine's key (its
    /// m.bureau.machine_key event)`.
    #[error(
        "seal: no recipients; seal to at least the machine's key (its m.bureau.machine_key event)"
    )]
    NoRecipients,

    /// A recipient that is not shaped like an age X25519 public key.
    ///
    /// Example: → `seal: recipients[0]: age recipient "age1xyz": is 7 bytes long, …`.
    #[error("seal: recipients[{index}]: {reason}")]
    BadRecipient {
        /// The recipient's index.
        index: usize,
        /// What is wrong with it.
        reason: AgeRecipientError,
    },

    /// A recipient shaped like an age key whose checksum or key bytes are wrong.
    ///
    /// Example: → `seal: recipients[0] "age1…" is not a valid age X25519 public key (bad
    /// checksum?); copy it again from the machine's m.bureau.machine_key event`.
    #[error(
        "seal: recipients[{index}] {recipient:?} is not a valid age X25519 public key (bad \
         checksum?); copy it again from the machine's m.bureau.machine_key event"
    )]
    InvalidRecipient {
        /// The recipient's index.
        index: usize,
        /// The recipient as given.
        recipient: String,
    },

    /// Encryption failed (age's reason; never plaintext).
    ///
    /// Example: → `seal: age encryption failed: …`.
    #[error("seal: age encryption failed: {reason}")]
    Encrypt {
        /// age's reason.
        reason: String,
    },

    /// The bundle is malformed.
    ///
    /// Example: → `credentials: recipients is empty; …`.
    #[error(transparent)]
    Bundle(#[from] CredentialsError),

    /// The bundle was not encrypted to this machine's key.
    ///
    /// Example: → `credential bundle was not sealed to this machine's key age1abc… (it is
    /// sealed to age1def…); re-provision it with `bureau credential provision``.
    #[error(
        "credential bundle was not sealed to this machine's key {machine_recipient} (it is sealed \
         to {}); re-provision it with `bureau credential provision`",
        bundle_recipients.join(", ")
    )]
    NotSealedToThisMachine {
        /// This machine's public key.
        machine_recipient: String,
        /// The recipients the bundle lists.
        bundle_recipients: Vec<String>,
    },

    /// The ciphertext does not decrypt: damaged, truncated or modified.
    ///
    /// Example: → `credential bundle does not decrypt: its payload fails authentication (the
    /// ciphertext was damaged or modified); re-provision it with `bureau credential provision``.
    #[error(
        "credential bundle does not decrypt: {reason}; re-provision it with `bureau credential \
         provision`"
    )]
    Damaged {
        /// What age found wrong, in words that never quote the ciphertext.
        reason: &'static str,
    },

    /// The plaintext is not a flat JSON map of strings. Its contents are never quoted.
    ///
    /// Example: → `credential bundle plaintext is not a flat JSON map {"NAME": "value"} (error
    /// at line 1, column 17); re-provision it with `bureau credential provision``.
    #[error(
        "credential bundle plaintext is not a flat JSON map {{\"NAME\": \"value\"}} (error at line \
         {line}, column {column}); re-provision it with `bureau credential provision`"
    )]
    NotJsonMap {
        /// The line of the first error.
        line: usize,
        /// The column of the first error.
        column: usize,
    },

    /// The decrypted names differ from the bundle's `key_names`.
    ///
    /// Example: → `credential bundle key_names do not match its contents: listed but missing
    /// ["GITHUB_TOKEN"], present but unlisted ["OPENAI_API_KEY"]; re-provision it with `bureau
    /// credential provision``.
    #[error(
        "credential bundle key_names do not match its contents: listed but missing {missing:?}, \
         present but unlisted {unlisted:?}{}; re-provision it with `bureau credential provision`",
        if *unnamed > 0 { format!(" and {unnamed} entries whose names are not credential names") } else { String::new() }
    )]
    KeyNamesMismatch {
        /// Names in `key_names` that the plaintext does not hold.
        missing: Vec<String>,
        /// Credential names the plaintext holds that `key_names` does not list.
        unlisted: Vec<String>,
        /// Plaintext entries whose names are not credential names (not quoted).
        unnamed: usize,
    },
}

/// Encrypts `values` to every recipient: the plaintext is the JSON map `{"NAME": "value"}`,
/// age-encrypted and ASCII-armored. The bundle lists the names in clear (sorted), has version
/// [`CREDENTIALS_VERSION`] and `updated_at` now, and passes [`Credentials::validate`].
///
/// Example: `{"OPENAI_API_KEY": "sk-…"}` to `["age1ql3z…"]` → a bundle with `key_names:
/// ["OPENAI_API_KEY"]` and ciphertext `-----BEGIN AGE ENCRYPTED FILE-----…`; a name
/// `openai-key` → `Err(credential name "openai-key" is not a credential name; …)`.
///
/// ```
/// use std::collections::BTreeMap;
/// use bureau::sealed::{MachineKey, seal};
/// use bureau::secret::Secret;
///
/// let machine = MachineKey::generate();
/// let mut values = BTreeMap::new();
/// values.insert("GITHUB_TOKEN".to_owned(), Secret::from_string("ghp_x".to_owned()));
/// let bundle = seal(&values, &[machine.recipient()])?;
/// bundle.validate()?;
/// assert!(!bundle.ciphertext.contains("ghp_x"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn seal(
    values: &BTreeMap<String, Secret>,
    recipients: &[String],
) -> Result<Credentials, SealError> {
    if recipients.is_empty() {
        return Err(SealError::NoRecipients);
    }
    let mut parsed = Vec::with_capacity(recipients.len());
    for (index, recipient) in recipients.iter().enumerate() {
        validate_age_recipient(recipient)
            .map_err(|reason| SealError::BadRecipient { index, reason })?;
        let key = recipient.parse::<age::x25519::Recipient>().map_err(|_| {
            SealError::InvalidRecipient {
                index,
                recipient: recipient.clone(),
            }
        })?;
        parsed.push(key);
    }
    for (name, value) in values {
        if !is_credential_name(name) {
            return Err(SealError::BadCredentialName { name: name.clone() });
        }
        if value.expose_str().is_none() {
            return Err(SealError::NotText { name: name.clone() });
        }
    }

    let plaintext = plaintext_json(values)?;
    let encrypted = encrypt_armored(plaintext.expose(), &parsed);
    drop(plaintext);
    let ciphertext = encrypted.map_err(|reason| SealError::Encrypt { reason })?;

    let bundle = Credentials {
        version: CREDENTIALS_VERSION,
        recipients: recipients.to_vec(),
        key_names: values.keys().cloned().collect(),
        ciphertext,
        updated_at: crate::schema::now_ms(),
    };
    bundle.validate()?;
    Ok(bundle)
}

/// The JSON map `{"NAME": "value", …}`, written straight into one buffer sized so it never
/// reallocates (a reallocation would leave an unzeroed copy of the secrets behind). What is
/// sealed to a machine, and what the launcher sends a proxy to rotate its credentials.
pub(crate) fn plaintext_json(values: &BTreeMap<String, Secret>) -> Result<Secret, SealError> {
    // Worst case, JSON escapes every byte as `\u00XX` (6 bytes).
    let capacity = values
        .iter()
        .map(|(name, value)| name.len() * 6 + value.len() * 6 + 8)
        .sum::<usize>()
        + 2;
    let mut buffer: Vec<u8> = Vec::with_capacity(capacity);
    let mut written = Ok(());
    buffer.push(b'{');
    for (index, (name, value)) in values.iter().enumerate() {
        if index > 0 {
            buffer.push(b',');
        }
        let Some(text) = value.expose_str() else {
            written = Err(SealError::NotText { name: name.clone() });
            break;
        };
        if serde_json::to_writer(&mut buffer, name).is_err() {
            written = Err(SealError::Encrypt {
                reason: format!("cannot write credential {name:?} as JSON"),
            });
            break;
        }
        buffer.push(b':');
        if serde_json::to_writer(&mut buffer, text).is_err() {
            written = Err(SealError::Encrypt {
                reason: format!("cannot write credential {name:?} as JSON"),
            });
            break;
        }
    }
    buffer.push(b'}');
    // Secret::new zeroes the buffer it takes over, on success and failure alike.
    let plaintext = Secret::new(buffer);
    written.map(|()| plaintext)
}

/// age-encrypts `plaintext` to `recipients`, ASCII-armored. Errors are age's words, which never
/// contain the plaintext.
fn encrypt_armored(
    plaintext: &[u8],
    recipients: &[age::x25519::Recipient],
) -> Result<String, String> {
    let encryptor = age::Encryptor::with_recipients(
        recipients
            .iter()
            .map(|recipient| recipient as &dyn age::Recipient),
    )
    .map_err(|error| error.to_string())?;
    let mut output = Vec::with_capacity(plaintext.len() * 2 + 1024);
    let armored =
        ArmoredWriter::wrap_output(&mut output, Format::AsciiArmor).map_err(|e| e.to_string())?;
    let mut writer = encryptor
        .wrap_output(armored)
        .map_err(|error| error.to_string())?;
    writer.write_all(plaintext).map_err(|e| e.to_string())?;
    writer
        .finish()
        .and_then(ArmoredWriter::finish)
        .map_err(|error| error.to_string())?;
    String::from_utf8(output).map_err(|_| "armored output is not UTF-8".to_owned())
}

/// Decrypts `bundle` with this machine's key and returns its credentials by name. The bundle is
/// validated first, and the decrypted names must equal its `key_names`.
///
/// Example: a bundle sealed to another machine → `Err(credential bundle was not sealed to this
/// machine's key age1… (it is sealed to age1…); re-provision it with `bureau credential
/// provision`)`.
///
/// ```
/// use std::collections::BTreeMap;
/// use bureau::sealed::{MachineKey, open, seal};
/// use bureau::secret::Secret;
///
/// let machine = MachineKey::generate();
/// let other = MachineKey::generate();
/// let mut values = BTreeMap::new();
/// values.insert("TOKEN".to_owned(), Secret::from_string("t0k3n".to_owned()));
/// let bundle = seal(&values, &[other.recipient()])?;
/// let error = open(&bundle, &machine).unwrap_err().to_string();
/// assert!(error.contains("was not sealed to this machine's key"));
/// assert_eq!(open(&bundle, &other)?.len(), 1);
/// # Ok::<(), bureau::sealed::SealError>(())
/// ```
pub fn open(bundle: &Credentials, key: &MachineKey) -> Result<BTreeMap<String, Secret>, SealError> {
    bundle.validate()?;
    let plaintext = decrypt_armored(&bundle.ciphertext, key).map_err(|failure| match failure {
        DecryptFailure::NoMatchingKey => SealError::NotSealedToThisMachine {
            machine_recipient: key.recipient(),
            bundle_recipients: bundle.recipients.clone(),
        },
        DecryptFailure::Damaged(reason) => SealError::Damaged { reason },
    })?;
    let values = serde_json::from_slice::<BTreeMap<String, SecretString>>(plaintext.expose())
        .map_err(|error| SealError::NotJsonMap {
            line: error.line(),
            column: error.column(),
        })?;
    drop(plaintext);
    let values: BTreeMap<String, Secret> = values
        .into_iter()
        .map(|(name, SecretString(value))| (name, value))
        .collect();

    let listed: BTreeSet<&str> = bundle.key_names.iter().map(String::as_str).collect();
    let missing: Vec<String> = listed
        .iter()
        .filter(|name| !values.contains_key(**name))
        .map(|name| (*name).to_owned())
        .collect();
    let unlisted: Vec<String> = values
        .keys()
        .filter(|name| is_credential_name(name) && !listed.contains(name.as_str()))
        .cloned()
        .collect();
    let unnamed = values
        .keys()
        .filter(|name| !is_credential_name(name))
        .count();
    if !missing.is_empty() || !unlisted.is_empty() || unnamed > 0 {
        return Err(SealError::KeyNamesMismatch {
            missing,
            unlisted,
            unnamed,
        });
    }
    Ok(values)
}

/// Why an armored age file did not decrypt.
enum DecryptFailure {
    /// None of the file's recipient stanzas is for this key.
    NoMatchingKey,
    /// The file is malformed or fails authentication.
    Damaged(&'static str),
}

/// Decrypts an armored age file into a [`Secret`]. The buffer is sized so it never reallocates
/// and is zeroed on every path.
fn decrypt_armored(ciphertext: &str, key: &MachineKey) -> Result<Secret, DecryptFailure> {
    let decryptor = age::Decryptor::new_buffered(ArmoredReader::new(ciphertext.as_bytes()))
        .map_err(|error| describe_decrypt_error(&error))?;
    let mut reader = decryptor
        .decrypt(std::iter::once(&key.identity as &dyn age::Identity))
        .map_err(|error| describe_decrypt_error(&error))?;
    // The plaintext is shorter than its armored ciphertext, so this capacity is never filled
    // and reading never reallocates.
    let mut buffer = Vec::with_capacity(ciphertext.len() + 64);
    let read = reader.read_to_end(&mut buffer);
    let plaintext = Secret::new(buffer);
    match read {
        Ok(_) => Ok(plaintext),
        Err(_) => Err(DecryptFailure::Damaged(
            "its payload fails authentication or its armor is malformed (the ciphertext was \
             damaged or modified)",
        )),
    }
}

/// Our words for age's decryption errors (age's own messages are never shown: some quote
/// input).
fn describe_decrypt_error(error: &age::DecryptError) -> DecryptFailure {
    DecryptFailure::Damaged(match error {
        age::DecryptError::NoMatchingKeys => return DecryptFailure::NoMatchingKey,
        age::DecryptError::InvalidHeader => "its age header is malformed",
        age::DecryptError::InvalidMac => {
            "its age header fails authentication (the ciphertext was damaged or modified)"
        }
        age::DecryptError::UnknownFormat => {
            "it is in an age format this Bureau does not know (a newer age version?)"
        }
        age::DecryptError::DecryptionFailed | age::DecryptError::KeyDecryptionFailed => {
            "age could not decrypt it (the ciphertext was damaged or modified)"
        }
        age::DecryptError::ExcessiveWork { .. } => {
            "it is passphrase-encrypted; bundles are sealed to machine keys"
        }
        age::DecryptError::Io(_) => {
            "its armor or age header cannot be read (the ciphertext was damaged or cut short)"
        }
        _ => "age could not decrypt it",
    })
}

/// A JSON string deserialized straight into a [`Secret`].
struct SecretString(Secret);

impl<'de> Deserialize<'de> for SecretString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SecretVisitor;

        impl Visitor<'_> for SecretVisitor {
            type Value = SecretString;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a credential value (a JSON string)")
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<SecretString, E> {
                Ok(SecretString(Secret::new(value.as_bytes().to_vec())))
            }

            fn visit_string<E: de::Error>(self, value: String) -> Result<SecretString, E> {
                Ok(SecretString(Secret::from_string(value)))
            }
        }

        deserializer.deserialize_string(SecretVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET_VALUES: [(&str, &str); 2] = [
        ("GITHUB_TOKEN", "ghp_very_secret_value"),
        ("OPENAI_API_KEY", "sk-\"quoted\"\n\u{e9}-secret"),
    ];

    fn values() -> BTreeMap<String, Secret> {
        SECRET_VALUES
            .iter()
            .map(|(name, value)| ((*name).to_owned(), Secret::from_string((*value).to_owned())))
            .collect()
    }

    fn assert_no_secret(text: &str) {
        for (_, value) in SECRET_VALUES {
            assert!(!text.contains(value), "{text}");
        }
        assert!(!text.contains("ghp_"), "{text}");
        // The prefix alone may be named ("a line AGE-SECRET-KEY-1…"), never a key.
        for (offset, _) in text.match_indices(AGE_SECRET_KEY_PREFIX) {
            let next = text[offset + AGE_SECRET_KEY_PREFIX.len()..].chars().next();
            assert!(!next.is_some_and(|c| c.is_ascii_alphanumeric()), "{text}");
        }
        assert!(!text.contains("BEGIN AGE"), "{text}");
    }

    fn mode_of(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn round_trips_to_several_recipients() {
        let machine = MachineKey::generate();
        let escrow = MachineKey::generate();
        let bundle = seal(&values(), &[machine.recipient(), escrow.recipient()]).unwrap();
        bundle.validate().unwrap();
        assert_eq!(bundle.version, CREDENTIALS_VERSION);
        assert_eq!(bundle.key_names, ["GITHUB_TOKEN", "OPENAI_API_KEY"]);
        assert!(bundle.updated_at > 1_700_000_000_000);
        assert_no_secret(&bundle.ciphertext.replace("BEGIN AGE", ""));
        for key in [&machine, &escrow] {
            let opened = open(&bundle, key).unwrap();
            assert_eq!(opened.len(), 2);
            for (name, value) in SECRET_VALUES {
                assert_eq!(opened[name].expose_str(), Some(value));
            }
        }
    }

    #[test]
    fn round_trips_an_empty_bundle() {
        let machine = MachineKey::generate();
        let bundle = seal(&BTreeMap::new(), &[machine.recipient()]).unwrap();
        assert!(bundle.key_names.is_empty());
        assert!(open(&bundle, &machine).unwrap().is_empty());
    }

    #[test]
    fn refuses_a_bundle_sealed_to_another_machine() {
        let machine = MachineKey::generate();
        let other = MachineKey::generate();
        let bundle = seal(&values(), &[other.recipient()]).unwrap();
        let error = open(&bundle, &machine).unwrap_err();
        assert!(matches!(error, SealError::NotSealedToThisMachine { .. }));
        let text = error.to_string();
        assert_eq!(
            text,
            format!(
                "credential bundle was not sealed to this machine's key {} (it is sealed to {}); \
                 re-provision it with `bureau credential provision`",
                machine.recipient(),
                other.recipient()
            )
        );
        assert_no_secret(&text);
    }

    #[test]
    fn refuses_tampered_ciphertext() {
        let machine = MachineKey::generate();
        let mut bundle = seal(&values(), &[machine.recipient()]).unwrap();
        let mut lines: Vec<String> = bundle.ciphertext.lines().map(str::to_owned).collect();
        // The last body line (before the footer) holds the payload and its tag.
        let body = lines.len() - 2;
        let first = lines[body].as_bytes()[0];
        let replacement = if first == b'A' { "B" } else { "A" };
        lines[body].replace_range(0..1, replacement);
        bundle.ciphertext = lines.join("\n") + "\n";
        let error = open(&bundle, &machine).unwrap_err();
        assert!(matches!(error, SealError::Damaged { .. }), "{error}");
        let text = error.to_string();
        assert!(
            text.starts_with("credential bundle does not decrypt: "),
            "{text}"
        );
        assert!(text.ends_with("re-provision it with `bureau credential provision`"));
        assert_no_secret(&text);
    }

    #[test]
    fn refuses_key_names_that_do_not_match_the_contents() {
        let machine = MachineKey::generate();
        let mut bundle = seal(&values(), &[machine.recipient()]).unwrap();
        bundle.key_names = vec!["GITHUB_TOKEN".to_owned(), "ANTHROPIC_API_KEY".to_owned()];
        let text = open(&bundle, &machine).unwrap_err().to_string();
        assert_eq!(
            text,
            "credential bundle key_names do not match its contents: listed but missing \
             [\"ANTHROPIC_API_KEY\"], present but unlisted [\"OPENAI_API_KEY\"]; re-provision it \
             with `bureau credential provision`"
        );
    }

    #[test]
    fn refuses_plaintext_that_is_not_a_map_of_strings_without_quoting_it() {
        let machine = MachineKey::generate();
        let recipient = machine
            .recipient()
            .parse::<age::x25519::Recipient>()
            .unwrap();
        let ciphertext = encrypt_armored(
            br#"{"GITHUB_TOKEN": ["ghp_very_secret_value"]}"#,
            &[recipient],
        )
        .unwrap();
        let bundle = Credentials {
            version: CREDENTIALS_VERSION,
            recipients: vec![machine.recipient()],
            key_names: vec!["GITHUB_TOKEN".to_owned()],
            ciphertext,
            updated_at: 0,
        };
        let error = open(&bundle, &machine).unwrap_err();
        assert!(
            matches!(error, SealError::NotJsonMap { line: 1, .. }),
            "{error}"
        );
        assert_no_secret(&error.to_string());
    }

    #[test]
    fn refuses_bad_names_and_recipients() {
        let machine = MachineKey::generate();
        let mut bad_name = values();
        bad_name.insert("openai-key".to_owned(), Secret::from_string("x".to_owned()));
        assert_eq!(
            seal(&bad_name, &[machine.recipient()])
                .unwrap_err()
                .to_string(),
            "credential name \"openai-key\" is not a credential name; names use only A-Z, 0-9 \
             and '_' (like OPENAI_API_KEY)"
        );
        assert!(matches!(
            seal(&values(), &[]).unwrap_err(),
            SealError::NoRecipients
        ));
        let error = seal(&values(), &["age1xyz".to_owned()]).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("seal: recipients[0]: age recipient \"age1xyz\""),
            "{error}"
        );
        // Right shape, wrong checksum.
        let mut recipient = machine.recipient();
        let last = recipient.pop().unwrap();
        recipient.push(if last == 'q' { 'p' } else { 'q' });
        let error = seal(&values(), &[recipient.clone()]).unwrap_err();
        assert!(
            matches!(error, SealError::InvalidRecipient { index: 0, .. }),
            "{error}"
        );
        assert!(error.to_string().contains(&recipient));
        let mut binary = values();
        binary.insert("SSH_KEY".to_owned(), Secret::new(vec![0xff, 0xfe]));
        assert!(matches!(
            seal(&binary, &[machine.recipient()]).unwrap_err(),
            SealError::NotText { .. }
        ));
    }

    #[test]
    fn writes_the_key_file_0600_and_never_replaces_it() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("state/machine.key");
        let key = MachineKey::generate();
        key.write_new(&path).unwrap();
        assert_eq!(mode_of(&path), 0o600);
        assert_eq!(mode_of(path.parent().unwrap()), 0o700);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(&format!("# public key: {}\n", key.recipient())));
        assert!(text.contains(AGE_SECRET_KEY_PREFIX));
        assert_eq!(
            MachineKey::load(&path).unwrap().recipient(),
            key.recipient()
        );

        let error = MachineKey::generate().write_new(&path).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "machine key {} already exists: this machine already has a key; load it \
                 instead, or move the file away to give the machine a new key (bundles sealed \
                 to the old key then need re-provisioning)",
                path.display()
            )
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    }

    #[test]
    fn refuses_a_key_file_others_can_read() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("machine.key");
        MachineKey::generate().write_new(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = MachineKey::load(&path).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "machine key {0} has mode 0644, which lets group or others access it; run \
                 `chmod 600 {0}` (and consider the key exposed if others could read it)",
                path.display()
            )
        );
        assert!(matches!(
            MachineKey::load_or_generate(&path).unwrap_err(),
            SealError::KeyPermissions { mode: 0o644, .. }
        ));
    }

    #[test]
    fn refuses_a_key_file_without_a_key_and_never_quotes_it() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("machine.key");
        std::fs::write(&path, "ghp_very_secret_value\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let error = MachineKey::load(&path).unwrap_err();
        assert!(matches!(error, SealError::KeyInvalid { .. }));
        assert_no_secret(&error.to_string());
    }

    #[test]
    fn loads_or_generates_once() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("machine.key");
        let (first, created) = MachineKey::load_or_generate(&path).unwrap();
        assert!(created);
        let (again, created) = MachineKey::load_or_generate(&path).unwrap();
        assert!(!created);
        assert_eq!(first.recipient(), again.recipient());
    }

    #[test]
    fn loads_a_key_written_by_age_keygen() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("machine.key");
        let key = MachineKey::generate();
        let secret = key.identity.to_string();
        let text = format!(
            "# created: 2024-01-01T00:00:00Z\n# public key: {}\n{}\n",
            key.recipient(),
            secret.expose_secret()
        );
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            MachineKey::load(&path).unwrap().recipient(),
            key.recipient()
        );
    }

    #[test]
    fn debug_never_shows_the_secret_key() {
        let key = MachineKey::generate();
        let debug = format!("{key:?}");
        assert_eq!(
            debug,
            format!(
                "MachineKey {{ recipient: {:?}, identity: [redacted] }}",
                key.recipient()
            )
        );
        assert!(!debug.contains(AGE_SECRET_KEY_PREFIX));
        let secret = key.identity.to_string();
        assert!(!debug.contains(secret.expose_secret()));
    }
}
