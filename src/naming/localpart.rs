//! Localparts: a principal's hierarchical name, such as `acme/fleet/prod/agent/pm`.
//!
//! Invariant: a [`Localpart`] is a safe relative path — lowercase `[a-z0-9._=-/]`, no empty,
//! `.`, `..` or hidden segment, no leading or trailing `/` — short enough that
//! `<run-dir>/<localpart>.admin.sock` fits in `sun_path`. It is used verbatim in Matrix IDs,
//! room aliases, socket paths and permission checks, so nothing else re-validates it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::socket::{ADMIN_SOCKET_SUFFIX, DEFAULT_RUN_DIR, SUN_PATH_LEN, max_localpart_len};

/// A validated localpart: the name of a principal, without sigil or server.
///
/// Example: `Localpart::parse("acme/fleet/prod/agent/pm")` → `Ok`, displayed as
/// `acme/fleet/prod/agent/pm`; `Localpart::parse("acme/../x")` → `Err` (path traversal).
///
/// ```
/// use bureau::naming::Localpart;
///
/// let pm = Localpart::parse("acme/fleet/prod/agent/pm")?;
/// assert_eq!(pm.to_string(), "acme/fleet/prod/agent/pm");
/// assert!(Localpart::parse("acme/../x").is_err());
/// # Ok::<(), bureau::naming::NameError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Localpart(String);

/// Why a string is not a valid localpart. Every message names the whole input and the offending
/// character or segment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The input is empty.
    ///
    /// Example: `""` → `localpart "": is empty; a principal needs a name such as acme/agent/pm`.
    #[error("localpart \"\": is empty; a principal needs a name such as acme/agent/pm")]
    Empty,

    /// A character outside `[a-z0-9._=-/]`.
    ///
    /// Example: `"Acme/x"` → `localpart "Acme/x": character 'A' at byte 0 is not allowed; names
    /// are lowercase and use only a-z, 0-9, '.', '_', '=', '-' and '/' (write 'a' instead of 'A')`.
    #[error(
        "localpart {input:?}: character {character:?} at byte {position} is not allowed; names \
         are lowercase and use only a-z, 0-9, '.', '_', '=', '-' and '/'{}",
        replacement_hint(.character)
    )]
    InvalidCharacter {
        /// The whole input.
        input: String,
        /// The first character that is not allowed.
        character: char,
        /// Its byte offset in `input`.
        position: usize,
    },

    /// The input starts with `/`.
    ///
    /// Example: `"/a"` → `localpart "/a": starts with '/'; localparts are relative (write "a")`.
    #[error(
        "localpart {input:?}: starts with '/'; localparts are relative (write {:?})",
        .input.trim_start_matches('/')
    )]
    LeadingSlash {
        /// The whole input.
        input: String,
    },

    /// The input ends with `/`.
    ///
    /// Example: `"a/"` → `localpart "a/": ends with '/'; remove the trailing '/' (write "a")`.
    #[error(
        "localpart {input:?}: ends with '/'; remove the trailing '/' (write {:?})",
        .input.trim_end_matches('/')
    )]
    TrailingSlash {
        /// The whole input.
        input: String,
    },

    /// Two `/` in a row.
    ///
    /// Example: `"a//b"` → `localpart "a//b": empty segment at byte 2 ('//'); every segment
    /// between slashes needs a name`.
    #[error(
        "localpart {input:?}: empty segment at byte {position} ('//'); every segment between \
         slashes needs a name"
    )]
    EmptySegment {
        /// The whole input.
        input: String,
        /// Byte offset where the empty segment starts (the second `/`).
        position: usize,
    },

    /// A `.` or `..` segment.
    ///
    /// Example: `"acme/../x"` → `localpart "acme/../x": segment ".." is a path traversal
    /// segment; name the principal directly, without "." or ".." segments`.
    #[error(
        "localpart {input:?}: segment {segment:?} is a path traversal segment; name the \
         principal directly, without \".\" or \"..\" segments"
    )]
    TraversalSegment {
        /// The whole input.
        input: String,
        /// The offending segment, `.` or `..`.
        segment: String,
    },

    /// A segment starting with `.`.
    ///
    /// Example: `".hidden/x"` → `localpart ".hidden/x": segment ".hidden" starts with '.', which
    /// would make a hidden file; start each segment with a letter, digit, '_', '=' or '-'`.
    #[error(
        "localpart {input:?}: segment {segment:?} starts with '.', which would make a hidden \
         file; start each segment with a letter, digit, '_', '=' or '-'"
    )]
    HiddenSegment {
        /// The whole input.
        input: String,
        /// The offending segment.
        segment: String,
    },

    /// The input is too long for its socket paths to fit in `sun_path`.
    ///
    /// Example: an 85-byte name → `localpart "aaa…": 85 bytes is longer than the 84-byte limit
    /// for run directory /run/bureau (...); shorten the name, or use a shorter run directory`.
    #[error(
        "localpart {input:?}: {length} bytes is longer than the {limit}-byte limit for run \
         directory {} (the socket path <run-dir>/<localpart>{ADMIN_SOCKET_SUFFIX} must fit in \
         the {SUN_PATH_LEN}-byte sun_path); shorten the name, or use a shorter run directory",
        .run_dir.display()
    )]
    TooLong {
        /// The whole input.
        input: String,
        /// Its length in bytes.
        length: usize,
        /// The longest localpart allowed under `run_dir`.
        limit: usize,
        /// The run directory the limit was computed for.
        run_dir: PathBuf,
    },
}

