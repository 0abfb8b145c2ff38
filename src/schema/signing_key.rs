//! The token-signing key (`m.bureau.token_signing_key`, in the system room; state key = the
//! machine's localpart): the Ed25519 public key that verifies the service tokens a machine's
//! daemon mints, and its peer authentication.
//!
//! Invariant: the key is 32 bytes, written in unpadded standard base64 as Matrix writes keys
//! (padded input is accepted too). Only the public half is ever published.

use serde::{Deserialize, Serialize};

/// The only token-signing algorithm.
///
/// Example: `{"algorithm": "ed25519", …}`.
pub const SIGNING_KEY_ALGORITHM: &str = "ed25519";

/// The length of an Ed25519 public key in bytes.
const ED25519_PUBLIC_KEY_LEN: usize = 32;

/// A machine's Ed25519 token-signing public key.
///
/// Example:
/// ```json
/// {"algorithm": "ed25519", "public_key": "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
/// ```
///
/// ```
/// use bureau::schema::TokenSigningKey;
///
/// let key = TokenSigningKey::ed25519(&[7; 32]);
/// key.validate()?;
/// assert_eq!(key.public_key_bytes()?, [7; 32]);
/// # Ok::<(), bureau::schema::SigningKeyError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenSigningKey {
    /// Always [`SIGNING_KEY_ALGORITHM`] (`ed25519`) today.
    pub algorithm: String,
    /// The public key, unpadded standard base64.
    pub public_key: String,
}

/// Why a [`TokenSigningKey`] cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningKeyError {
    /// An algorithm other than `ed25519`.
    ///
    /// Example: `"rsa"` → `token signing key: algorithm "rsa" is not supported; this Bureau
    /// only knows "ed25519" (upgrade Bureau if a newer machine published this key)`.
    #[error(
        "token signing key: algorithm {algorithm:?} is not supported; this Bureau only knows \
         \"ed25519\" (upgrade Bureau if a newer machine published this key)"
    )]
    UnsupportedAlgorithm {
        /// The algorithm as given.
        algorithm: String,
    },

    /// The public key is not base64.
    ///
    /// Example: `"not base64!"` → `token signing key: public_key "not base64!" is not standard
    /// base64; write the 32-byte key in base64 (A-Z, a-z, 0-9, '+', '/')`.
    #[error(
        "token signing key: public_key {public_key:?} is not standard base64; write the 32-byte \
         key in base64 (A-Z, a-z, 0-9, '+', '/')"
    )]
    NotBase64 {
        /// The key as given.
        public_key: String,
    },

    /// The public key does not decode to 32 bytes.
    ///
    /// Example: → `token signing key: public_key decodes to 16 bytes, but an Ed25519 public key
    /// is 32; publish the whole public key`.
    #[error(
        "token signing key: public_key decodes to {length} bytes, but an Ed25519 public key is \
         32; publish the whole public key"
    )]
    WrongLength {
        /// The decoded length.
        length: usize,
    },
}

const BASE64_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Encodes `bytes` as unpadded standard base64.
fn encode_base64(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let group = chunk.iter().enumerate().fold(0u32, |group, (index, byte)| {
            group | u32::from(*byte) << (16 - 8 * index)
        });
        for index in 0..=chunk.len() {
            let sextet = (group >> (18 - 6 * index)) & 0x3f;
            text.push(char::from(BASE64_ALPHABET[sextet as usize]));
        }
    }
    text
}

/// Decodes standard base64, padded or not; `None` if `text` is not canonical base64.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let unpadded = text.trim_end_matches('=');
    let padding = text.len() - unpadded.len();
    if padding > 2 || (padding > 0 && !text.len().is_multiple_of(4)) || unpadded.len() % 4 == 1 {
        return None;
    }
    let mut bytes = Vec::with_capacity(unpadded.len() * 3 / 4);
    for chunk in unpadded.as_bytes().chunks(4) {
        let mut group = 0u32;
        for (index, character) in chunk.iter().enumerate() {
            let value = BASE64_ALPHABET
                .iter()
                .position(|symbol| symbol == character)?;
            group |= (value as u32) << (18 - 6 * index);
        }
        let decoded = chunk.len() * 6 / 8;
        let group_bytes = group.to_be_bytes();
        bytes.extend_from_slice(&group_bytes[1..=decoded]);
        // Canonical encodings leave the unused low bits zero.
        if group_bytes[1 + decoded..].iter().any(|&byte| byte != 0) {
            return None;
        }
    }
    Some(bytes)
}

impl TokenSigningKey {
    /// A key of the `ed25519` algorithm from its 32 public bytes.
    ///
    /// Example: 32 zero bytes → `{"algorithm": "ed25519", "public_key":
    /// "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}`.
    ///
    /// ```
    /// # use bureau::schema::TokenSigningKey;
    /// assert_eq!(TokenSigningKey::ed25519(&[0; 32]).public_key, "A".repeat(43));
    /// ```
    pub fn ed25519(public_key: &[u8; ED25519_PUBLIC_KEY_LEN]) -> Self {
        Self {
            algorithm: SIGNING_KEY_ALGORITHM.to_owned(),
            public_key: encode_base64(public_key),
        }
    }

