//! A principal's credential bundle (`m.bureau.credentials`, state key = the principal's
//! localpart, in the machine's config room).
//!
//! Invariant: the event holds only ciphertext. The plaintext — a flat JSON map
//! `{"NAME": "value"}` — is age-encrypted to the machine's key (and any escrow keys) and is
//! decrypted only by the launcher. The key *names* are in clear so operators and the daemon can
//! see which credentials a principal has without being able to read them.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::age::{AgeRecipientError, validate_age_recipient};

/// The bundle format this Bureau reads and writes.
///
/// Example: `{"version": 1, …}`.
pub const CREDENTIALS_VERSION: u32 = 1;

/// The credential that carries a principal's own Matrix access token (put in its bundle by
/// `bureau agent create`). The launcher hands it to the principal's proxy as its Matrix identity
/// instead of offering it as an injectable credential.
///
/// Example: the bundle of every principal made by `agent create` lists `MATRIX_ACCESS_TOKEN`.
pub const MATRIX_TOKEN_CREDENTIAL: &str = "MATRIX_ACCESS_TOKEN";

/// The first line of an ASCII-armored age file.
///
/// Example: `age -a -r age1… < bundle.json` starts its output with this line.
pub const AGE_ARMOR_HEADER: &str = "-----BEGIN AGE ENCRYPTED FILE-----";

/// The last line of an ASCII-armored age file.
///
/// Example: the armored output of `age -a` ends with this line (and a newline).
pub const AGE_ARMOR_FOOTER: &str = "-----END AGE ENCRYPTED FILE-----";

/// An age-encrypted credential bundle for one principal.
///
/// Example:
/// ```json
/// {"version": 1,
///  "recipients": ["age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"],
///  "key_names": ["GITHUB_TOKEN", "OPENAI_API_KEY"],
///  "ciphertext": "-----BEGIN AGE ENCRYPTED FILE-----\nYWdl…\n-----END AGE ENCRYPTED FILE-----\n",
///  "updated_at": 1718000000000}
/// ```
///
/// ```
/// use bureau::schema::Credentials;
///
/// let bundle: Credentials = serde_json::from_str(r#"{"version": 1,
///     "recipients": ["age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"],
///     "key_names": ["OPENAI_API_KEY"],
///     "ciphertext": "-----BEGIN AGE ENCRYPTED FILE-----\nYWdl\n-----END AGE ENCRYPTED FILE-----\n",
///     "updated_at": 1718000000000}"#)?;
/// bundle.validate()?;
/// assert_eq!(bundle.key_names, ["OPENAI_API_KEY"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// The bundle format, [`CREDENTIALS_VERSION`].
    pub version: u32,
    /// The age recipients the bundle is encrypted to: the machine's key, plus escrow keys.
    pub recipients: Vec<String>,
    /// The names of the credentials inside, in clear (`[A-Z0-9_]+`).
    #[serde(default)]
    pub key_names: Vec<String>,
    /// The ASCII-armored age ciphertext of the JSON map `{"NAME": "value"}`.
    pub ciphertext: String,
    /// When the bundle was written, in milliseconds since the Unix epoch.
    #[serde(default)]
    pub updated_at: u64,
}

/// Why a [`Credentials`] bundle cannot be used. Messages never contain a secret: they name
/// recipients and key names, which are public, and never quote the ciphertext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    /// A format version this Bureau does not read.
    ///
    /// Example: `2` → `credentials: version 2 is not supported (this Bureau reads version 1);
    /// upgrade Bureau on this machine, or re-provision the bundle with this Bureau`.
    #[error(
        "credentials: version {version} is not supported (this Bureau reads version {supported}); \
         upgrade Bureau on this machine, or re-provision the bundle with this Bureau"
    )]
    UnsupportedVersion {
        /// The bundle's version.
        version: u32,
        /// [`CREDENTIALS_VERSION`].
        supported: u32,
    },

    /// No recipients.
    ///
    /// Example: → `credentials: recipients is empty; encrypt the bundle to at least the
    /// machine's key (its m.bureau.machine_key event)`.
    #[error(
        "credentials: recipients is empty; encrypt the bundle to at least the machine's key (its \
         m.bureau.machine_key event)"
    )]
    NoRecipients,

    /// A recipient that is not an age recipient.
    ///
    /// Example: → `credentials: recipients[1]: age recipient "age1xyz": is 7 bytes long, …`.
    #[error("credentials: recipients[{index}]: {reason}")]
    BadRecipient {
        /// The recipient's index.
        index: usize,
        /// What is wrong with it.
        reason: AgeRecipientError,
    },

    /// A key name outside `[A-Z0-9_]+`.
    ///
    /// Example: `"openai-key"` → `credentials: key_names[0] "openai-key" is not a credential
    /// name; names use only A-Z, 0-9 and '_' (write "OPENAI_KEY")`.
    #[error(
        "credentials: key_names[{index}] {name:?} is not a credential name; names use only A-Z, \
         0-9 and '_' (write {suggestion:?})"
    )]
    BadKeyName {
        /// The name's index.
        index: usize,
        /// The name as given.
        name: String,
        /// A valid name close to it.
        suggestion: String,
    },

    /// A key name listed twice.
    ///
    /// Example: → `credentials: key name "OPENAI_API_KEY" is listed twice in key_names; list
    /// each credential once`.
    #[error(
        "credentials: key name {name:?} is listed twice in key_names; list each credential once"
    )]
    DuplicateKeyName {
        /// The name.
        name: String,
    },

    /// The ciphertext is not ASCII-armored age.
    ///
    /// Example: → `credentials: ciphertext does not start with "-----BEGIN AGE ENCRYPTED
    /// FILE-----"; encrypt with ASCII armor (age --armor) and store the whole output`.
    #[error(
        "credentials: ciphertext does not start with {AGE_ARMOR_HEADER:?}; encrypt with ASCII \
         armor (age --armor) and store the whole output"
    )]
    NotArmored,

    /// The ciphertext's armor is not closed.
    ///
    /// Example: → `credentials: ciphertext does not end with "-----END AGE ENCRYPTED
    /// FILE-----"; it was cut short, store the whole output of age --armor`.
    #[error(
        "credentials: ciphertext does not end with {AGE_ARMOR_FOOTER:?}; it was cut short, store \
         the whole output of age --armor"
    )]
    Truncated,
}

