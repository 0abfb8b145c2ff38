//! Permission globs over localparts, such as `acme/fleet/*/agent/**`.
//!
//! Invariant: a malformed pattern never matches anything, and a pattern never matches a malformed
//! name. `*` and `?` stay inside one `/`-separated segment; only a whole-segment `**` spans
//! segments. Matching is a dynamic programme over segments (and a linear-backtracking wildcard
//! match within a segment), so its cost is bounded by `len(pattern) × len(name)` whatever the
//! pattern.

use std::fmt;
use std::str::FromStr;

use super::localpart::{check_shape, is_localpart_byte};

/// A validated localpart glob.
///
/// Example: `Glob::parse("acme/fleet/prod/agent/**")` matches `acme/fleet/prod/agent/pm`,
/// `acme/fleet/prod/agent/a/b` and `acme/fleet/prod/agent`, but not `acme/fleet/dev/agent/pm`.
///
/// ```
/// use bureau::naming::Glob;
///
/// let agents = Glob::parse("acme/fleet/prod/agent/**")?;
/// assert!(agents.matches("acme/fleet/prod/agent/pm"));
/// assert!(agents.matches("acme/fleet/prod/agent/a/b"));
/// assert!(agents.matches("acme/fleet/prod/agent"));
/// assert!(!agents.matches("acme/fleet/dev/agent/pm"));
/// # Ok::<(), bureau::naming::GlobError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Glob {
    /// The pattern as written.
    text: String,
    /// The parsed segments (consecutive `**` collapsed into one).
    segments: Vec<GlobSegment>,
}

/// One `/`-separated segment of a glob.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum GlobSegment {
    /// `**`: zero or more whole segments.
    AnySegments,
    /// Literals, `*` and `?`, matched against exactly one name segment.
    Within(Vec<Token>),
}

/// One element of a wildcard pattern that never crosses a separator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Token {
    /// Exactly this byte.
    Literal(u8),
    /// `?`: exactly one byte.
    AnyByte,
    /// `*`: any run of bytes, possibly empty.
    AnyRun,
}

/// Why a string is not a valid glob. Every message names the whole pattern and the offending
/// character or segment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GlobError {
    /// The pattern is empty.
    ///
    /// Example: `""` → `glob "": is empty; use ** to match every name`.
    #[error("glob \"\": is empty; use ** to match every name")]
    Empty,

    /// A character outside `[a-z0-9._=-/*?]`.
    ///
    /// Example: `"acme/A*"` → `glob "acme/A*": character 'A' at byte 5 is not allowed; globs use
    /// lowercase a-z, 0-9, '.', '_', '=', '-', '/' and the wildcards '*' and '?'`.
    #[error(
        "glob {pattern:?}: character {character:?} at byte {position} is not allowed; globs use \
         lowercase a-z, 0-9, '.', '_', '=', '-', '/' and the wildcards '*' and '?'"
    )]
    InvalidCharacter {
        /// The whole pattern.
        pattern: String,
        /// The first character that is not allowed.
        character: char,
        /// Its byte offset in `pattern`.
        position: usize,
    },

    /// The pattern starts with `/`.
    ///
    /// Example: `"/acme/**"` → `glob "/acme/**": starts with '/'; names are relative (write
    /// "acme/**")`.
    #[error(
        "glob {pattern:?}: starts with '/'; names are relative (write {:?})",
        .pattern.trim_start_matches('/')
    )]
    LeadingSlash {
        /// The whole pattern.
        pattern: String,
    },

    /// The pattern ends with `/`.
    ///
    /// Example: `"acme/"` → `glob "acme/": ends with '/'; to match everything below acme write
    /// "acme/**"`.
    #[error(
        "glob {pattern:?}: ends with '/'; to match everything below it write {:?}",
        format!("{}/**", .pattern.trim_end_matches('/'))
    )]
    TrailingSlash {
        /// The whole pattern.
        pattern: String,
    },

    /// Two `/` in a row.
    ///
    /// Example: `"acme//pm"` → `glob "acme//pm": empty segment at byte 5 ('//'); to match any
    /// number of segments write "**"`.
    #[error(
        "glob {pattern:?}: empty segment at byte {position} ('//'); to match any number of \
         segments write \"**\""
    )]
    EmptySegment {
        /// The whole pattern.
        pattern: String,
        /// Byte offset where the empty segment starts (the second `/`).
        position: usize,
    },

    /// `**` inside a segment with other characters.
    ///
    /// Example: `"acme/a**b"` → `glob "acme/a**b": segment "a**b" mixes "**" with other
    /// characters; "**" must be a whole segment (use "*" within a segment, or "a*/**")`.
    #[error(
        "glob {pattern:?}: segment {segment:?} mixes \"**\" with other characters; \"**\" must be \
         a whole segment (use \"*\" within a segment, or \"a*/**\")"
    )]
    DoubleStarInSegment {
        /// The whole pattern.
        pattern: String,
        /// The offending segment.
        segment: String,
    },

    /// A `.` or `..` segment.
    ///
    /// Example: `"acme/../**"` → `glob "acme/../**": segment ".." is a path traversal segment;
    /// names never contain one, so the glob could never match`.
    #[error(
        "glob {pattern:?}: segment {segment:?} is a path traversal segment; names never contain \
         one, so the glob could never match"
    )]
    TraversalSegment {
        /// The whole pattern.
        pattern: String,
        /// The offending segment.
        segment: String,
    },

    /// A segment starting with `.`.
    ///
    /// Example: `"acme/.*"` → `glob "acme/.*": segment ".*" starts with '.'; names have no
    /// hidden segments, so it could never match`.
    #[error(
        "glob {pattern:?}: segment {segment:?} starts with '.'; names have no hidden segments, so \
         it could never match"
    )]
    HiddenSegment {
        /// The whole pattern.
        pattern: String,
        /// The offending segment.
        segment: String,
    },
}