/// For an uppercase ASCII letter, the suggestion to use its lowercase form.
fn replacement_hint(character: &char) -> String {
    if character.is_ascii_uppercase() {
        format!(
            " (write {:?} instead of {character:?})",
            character.to_ascii_lowercase()
        )
    } else {
        String::new()
    }
}

/// Whether `byte` may appear in a localpart.
pub(super) fn is_localpart_byte(byte: u8) -> bool {
    matches!(byte, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'=' | b'-' | b'/')
}

/// Checks every rule except the length bound, in the documented order: empty, characters,
/// slashes and segments. Globs use this to refuse to match malformed names.
pub(super) fn check_shape(input: &str) -> Result<(), NameError> {
    if input.is_empty() {
        return Err(NameError::Empty);
    }
    if let Some((position, character)) = input
        .char_indices()
        .find(|&(_, character)| !(character.is_ascii() && is_localpart_byte(character as u8)))
    {
        return Err(NameError::InvalidCharacter {
            input: input.to_owned(),
            character,
            position,
        });
    }
    if input.starts_with('/') {
        return Err(NameError::LeadingSlash {
            input: input.to_owned(),
        });
    }
    if input.ends_with('/') {
        return Err(NameError::TrailingSlash {
            input: input.to_owned(),
        });
    }
    let mut position = 0;
    for segment in input.split('/') {
        if segment.is_empty() {
            return Err(NameError::EmptySegment {
                input: input.to_owned(),
                position,
            });
        }
        if segment == "." || segment == ".." {
            return Err(NameError::TraversalSegment {
                input: input.to_owned(),
                segment: segment.to_owned(),
            });
        }
        if segment.starts_with('.') {
            return Err(NameError::HiddenSegment {
                input: input.to_owned(),
                segment: segment.to_owned(),
            });
        }
        position += segment.len() + 1;
    }
    Ok(())
}

impl Localpart {
    /// Parses a localpart whose sockets live under [`DEFAULT_RUN_DIR`] (at most 84 bytes).
    ///
    /// Example: `"acme/fleet/prod/agent/pm"` → `Ok(acme/fleet/prod/agent/pm)`; `"Acme/x"` →
    /// `Err(localpart "Acme/x": character 'A' at byte 0 is not allowed; names are lowercase …)`.
    ///
    /// ```
    /// use bureau::naming::Localpart;
    ///
    /// assert_eq!(Localpart::parse("acme/agent/pm")?.as_str(), "acme/agent/pm");
    /// let error = Localpart::parse("Acme/x").unwrap_err().to_string();
    /// assert!(error.contains("'A' at byte 0") && error.contains("lowercase"));
    /// # Ok::<(), bureau::naming::NameError>(())
    /// ```
    pub fn parse(input: &str) -> Result<Self, NameError> {
        Self::parse_for_run_dir(input, Path::new(DEFAULT_RUN_DIR))
    }