/// Whether `name` is a credential name: non-empty, only `A-Z`, `0-9` and `_`.
///
/// Example: `OPENAI_API_KEY` → `true`; `openai-key` → `false`.
///
/// ```
/// use bureau::schema::is_credential_name;
///
/// assert!(is_credential_name("OPENAI_API_KEY"));
/// assert!(!is_credential_name("openai-key"));
/// assert!(!is_credential_name(""));
/// ```
pub fn is_credential_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|byte| byte.is_ascii_uppercase() || byte.is_ascii_digit() || byte == b'_')
}

/// A credential name close to `name`: upper-cased, every other character replaced by `_`.
///
/// Example: `openai-key` → `OPENAI_KEY`.
pub(super) fn suggest_credential_name(name: &str) -> String {
    let suggestion: String = name
        .chars()
        .map(|character| {
            let upper = character.to_ascii_uppercase();
            if upper.is_ascii_uppercase() || upper.is_ascii_digit() {
                upper
            } else {
                '_'
            }
        })
        .collect();
    if suggestion.is_empty() {
        "API_KEY".to_owned()
    } else {
        suggestion
    }
}

impl Credentials {
    /// Checks the version, the recipients (at least one, each `age1…`), the key names
    /// (`[A-Z0-9_]+`, each once) and that the ciphertext is a complete armored age file.
    ///
    /// Example: a ciphertext in binary age format → `Err(credentials: ciphertext does not start
    /// with "-----BEGIN AGE ENCRYPTED FILE-----"; …)`.
    ///
    /// ```
    /// use bureau::schema::Credentials;
    ///
    /// let bundle = Credentials {
    ///     version: 1,
    ///     recipients: vec![],
    ///     key_names: vec!["TOKEN".into()],
    ///     ciphertext: "-----BEGIN AGE ENCRYPTED FILE-----\n-----END AGE ENCRYPTED FILE-----\n".into(),
    ///     updated_at: 0,
    /// };
    /// assert!(bundle.validate().unwrap_err().to_string().contains("recipients is empty"));
    /// ```
    pub fn validate(&self) -> Result<(), CredentialsError> {
        if self.version != CREDENTIALS_VERSION {
            return Err(CredentialsError::UnsupportedVersion {
                version: self.version,
                supported: CREDENTIALS_VERSION,
            });
        }
        if self.recipients.is_empty() {
            return Err(CredentialsError::NoRecipients);
        }
        for (index, recipient) in self.recipients.iter().enumerate() {
            validate_age_recipient(recipient)
                .map_err(|reason| CredentialsError::BadRecipient { index, reason })?;
        }
        let mut seen = HashSet::new();
        for (index, name) in self.key_names.iter().enumerate() {
            if !is_credential_name(name) {
                return Err(CredentialsError::BadKeyName {
                    index,
                    name: name.clone(),
                    suggestion: suggest_credential_name(name),
                });
            }
            if !seen.insert(name.as_str()) {
                return Err(CredentialsError::DuplicateKeyName { name: name.clone() });
            }
        }
        let armored = self.ciphertext.trim();
        if !armored.starts_with(AGE_ARMOR_HEADER) {
            return Err(CredentialsError::NotArmored);
        }
        if !armored.ends_with(AGE_ARMOR_FOOTER) {
            return Err(CredentialsError::Truncated);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::age::tests::{ESCROW_RECIPIENT, RECIPIENT};
    use super::super::test_support::{parse_error, round_trip, tolerates_unknown_fields};
    use super::*;

    const CIPHERTEXT: &str = "-----BEGIN AGE ENCRYPTED FILE-----\n\
        YWdlLWVuY3J5cHRpb24ub3JnL3YxCi0+IFgyNTUxOSBhYmMK\n\
        -----END AGE ENCRYPTED FILE-----\n";

    fn bundle_json() -> serde_json::Value {
        json!({
            "version": 1,
            "recipients": [RECIPIENT, ESCROW_RECIPIENT],
            "key_names": ["GITHUB_TOKEN", "OPENAI_API_KEY"],
            "ciphertext": CIPHERTEXT,
            "updated_at": 1_718_000_000_000_u64
        })
    }

    fn bundle() -> Credentials {
        serde_json::from_value(bundle_json()).unwrap()
    }

    fn error_text(bundle: &Credentials) -> String {
        bundle.validate().unwrap_err().to_string()
    }

    #[test]
    fn round_trips_and_validates() {
        let bundle: Credentials = round_trip(bundle_json());
        bundle.validate().unwrap();
        assert_eq!(bundle.recipients.len(), 2);
        tolerates_unknown_fields::<Credentials>(bundle_json());
    }

    #[test]
    fn requires_version_recipients_and_ciphertext() {
        for missing in ["version", "recipients", "ciphertext"] {
            let mut json = bundle_json();
            json.as_object_mut().unwrap().remove(missing);
            let error = parse_error::<Credentials>(json);
            assert!(
                error.contains(&format!("missing field `{missing}`")),
                "{error}"
            );
        }
    }

    #[test]
    fn refuses_another_version() {
        let mut bundle = bundle();
        bundle.version = 2;
        assert_eq!(
            error_text(&bundle),
            "credentials: version 2 is not supported (this Bureau reads version 1); upgrade \
             Bureau on this machine, or re-provision the bundle with this Bureau"
        );
    }

    #[test]
    fn refuses_a_bundle_without_recipients() {
        let mut bundle = bundle();
        bundle.recipients.clear();
        assert_eq!(
            error_text(&bundle),
            "credentials: recipients is empty; encrypt the bundle to at least the machine's key \
             (its m.bureau.machine_key event)"
        );
    }

    #[test]
    fn refuses_a_recipient_that_is_not_an_age_key() {
        let mut bundle = bundle();
        bundle.recipients[1] = "age1xyz".to_owned();
        assert_eq!(
            error_text(&bundle),
            "credentials: recipients[1]: age recipient \"age1xyz\": is 7 bytes long, but an age \
             X25519 recipient is 62; copy the whole key"
        );
    }

    #[test]
    fn refuses_a_key_name_outside_the_alphabet() {
        let mut bundle = bundle();
        bundle.key_names[0] = "openai-key".to_owned();
        assert_eq!(
            error_text(&bundle),
            "credentials: key_names[0] \"openai-key\" is not a credential name; names use only \
             A-Z, 0-9 and '_' (write \"OPENAI_KEY\")"
        );
        bundle.key_names[0] = String::new();
        assert!(error_text(&bundle).contains("key_names[0] \"\" is not a credential name"));
    }

    #[test]
    fn refuses_a_key_name_listed_twice() {
        let mut bundle = bundle();
        bundle.key_names.push("GITHUB_TOKEN".to_owned());
        assert_eq!(
            error_text(&bundle),
            "credentials: key name \"GITHUB_TOKEN\" is listed twice in key_names; list each \
             credential once"
        );
    }

    #[test]
    fn refuses_unarmored_ciphertext() {
        let mut bundle = bundle();
        bundle.ciphertext = "age-encryption.org/v1\n-> X25519 abc\n".to_owned();
        assert_eq!(
            error_text(&bundle),
            "credentials: ciphertext does not start with \"-----BEGIN AGE ENCRYPTED FILE-----\"; \
             encrypt with ASCII armor (age --armor) and store the whole output"
        );
    }

    #[test]
    fn refuses_truncated_ciphertext() {
        let mut bundle = bundle();
        bundle.ciphertext = "-----BEGIN AGE ENCRYPTED FILE-----\nYWdl".to_owned();
        assert_eq!(
            error_text(&bundle),
            "credentials: ciphertext does not end with \"-----END AGE ENCRYPTED FILE-----\"; it \
             was cut short, store the whole output of age --armor"
        );
    }

    #[test]
    fn suggests_credential_names() {
        assert_eq!(suggest_credential_name("openai-key"), "OPENAI_KEY");
        assert_eq!(suggest_credential_name("gh.token2"), "GH_TOKEN2");
        assert_eq!(suggest_credential_name(""), "API_KEY");
    }
}