/// Whether `byte` may appear in a localpart glob.
fn is_glob_byte(byte: u8) -> bool {
    is_localpart_byte(byte) || byte == b'*' || byte == b'?'
}

/// Turns a segment (or a whole server glob) into tokens. The caller has rejected `**`.
pub(super) fn tokenize(text: &str) -> Vec<Token> {
    text.bytes()
        .map(|byte| match byte {
            b'*' => Token::AnyRun,
            b'?' => Token::AnyByte,
            literal => Token::Literal(literal),
        })
        .collect()
}

/// Whether `tokens` match all of `text`. Greedy with backtracking to the last `*` only, which
/// is correct for `*`/`?` patterns and costs at most `len(tokens) × len(text)` steps.
pub(super) fn tokens_match(tokens: &[Token], text: &[u8]) -> bool {
    let mut token_index = 0;
    let mut text_index = 0;
    // After the most recent `*`: the token index following it, and how far into `text` it
    // currently extends.
    let mut last_star: Option<(usize, usize)> = None;
    while let Some(&byte) = text.get(text_index) {
        match tokens.get(token_index) {
            Some(Token::AnyRun) => {
                token_index += 1;
                last_star = Some((token_index, text_index));
                continue;
            }
            Some(Token::AnyByte) => {
                token_index += 1;
                text_index += 1;
                continue;
            }
            Some(Token::Literal(literal)) if *literal == byte => {
                token_index += 1;
                text_index += 1;
                continue;
            }
            _ => {}
        }
        // Mismatch: let the last `*` swallow one more byte and retry from there.
        match last_star {
            Some((after_star, star_end)) => {
                token_index = after_star;
                text_index = star_end + 1;
                last_star = Some((after_star, star_end + 1));
            }
            None => return false,
        }
    }
    tokens
        .get(token_index..)
        .unwrap_or_default()
        .iter()
        .all(|token| *token == Token::AnyRun)
}

