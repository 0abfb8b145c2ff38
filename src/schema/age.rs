//! age X25519 recipients (`age1…`), as they appear in machine keys and credential bundles.
//!
//! Invariant: a recipient that passes [`validate_age_recipient`] has the shape of an age X25519
//! public key — `age1` followed by 58 lowercase bech32 characters. The bech32 checksum is
//! verified by the encryption code that uses the key; this check catches pasted secrets, typos
//! and the wrong kind of key early, with an error that says which.

/// The prefix of every age X25519 recipient.
///
/// Example: `age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p` starts with it.
pub const AGE_RECIPIENT_PREFIX: &str = "age1";

/// The length in bytes of an age X25519 recipient: `age1` + 52 data + 6 checksum characters.
///
/// Example: `"age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p".len()` → 62.
pub const AGE_RECIPIENT_LEN: usize = 62;

/// The bech32 data alphabet.
const BECH32_CHARSET: &str = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";

/// Why a string is not an age X25519 recipient. Every message names the recipient.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgeRecipientError {
    /// The recipient does not start with `age1`.
    ///
    /// Example: `"AGE-SECRET-KEY-1…"` → `age recipient "AGE-SECRET-KEY-1…": does not start with
    /// "age1"; use the public key (age-keygen -y) …`.
    #[error(
        "age recipient {recipient:?}: does not start with \"age1\"; use an age X25519 public key \
         (`age-keygen -y KEYFILE` prints it), never the secret key"
    )]
    MissingPrefix {
        /// The recipient as given.
        recipient: String,
    },

    /// The recipient has the wrong length.
    ///
    /// Example: `"age1abc"` → `age recipient "age1abc": is 7 bytes long, but an age X25519
    /// recipient is 62; copy the whole key`.
    #[error(
        "age recipient {recipient:?}: is {length} bytes long, but an age X25519 recipient is \
         {expected}; copy the whole key"
    )]
    WrongLength {
        /// The recipient as given.
        recipient: String,
        /// Its length in bytes.
        length: usize,
        /// [`AGE_RECIPIENT_LEN`].
        expected: usize,
    },

    /// A character outside the lowercase bech32 alphabet.
    ///
    /// Example: `"age1…B…"` → `age recipient "age1…B…": character 'B' at byte 9 is not a
    /// lowercase bech32 character (qpzry9x8gf2tvdw0s3jn54khce6mua7l)`.
    #[error(
        "age recipient {recipient:?}: character {character:?} at byte {position} is not a \
         lowercase bech32 character (qpzry9x8gf2tvdw0s3jn54khce6mua7l)"
    )]
    InvalidCharacter {
        /// The recipient as given.
        recipient: String,
        /// The first character that is not allowed.
        character: char,
        /// Its byte offset.
        position: usize,
    },
}

/// Checks that `recipient` has the shape of an age X25519 public key.
///
/// Example: `"age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"` → `Ok`;
/// `"ssh-ed25519 AAAA…"` → `Err(age recipient "ssh-ed25519 AAAA…": does not start with "age1"; …)`.
///
/// ```
/// use bureau::schema::validate_age_recipient;
///
/// assert!(validate_age_recipient("age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p").is_ok());
/// assert!(validate_age_recipient("ssh-ed25519 AAAAC3Nza").is_err());
/// ```
pub fn validate_age_recipient(recipient: &str) -> Result<(), AgeRecipientError> {
    let Some(data) = recipient.strip_prefix(AGE_RECIPIENT_PREFIX) else {
        return Err(AgeRecipientError::MissingPrefix {
            recipient: recipient.to_owned(),
        });
    };
    if let Some((offset, character)) = data
        .char_indices()
        .find(|&(_, character)| !BECH32_CHARSET.contains(character))
    {
        return Err(AgeRecipientError::InvalidCharacter {
            recipient: recipient.to_owned(),
            character,
            position: AGE_RECIPIENT_PREFIX.len() + offset,
        });
    }
    if recipient.len() != AGE_RECIPIENT_LEN {
        return Err(AgeRecipientError::WrongLength {
            recipient: recipient.to_owned(),
            length: recipient.len(),
            expected: AGE_RECIPIENT_LEN,
        });
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A well-formed recipient (the example key from the age documentation).
    pub const RECIPIENT: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";
    /// A second well-formed recipient (an escrow key in tests).
    pub const ESCROW_RECIPIENT: &str =
        "age1lggyhqrw2nlhcxprm67z43rta597azn8gknawjehu9d9dl0jq3yqqvfafg";

    #[test]
    fn accepts_age_public_keys() {
        validate_age_recipient(RECIPIENT).unwrap();
        validate_age_recipient(ESCROW_RECIPIENT).unwrap();
    }

    #[test]
    fn refuses_a_secret_key_or_another_kind_of_key() {
        assert_eq!(
            validate_age_recipient("AGE-SECRET-KEY-1QQQ")
                .unwrap_err()
                .to_string(),
            "age recipient \"AGE-SECRET-KEY-1QQQ\": does not start with \"age1\"; use an age \
             X25519 public key (`age-keygen -y KEYFILE` prints it), never the secret key"
        );
    }

    #[test]
    fn refuses_a_truncated_key() {
        assert_eq!(
            validate_age_recipient("age1ql3z7hjy")
                .unwrap_err()
                .to_string(),
            "age recipient \"age1ql3z7hjy\": is 12 bytes long, but an age X25519 recipient is 62; \
             copy the whole key"
        );
    }

    #[test]
    fn refuses_characters_outside_bech32() {
        let uppercase = RECIPIENT.replacen('q', "Q", 1);
        assert_eq!(
            validate_age_recipient(&uppercase).unwrap_err().to_string(),
            format!(
                "age recipient {uppercase:?}: character 'Q' at byte 4 is not a lowercase bech32 \
                 character (qpzry9x8gf2tvdw0s3jn54khce6mua7l)"
            )
        );
        // 'b', 'i', 'o' and '1' are not in the bech32 data alphabet.
        let with_b = RECIPIENT.replacen('l', "b", 1);
        assert!(matches!(
            validate_age_recipient(&with_b),
            Err(AgeRecipientError::InvalidCharacter { character: 'b', .. })
        ));
    }
}