    /// Parses a localpart whose sockets live under `run_dir`, so the length limit is
    /// [`max_localpart_len(run_dir)`](max_localpart_len).
    ///
    /// Example: (`"acme/agent/pm"`, `/run`) → `Ok`; a 92-byte name under `/run` (limit 91) →
    /// `Err(... 92 bytes is longer than the 91-byte limit for run directory /run ...)`.
    ///
    /// ```
    /// use std::path::Path;
    /// use bureau::naming::Localpart;
    ///
    /// assert!(Localpart::parse_for_run_dir("acme/agent/pm", Path::new("/run")).is_ok());
    /// assert!(Localpart::parse_for_run_dir(&"a".repeat(92), Path::new("/run")).is_err());
    /// ```
    pub fn parse_for_run_dir(input: &str, run_dir: &Path) -> Result<Self, NameError> {
        check_shape(input)?;
        let limit = max_localpart_len(run_dir);
        if input.len() > limit {
            return Err(NameError::TooLong {
                input: input.to_owned(),
                length: input.len(),
                limit,
                run_dir: run_dir.to_path_buf(),
            });
        }
        Ok(Self(input.to_owned()))
    }

    /// The localpart as text.
    ///
    /// Example: `Localpart::parse("acme/agent/pm")?.as_str()` → `"acme/agent/pm"`.
    ///
    /// ```
    /// # use bureau::naming::Localpart;
    /// assert_eq!(Localpart::parse("acme/agent/pm")?.as_str(), "acme/agent/pm");
    /// # Ok::<(), bureau::naming::NameError>(())
    /// ```
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The `/`-separated segments, outermost first.
    ///
    /// Example: `acme/fleet/pm` → `["acme", "fleet", "pm"]`.
    ///
    /// ```
    /// # use bureau::naming::Localpart;
    /// let localpart = Localpart::parse("acme/fleet/pm")?;
    /// assert_eq!(localpart.segments().collect::<Vec<_>>(), ["acme", "fleet", "pm"]);
    /// assert_eq!(localpart.segments().next_back(), Some("pm"));
    /// # Ok::<(), bureau::naming::NameError>(())
    /// ```
    pub fn segments(&self) -> std::str::Split<'_, char> {
        self.0.split('/')
    }
}

impl fmt::Display for Localpart {
    /// Example: `acme/agent/pm` → `acme/agent/pm`.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl FromStr for Localpart {
    type Err = NameError;

    /// Same as [`Localpart::parse`]. Example: `"acme/pm".parse::<Localpart>()` → `Ok(acme/pm)`.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        Self::parse(input)
    }
}

impl AsRef<str> for Localpart {
    /// Example: `acme/pm` → `"acme/pm"`.
    fn as_ref(&self) -> &str {
        &self.0
    }
}