    /// The 32 public key bytes, after checking the algorithm and the encoding.
    ///
    /// Example: `"AAAA…A"` (43 `A`s) → `[0; 32]`.
    ///
    /// ```
    /// # use bureau::schema::TokenSigningKey;
    /// let key = TokenSigningKey { algorithm: "ed25519".into(), public_key: "A".repeat(43) };
    /// assert_eq!(key.public_key_bytes()?, [0; 32]);
    /// # Ok::<(), bureau::schema::SigningKeyError>(())
    /// ```
    pub fn public_key_bytes(&self) -> Result<[u8; ED25519_PUBLIC_KEY_LEN], SigningKeyError> {
        if self.algorithm != SIGNING_KEY_ALGORITHM {
            return Err(SigningKeyError::UnsupportedAlgorithm {
                algorithm: self.algorithm.clone(),
            });
        }
        let bytes = decode_base64(&self.public_key).ok_or_else(|| SigningKeyError::NotBase64 {
            public_key: self.public_key.clone(),
        })?;
        let length = bytes.len();
        bytes
            .try_into()
            .map_err(|_| SigningKeyError::WrongLength { length })
    }

    /// Checks the algorithm is `ed25519` and the key is 32 bytes of base64.
    ///
    /// Example: a 16-byte key → `Err(token signing key: public_key decodes to 16 bytes, …)`.
    ///
    /// ```
    /// # use bureau::schema::TokenSigningKey;
    /// let key = TokenSigningKey { algorithm: "ed25519".into(), public_key: "A".repeat(22) };
    /// assert!(key.validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<(), SigningKeyError> {
        self.public_key_bytes().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::test_support::{round_trip, tolerates_unknown_fields};
    use super::*;

    /// RFC 8032 test 1's public key, in unpadded base64.
    const RFC8032_PUBLIC_KEY: &str = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo";

    fn key_json() -> serde_json::Value {
        json!({"algorithm": "ed25519", "public_key": RFC8032_PUBLIC_KEY})
    }

    #[test]
    fn round_trips_and_decodes() {
        let key: TokenSigningKey = round_trip(key_json());
        let bytes = key.public_key_bytes().unwrap();
        assert_eq!(bytes[..4], [0xd7, 0x5a, 0x98, 0x01]);
        assert_eq!(bytes[28..], [0xf7, 0x07, 0x51, 0x1a]);
        assert_eq!(TokenSigningKey::ed25519(&bytes), key);
        tolerates_unknown_fields::<TokenSigningKey>(key_json());
    }

    #[test]
    fn accepts_padded_base64() {
        let key = TokenSigningKey {
            algorithm: SIGNING_KEY_ALGORITHM.to_owned(),
            public_key: format!("{RFC8032_PUBLIC_KEY}="),
        };
        key.validate().unwrap();
    }

    #[test]
    fn base64_matches_known_vectors() {
        for (bytes, text) in [
            (&b""[..], ""),
            (b"f", "Zg"),
            (b"fo", "Zm8"),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg"),
            (b"fooba", "Zm9vYmE"),
            (b"foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(encode_base64(bytes), text);
            assert_eq!(decode_base64(text).unwrap(), bytes);
        }
        assert_eq!(decode_base64("Zm8=").unwrap(), b"fo");
        for bad in ["Z", "Zm9v!", "Zm9=v", "Zm8==", "Zm9", "Zh"] {
            // "Zm9" and "Zh" have non-zero unused bits: not canonical.
            assert_eq!(decode_base64(bad), None, "{bad}");
        }
    }

    #[test]
    fn refuses_another_algorithm() {
        let key = TokenSigningKey {
            algorithm: "rsa".to_owned(),
            public_key: RFC8032_PUBLIC_KEY.to_owned(),
        };
        assert_eq!(
            key.validate().unwrap_err().to_string(),
            "token signing key: algorithm \"rsa\" is not supported; this Bureau only knows \
             \"ed25519\" (upgrade Bureau if a newer machine published this key)"
        );
    }

    #[test]
    fn refuses_a_key_that_is_not_base64() {
        let key = TokenSigningKey {
            algorithm: SIGNING_KEY_ALGORITHM.to_owned(),
            public_key: "not base64!".to_owned(),
        };
        assert_eq!(
            key.validate().unwrap_err().to_string(),
            "token signing key: public_key \"not base64!\" is not standard base64; write the \
             32-byte key in base64 (A-Z, a-z, 0-9, '+', '/')"
        );
    }

    #[test]
    fn refuses_a_key_of_the_wrong_length() {
        let key = TokenSigningKey {
            algorithm: SIGNING_KEY_ALGORITHM.to_owned(),
            public_key: encode_base64(&[1; 16]),
        };
        assert_eq!(
            key.validate().unwrap_err().to_string(),
            "token signing key: public_key decodes to 16 bytes, but an Ed25519 public key is 32; \
             publish the whole public key"
        );
    }
}