impl Glob {
    /// Parses a localpart glob: `/`-separated segments of `[a-z0-9._=-]`, `*` (any run within
    /// a segment), `?` (one character within a segment) and whole-segment `**` (zero or more
    /// segments).
    ///
    /// Example: `"acme/fleet/*/agent/**"` → `Ok`; `"acme/a**b"` → `Err(glob "acme/a**b": segment
    /// "a**b" mixes "**" with other characters; …)`.
    ///
    /// ```
    /// use bureau::naming::Glob;
    ///
    /// assert!(Glob::parse("acme/fleet/*/agent/**").is_ok());
    /// let error = Glob::parse("acme/a**b").unwrap_err().to_string();
    /// assert!(error.contains("\"a**b\""));
    /// ```
    pub fn parse(pattern: &str) -> Result<Self, GlobError> {
        if pattern.is_empty() {
            return Err(GlobError::Empty);
        }
        if let Some((position, character)) = pattern
            .char_indices()
            .find(|&(_, character)| !(character.is_ascii() && is_glob_byte(character as u8)))
        {
            return Err(GlobError::InvalidCharacter {
                pattern: pattern.to_owned(),
                character,
                position,
            });
        }
        if pattern.starts_with('/') {
            return Err(GlobError::LeadingSlash {
                pattern: pattern.to_owned(),
            });
        }
        if pattern.ends_with('/') {
            return Err(GlobError::TrailingSlash {
                pattern: pattern.to_owned(),
            });
        }
        let mut segments = Vec::new();
        let mut position = 0;
        for segment in pattern.split('/') {
            let error_segment = || segment.to_owned();
            if segment.is_empty() {
                return Err(GlobError::EmptySegment {
                    pattern: pattern.to_owned(),
                    position,
                });
            }
            position += segment.len() + 1;
            if segment == "**" {
                if segments.last() != Some(&GlobSegment::AnySegments) {
                    segments.push(GlobSegment::AnySegments);
                }
                continue;
            }
            if segment.contains("**") {
                return Err(GlobError::DoubleStarInSegment {
                    pattern: pattern.to_owned(),
                    segment: error_segment(),
                });
            }
            if segment == "." || segment == ".." {
                return Err(GlobError::TraversalSegment {
                    pattern: pattern.to_owned(),
                    segment: error_segment(),
                });
            }
            if segment.starts_with('.') {
                return Err(GlobError::HiddenSegment {
                    pattern: pattern.to_owned(),
                    segment: error_segment(),
                });
            }
            segments.push(GlobSegment::Within(tokenize(segment)));
        }
        Ok(Self {
            text: pattern.to_owned(),
            segments,
        })
    }

    /// The pattern as written.
    ///
    /// Example: `Glob::parse("acme/**")?.as_str()` → `"acme/**"`.
    ///
    /// ```
    /// # use bureau::naming::Glob;
    /// assert_eq!(Glob::parse("acme/**")?.as_str(), "acme/**");
    /// # Ok::<(), bureau::naming::GlobError>(())
    /// ```
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `name` matches. A name that is not a well-formed localpart (any rule but the
    /// length bound) never matches.
    ///
    /// Example: `acme/*/pm` matches `acme/fleet/pm`, not `acme/a/b/pm`; `**/pm` matches `pm` and
    /// `x/y/pm`; `**` does not match `acme/../x`.
    ///
    /// ```
    /// use bureau::naming::Glob;
    ///
    /// let one_level = Glob::parse("acme/*/pm")?;
    /// assert!(one_level.matches("acme/fleet/pm"));
    /// assert!(!one_level.matches("acme/a/b/pm"));
    /// let any_pm = Glob::parse("**/pm")?;
    /// assert!(any_pm.matches("pm") && any_pm.matches("x/y/pm"));
    /// assert!(!Glob::parse("**")?.matches("acme/../x"));
    /// # Ok::<(), bureau::naming::GlobError>(())
    /// ```
    pub fn matches(&self, name: &str) -> bool {
        if check_shape(name).is_err() {
            return false;
        }
        let name_segments: Vec<&[u8]> = name.split('/').map(str::as_bytes).collect();
        self.matches_segments(&name_segments)
    }

    /// The segment-level dynamic programme. Row `i` holds, for each `j`, whether pattern
    /// segments `i..` match name segments `j..`; rows are built from the last pattern segment
    /// back to the first, keeping only the previous row.
    fn matches_segments(&self, name_segments: &[&[u8]]) -> bool {
        let count = name_segments.len();
        // The empty pattern tail matches only the empty name tail.
        let mut following: Vec<bool> = (0..=count).map(|j| j == count).collect();
        for segment in self.segments.iter().rev() {
            let mut current = vec![false; count + 1];
            match segment {
                GlobSegment::AnySegments => {
                    // `**` matches nothing here, or one name segment and then itself again.
                    let mut rest_matches = following[count];
                    current[count] = rest_matches;
                    for j in (0..count).rev() {
                        rest_matches = following[j] || rest_matches;
                        current[j] = rest_matches;
                    }
                }
                GlobSegment::Within(tokens) => {
                    for (j, name_segment) in name_segments.iter().enumerate() {
                        current[j] = following[j + 1] && tokens_match(tokens, name_segment);
                    }
                }
            }
            if !current.contains(&true) {
                return false;
            }
            following = current;
        }
        following[0]
    }
}

/// Whether `name` matches `pattern`; a malformed pattern (or name) never matches.
///
/// Example: (`acme/fleet/*/agent/**`, `acme/fleet/prod/agent/pm`) → `true`;
/// (`acme/a**b`, `acme/ab`) → `false` (malformed pattern).
///
/// ```
/// use bureau::naming::glob_matches;
///
/// assert!(glob_matches("acme/fleet/*/agent/**", "acme/fleet/prod/agent/pm"));
/// assert!(!glob_matches("acme/*", "acme/a/b"));
/// assert!(!glob_matches("acme/a**b", "acme/ab"));
/// ```
pub fn glob_matches(pattern: &str, name: &str) -> bool {
    Glob::parse(pattern).is_ok_and(|glob| glob.matches(name))
}

impl fmt::Display for Glob {
    /// Example: `acme/**` → `acme/**`.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.text)
    }
}