serde_as_validated_string!(Localpart);

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::naming::strategies::valid_localpart;

    fn error_text(input: &str) -> String {
        Localpart::parse(input).unwrap_err().to_string()
    }

    #[test]
    fn accepts_a_hierarchical_name() {
        let localpart = Localpart::parse("acme/fleet/prod/agent/pm").unwrap();
        assert_eq!(localpart.as_str(), "acme/fleet/prod/agent/pm");
        assert_eq!(localpart.to_string(), "acme/fleet/prod/agent/pm");
        assert_eq!(
            localpart.segments().collect::<Vec<_>>(),
            ["acme", "fleet", "prod", "agent", "pm"]
        );
    }

    #[test]
    fn accepts_every_allowed_character() {
        for name in [
            "a",
            "0",
            "_",
            "=",
            "-",
            "a.b",
            "x_y=z-0.9/q",
            "a..b",
            "a.",
            "-/_/=",
        ] {
            assert!(Localpart::parse(name).is_ok(), "{name} should be valid");
        }
    }

    #[test]
    fn rejects_empty() {
        assert_eq!(Localpart::parse(""), Err(NameError::Empty));
        assert!(error_text("").contains("is empty"));
    }

    #[test]
    fn rejects_uppercase_naming_character_position_and_rule() {
        assert_eq!(
            Localpart::parse("Acme/x"),
            Err(NameError::InvalidCharacter {
                input: "Acme/x".into(),
                character: 'A',
                position: 0,
            })
        );
        let message = error_text("Acme/x");
        assert!(message.contains("\"Acme/x\""), "{message}");
        assert!(message.contains("'A' at byte 0"), "{message}");
        assert!(message.contains("lowercase"), "{message}");
        assert!(message.contains("write 'a' instead of 'A'"), "{message}");
    }

    #[test]
    fn rejects_other_characters_with_their_byte_position() {
        let message = error_text("acme/ag ent");
        assert!(message.contains("' ' at byte 7"), "{message}");
        assert!(!message.contains("instead of"), "{message}");
        let message = error_text("acme/é");
        assert!(message.contains("'é' at byte 5"), "{message}");
        let message = error_text("acme:x");
        assert!(message.contains("':' at byte 4"), "{message}");
        assert!(matches!(
            Localpart::parse("a\0b"),
            Err(NameError::InvalidCharacter { position: 1, .. })
        ));
    }

    #[test]
    fn characters_are_checked_before_segments() {
        assert!(matches!(
            Localpart::parse("/../X"),
            Err(NameError::InvalidCharacter { character: 'X', .. })
        ));
    }

    #[test]
    fn rejects_leading_slash() {
        assert_eq!(
            Localpart::parse("/a"),
            Err(NameError::LeadingSlash { input: "/a".into() })
        );
        let message = error_text("/a");
        assert!(message.contains("\"/a\"") && message.contains("starts with '/'"));
        assert!(message.contains("write \"a\""), "{message}");
        assert!(matches!(
            Localpart::parse("/"),
            Err(NameError::LeadingSlash { .. })
        ));
    }

    #[test]
    fn rejects_trailing_slash() {
        assert_eq!(
            Localpart::parse("a/"),
            Err(NameError::TrailingSlash { input: "a/".into() })
        );
        let message = error_text("acme/x/");
        assert!(message.contains("ends with '/'") && message.contains("write \"acme/x\""));
    }

    #[test]
    fn rejects_empty_segment() {
        assert_eq!(
            Localpart::parse("a//b"),
            Err(NameError::EmptySegment {
                input: "a//b".into(),
                position: 2,
            })
        );
        let message = error_text("a//b");
        assert!(message.contains("\"a//b\"") && message.contains("empty segment at byte 2"));
    }

    #[test]
    fn rejects_traversal_segments() {
        assert_eq!(
            Localpart::parse("acme/../x"),
            Err(NameError::TraversalSegment {
                input: "acme/../x".into(),
                segment: "..".into(),
            })
        );
        let message = error_text("acme/../x");
        assert!(message.contains("\"acme/../x\""), "{message}");
        assert!(message.contains("segment \"..\""), "{message}");
        assert!(message.contains("path traversal"), "{message}");
        for name in [".", "..", "a/.", "./a", "a/./b", "a/.."] {
            assert!(
                matches!(
                    Localpart::parse(name),
                    Err(NameError::TraversalSegment { .. })
                ),
                "{name}"
            );
        }
    }

    #[test]
    fn rejects_hidden_segments() {
        assert_eq!(
            Localpart::parse(".hidden/x"),
            Err(NameError::HiddenSegment {
                input: ".hidden/x".into(),
                segment: ".hidden".into(),
            })
        );
        let message = error_text(".hidden/x");
        assert!(message.contains("\".hidden\"") && message.contains("hidden"));
        assert!(matches!(
            Localpart::parse("acme/...x"),
            Err(NameError::HiddenSegment { .. })
        ));
    }

    #[test]
    fn rejects_an_85_byte_name_saying_what_to_do() {
        let name = "a".repeat(85);
        assert_eq!(
            Localpart::parse(&name),
            Err(NameError::TooLong {
                input: name.clone(),
                length: 85,
                limit: 84,
                run_dir: PathBuf::from("/run/bureau"),
            })
        );
        let message = error_text(&name);
        assert!(message.contains(&name), "{message}");
        assert!(message.contains("85 bytes"), "{message}");
        assert!(message.contains("84-byte limit"), "{message}");
        assert!(message.contains("/run/bureau"), "{message}");
        assert!(message.contains("shorten the name"), "{message}");
        assert!(message.contains("shorter run directory"), "{message}");
        assert!(Localpart::parse(&"a".repeat(84)).is_ok());
    }

    #[test]
    fn length_is_checked_last() {
        let long_and_bad = format!("{}/../x", "a".repeat(90));
        assert!(matches!(
            Localpart::parse(&long_and_bad),
            Err(NameError::TraversalSegment { .. })
        ));
    }

    #[test]
    fn run_dir_sets_the_limit() {
        let run_dir = Path::new("/run");
        assert!(Localpart::parse_for_run_dir(&"a".repeat(91), run_dir).is_ok());
        let message = Localpart::parse_for_run_dir(&"a".repeat(92), run_dir)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("91-byte limit for run directory /run "),
            "{message}"
        );
    }

    #[test]
    fn from_str_and_serde_validate() {
        let localpart: Localpart = "acme/pm".parse().unwrap();
        assert_eq!(localpart, Localpart::parse("acme/pm").unwrap());
        assert!("acme/../pm".parse::<Localpart>().is_err());

        let json = serde_json::to_string(&localpart).unwrap();
        assert_eq!(json, "\"acme/pm\"");
        assert_eq!(serde_json::from_str::<Localpart>(&json).unwrap(), localpart);
        let error = serde_json::from_str::<Localpart>("\"acme/../pm\"").unwrap_err();
        assert!(error.to_string().contains("path traversal"), "{error}");
    }

    proptest! {
        #[test]
        fn generated_valid_localparts_parse_and_display_unchanged(name in valid_localpart()) {
            let localpart = Localpart::parse(&name).unwrap();
            prop_assert_eq!(localpart.to_string(), name.clone());
            prop_assert_eq!(localpart.segments().collect::<Vec<_>>().join("/"), name);
        }

        #[test]
        fn any_character_outside_the_set_is_rejected(
            prefix in "[a-z0-9._=/-]{0,10}",
            bad in any::<char>().prop_filter("outside the set", |c| {
                !(c.is_ascii() && is_localpart_byte(*c as u8))
            }),
            suffix in "[a-z0-9._=/-]{0,10}",
        ) {
            let input = format!("{prefix}{bad}{suffix}");
            let expected_position = prefix.len();
            match Localpart::parse(&input) {
                Err(NameError::InvalidCharacter { character, position, .. }) => {
                    prop_assert_eq!(character, bad);
                    prop_assert_eq!(position, expected_position);
                }
                other => prop_assert!(false, "{input:?} gave {other:?}"),
            }
        }

        #[test]
        fn parse_never_panics_and_accepted_names_obey_the_rules(input in any::<String>()) {
            if let Ok(localpart) = Localpart::parse(&input) {
                prop_assert!(input.len() <= 84);
                prop_assert!(localpart.segments().all(|s| !s.is_empty() && !s.starts_with('.')));
            }
        }

        #[test]
        fn parse_never_panics_on_near_valid_input(input in "[a-zA-Z0-9./_=-]{0,100}") {
            if let Ok(localpart) = Localpart::parse(&input) {
                prop_assert_eq!(localpart.as_str(), input.as_str());
            }
        }
    }
}