impl FromStr for Glob {
    type Err = GlobError;

    /// Same as [`Glob::parse`]. Example: `"acme/**".parse::<Glob>()` → `Ok`.
    fn from_str(pattern: &str) -> Result<Self, Self::Err> {
        Self::parse(pattern)
    }
}

serde_as_validated_string!(Glob);

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::naming::reference::reference_glob_match;
    use crate::naming::strategies::{small_glob, small_name, valid_localpart};

    #[test]
    fn literal_glob_matches_only_itself() {
        let glob = Glob::parse("acme/fleet/prod/agent/pm").unwrap();
        assert!(glob.matches("acme/fleet/prod/agent/pm"));
        assert!(!glob.matches("acme/fleet/prod/agent/pmx"));
        assert!(!glob.matches("acme/fleet/prod/agent"));
        assert!(!glob.matches("acme/fleet/prod/agent/pm/x"));
    }

    #[test]
    fn double_star_matches_zero_or_more_segments() {
        let agents = Glob::parse("acme/fleet/prod/agent/**").unwrap();
        for name in [
            "acme/fleet/prod/agent/pm",
            "acme/fleet/prod/agent/a/b",
            "acme/fleet/prod/agent",
        ] {
            assert!(agents.matches(name), "{name}");
        }
        assert!(!agents.matches("acme/fleet/prod/agentx"));
        assert!(!agents.matches("acme/fleet/prod"));

        let any_pm = Glob::parse("**/pm").unwrap();
        assert!(any_pm.matches("pm"));
        assert!(any_pm.matches("x/y/pm"));
        assert!(!any_pm.matches("x/y/pm/z"));
        assert!(!any_pm.matches("xpm"));

        let middle = Glob::parse("acme/**/pm").unwrap();
        assert!(middle.matches("acme/pm"));
        assert!(middle.matches("acme/a/b/c/pm"));
        assert!(!middle.matches("acme/a/b/c/pmx"));

        let everything = Glob::parse("**").unwrap();
        assert!(everything.matches("a"));
        assert!(everything.matches("a/b/c"));
    }

    #[test]
    fn star_and_question_mark_stay_within_a_segment() {
        let glob = Glob::parse("acme/fleet/*/agent/**").unwrap();
        assert!(glob.matches("acme/fleet/prod/agent/pm"));
        assert!(!glob.matches("acme/fleet/a/b/agent/pm"));

        assert!(glob_matches("*", "abc"));
        assert!(!glob_matches("*", "a/b"));
        assert!(glob_matches("a*", "a"));
        assert!(glob_matches("a*c", "abbbc"));
        assert!(!glob_matches("a*c", "ab/c"));
        assert!(glob_matches("a?c", "abc"));
        assert!(!glob_matches("a?c", "ac"));
        assert!(!glob_matches("a?c", "a/c"));
        assert!(!glob_matches("a?c", "abbc"));
        assert!(glob_matches("*.*", "a.b"));
        assert!(glob_matches("agent-?/*", "agent-1/pm"));
    }

    #[test]
    fn malformed_names_never_match() {
        for name in [
            "",
            "/a",
            "a/",
            "a//b",
            "acme/../x",
            ".hidden",
            "Acme",
            "a b",
        ] {
            assert!(!glob_matches("**", name), "{name:?}");
            assert!(!glob_matches("*", name), "{name:?}");
        }
    }

    #[test]
    fn malformed_patterns_are_rejected_and_never_match() {
        assert_eq!(Glob::parse(""), Err(GlobError::Empty));
        assert!(
            Glob::parse("")
                .unwrap_err()
                .to_string()
                .contains("is empty")
        );

        assert_eq!(
            Glob::parse("acme/A*"),
            Err(GlobError::InvalidCharacter {
                pattern: "acme/A*".into(),
                character: 'A',
                position: 5,
            })
        );
        let message = Glob::parse("acme/A*").unwrap_err().to_string();
        assert!(message.contains("'A' at byte 5") && message.contains("lowercase"));
        assert!(Glob::parse("acme/[ab]").is_err());
        assert!(Glob::parse("acme:x").is_err());

        let message = Glob::parse("/acme/**").unwrap_err().to_string();
        assert!(message.contains("starts with '/'") && message.contains("\"acme/**\""));
        assert_eq!(
            Glob::parse("/acme/**"),
            Err(GlobError::LeadingSlash {
                pattern: "/acme/**".into()
            })
        );

        let message = Glob::parse("acme/").unwrap_err().to_string();
        assert!(message.contains("ends with '/'") && message.contains("\"acme/**\""));
        assert_eq!(
            Glob::parse("acme/"),
            Err(GlobError::TrailingSlash {
                pattern: "acme/".into()
            })
        );

        assert_eq!(
            Glob::parse("acme//pm"),
            Err(GlobError::EmptySegment {
                pattern: "acme//pm".into(),
                position: 5,
            })
        );
        assert!(
            Glob::parse("acme//pm")
                .unwrap_err()
                .to_string()
                .contains("empty segment at byte 5")
        );

        for pattern in ["a**b", "acme/a**", "acme/**b", "***", "acme/***/x"] {
            assert!(
                matches!(
                    Glob::parse(pattern),
                    Err(GlobError::DoubleStarInSegment { .. })
                ),
                "{pattern}"
            );
        }
        let message = Glob::parse("acme/a**b").unwrap_err().to_string();
        assert!(message.contains("\"a**b\"") && message.contains("whole segment"));

        assert_eq!(
            Glob::parse("acme/../**"),
            Err(GlobError::TraversalSegment {
                pattern: "acme/../**".into(),
                segment: "..".into(),
            })
        );
        let message = Glob::parse("acme/../**").unwrap_err().to_string();
        assert!(message.contains("\"..\"") && message.contains("path traversal"));

        assert_eq!(
            Glob::parse("acme/.*"),
            Err(GlobError::HiddenSegment {
                pattern: "acme/.*".into(),
                segment: ".*".into(),
            })
        );
        assert!(
            Glob::parse("acme/.*")
                .unwrap_err()
                .to_string()
                .contains("could never match")
        );

        for pattern in ["", "a**b", "/a", "a/", "a//b", "A", "acme/../x", ".x"] {
            assert!(!glob_matches(pattern, "a"), "{pattern:?}");
            assert!(!glob_matches(pattern, "a/b"), "{pattern:?}");
            assert!(!glob_matches(pattern, "ab"), "{pattern:?}");
        }
    }

    #[test]
    fn consecutive_double_stars_collapse_but_display_unchanged() {
        let glob = Glob::parse("**/**/**/**/x").unwrap();
        assert_eq!(glob.segments.len(), 2);
        assert_eq!(glob.to_string(), "**/**/**/**/x");
        assert!(glob.matches("x"));
        assert!(glob.matches("a/b/c/d/e/x"));
    }

    #[test]
    fn pathological_patterns_finish_quickly() {
        let name = "a".repeat(90);
        assert!(!glob_matches("*a*a*a*a*a*a*a*a*a*a*a*a*a*b", &name));
        assert!(glob_matches("*a*a*a*a*a*a*a*a*a*a*a*a*a*a", &name));

        let deep_name = vec!["a"; 45].join("/");
        let stars = vec!["**"; 40].join("/");
        assert!(!glob_matches(&format!("{stars}/x"), &deep_name));
        let alternating = vec!["**/a"; 40].join("/");
        assert!(glob_matches(&alternating, &deep_name));
        assert!(!glob_matches(&format!("{alternating}/b"), &deep_name));
        let mixed = vec!["**/*"; 44].join("/");
        assert!(glob_matches(&mixed, &deep_name));
        let too_many = vec!["**/?"; 46].join("/");
        assert!(!glob_matches(&too_many, &deep_name));
    }

    #[test]
    fn from_str_display_and_serde() {
        let glob: Glob = "acme/*/pm".parse().unwrap();
        assert_eq!(glob.to_string(), "acme/*/pm");
        assert_eq!(glob.as_str(), "acme/*/pm");
        let json = serde_json::to_string(&glob).unwrap();
        assert_eq!(json, "\"acme/*/pm\"");
        assert_eq!(serde_json::from_str::<Glob>(&json).unwrap(), glob);
        assert!(serde_json::from_str::<Glob>("\"acme/a**b\"").is_err());
    }

    #[test]
    fn tokens_match_handles_edge_cases() {
        assert!(tokens_match(&[], b""));
        assert!(!tokens_match(&[], b"a"));
        assert!(tokens_match(&[Token::AnyRun], b""));
        assert!(!tokens_match(&[Token::AnyByte], b""));
        assert!(tokens_match(&tokenize("*?"), b"a"));
        assert!(tokens_match(&tokenize("?*"), b"ab"));
        assert!(tokens_match(&tokenize("*ab*ab"), b"abxabab"));
        assert!(!tokens_match(&tokenize("*ab*ab"), b"abxaba"));
    }

    proptest! {
        #[test]
        fn literal_localpart_glob_matches_exactly_itself(
            a in valid_localpart(),
            b in valid_localpart(),
        ) {
            let glob = Glob::parse(&a).unwrap();
            prop_assert!(glob.matches(&a));
            prop_assert_eq!(glob.matches(&b), a == b);
        }

        #[test]
        fn double_star_matches_every_valid_localpart(name in valid_localpart()) {
            prop_assert!(glob_matches("**", &name));
            let first = name.split('/').next().unwrap_or_default();
            let below_first = format!("{first}/**");
            prop_assert!(glob_matches(&below_first, &name));
            let last = name.rsplit('/').next().unwrap_or_default();
            let ending_in_last = format!("**/{last}");
            prop_assert!(glob_matches(&ending_in_last, &name));
        }

        #[test]
        fn star_matches_exactly_the_single_segment_names(name in valid_localpart()) {
            prop_assert_eq!(glob_matches("*", &name), !name.contains('/'));
            let segments = name.split('/').count();
            let per_segment = vec!["*"; segments].join("/");
            prop_assert!(glob_matches(&per_segment, &name));
            let one_more = format!("{per_segment}/*");
            prop_assert!(!glob_matches(&one_more, &name));
        }

        #[test]
        fn agrees_with_a_naive_reference(pattern in small_glob(), name in small_name()) {
            let glob = Glob::parse(&pattern).unwrap();
            prop_assert_eq!(
                glob.matches(&name),
                reference_glob_match(&pattern, &name),
                "pattern {:?} name {:?}", pattern, name
            );
        }

        #[test]
        fn parse_and_match_never_panic(pattern in any::<String>(), name in any::<String>()) {
            let _ = glob_matches(&pattern, &name);
        }

        #[test]
        fn parse_and_match_never_panic_on_near_valid_input(
            pattern in "[a-c*?/.A]{0,30}",
            name in "[a-c/.]{0,30}",
        ) {
            if let Ok(glob) = Glob::parse(&pattern) {
                prop_assert_eq!(glob.to_string(), pattern.clone());
                if glob.matches(&name) {
                    prop_assert!(check_shape(&name).is_ok());
                }
            }
        }
    }
}
