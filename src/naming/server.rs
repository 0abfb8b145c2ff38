//! Server names: the part of a Matrix ID after the first `:`, such as `bureau.local:8448`.
//!
//! Invariant: a [`ServerName`] follows the Matrix server-name grammar — a DNS hostname, an IPv4
//! literal or a bracketed IPv6 literal, optionally followed by `:port` (1–65535). It is kept
//! exactly as written (no case folding), so comparisons and globs are byte-for-byte.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// The longest DNS hostname, in bytes.
const MAX_HOSTNAME_LEN: usize = 255;
/// The longest DNS label, in bytes.
const MAX_LABEL_LEN: usize = 63;
/// The most digits a port may have.
const MAX_PORT_DIGITS: usize = 5;

/// A validated Matrix server name.
///
/// Example: `ServerName::parse("bureau.local:8448")` → host `bureau.local`, port `Some(8448)`;
/// `ServerName::parse("[::1]")` → host `[::1]`, port `None`.
///
/// ```
/// use bureau::naming::ServerName;
///
/// let server = ServerName::parse("bureau.local:8448")?;
/// assert_eq!((server.host(), server.port()), ("bureau.local", Some(8448)));
/// assert_eq!(server.to_string(), "bureau.local:8448");
/// assert_eq!(ServerName::parse("[::1]")?.host(), "[::1]");
/// # Ok::<(), bureau::naming::ServerNameError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerName(String);

/// Why a string is not a valid server name. Every message names the whole input and the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServerNameError {
    /// The input is empty.
    ///
    /// Example: `""` → `server name "": is empty; use a hostname such as bureau.local`.
    #[error("server name \"\": is empty; use a hostname such as bureau.local")]
    Empty,

    /// Nothing before the `:port`.
    ///
    /// Example: `":8448"` → `server name ":8448": has a port but no host before the ':'`.
    #[error("server name {input:?}: has a port but no host before the ':'")]
    EmptyHost {
        /// The whole input.
        input: String,
    },

    /// More than one `:` outside brackets, as in an unbracketed IPv6 address.
    ///
    /// Example: `"::1"` → `server name "::1": has more than one ':'; write an IPv6 address in
    /// brackets, e.g. [::1] or [::1]:8448`.
    #[error(
        "server name {input:?}: has more than one ':'; write an IPv6 address in brackets, e.g. \
         [::1] or [::1]:8448"
    )]
    UnbracketedIpv6 {
        /// The whole input.
        input: String,
    },

    /// A `[` with no matching `]`.
    ///
    /// Example: `"[::1"` → `server name "[::1": '[' is not closed; write an IPv6 literal as
    /// [::1]`.
    #[error("server name {input:?}: '[' is not closed; write an IPv6 literal as [::1]")]
    UnclosedBracket {
        /// The whole input.
        input: String,
    },

    /// The text between brackets is not an IPv6 address.
    ///
    /// Example: `"[fe80::zz]"` → `server name "[fe80::zz]": "fe80::zz" is not an IPv6 address`.
    #[error("server name {input:?}: {address:?} is not an IPv6 address")]
    InvalidIpv6 {
        /// The whole input.
        input: String,
        /// The text between the brackets.
        address: String,
    },

    /// Something other than `:port` after the closing `]`.
    ///
    /// Example: `"[::1]x"` → `server name "[::1]x": unexpected "x" after ']'; only :port may
    /// follow an IPv6 literal`.
    #[error(
        "server name {input:?}: unexpected {rest:?} after ']'; only :port may follow an IPv6 \
         literal"
    )]
    TextAfterIpv6 {
        /// The whole input.
        input: String,
        /// What follows the `]`.
        rest: String,
    },

    /// A hostname character outside `[A-Za-z0-9.-]`.
    ///
    /// Example: `"bureau_local"` → `server name "bureau_local": character '_' at byte 6 is not
    /// allowed in a hostname (use letters, digits, '-' and '.')`.
    #[error(
        "server name {input:?}: character {character:?} at byte {position} is not allowed in a \
         hostname (use letters, digits, '-' and '.')"
    )]
    InvalidCharacter {
        /// The whole input.
        input: String,
        /// The first character that is not allowed.
        character: char,
        /// Its byte offset in `input`.
        position: usize,
    },

    /// The hostname is longer than 255 bytes.
    ///
    /// Example: a 256-byte hostname → `server name "aaa…": hostname is 256 bytes, longer than
    /// the 255 bytes DNS allows`.
    #[error(
        "server name {input:?}: hostname is {length} bytes, longer than the {MAX_HOSTNAME_LEN} \
         bytes DNS allows"
    )]
    HostnameTooLong {
        /// The whole input.
        input: String,
        /// The hostname's length in bytes.
        length: usize,
    },

    /// An empty label (`a..b`, `.a`, `a.`).
    ///
    /// Example: `"bureau..local"` → `server name "bureau..local": empty label in hostname
    /// "bureau..local" (a '.' at the start or end, or two in a row)`.
    #[error(
        "server name {input:?}: empty label in hostname {hostname:?} (a '.' at the start or end, \
         or two in a row)"
    )]
    EmptyLabel {
        /// The whole input.
        input: String,
        /// The hostname part.
        hostname: String,
    },

    /// A label longer than 63 bytes.
    ///
    /// Example: a 64-byte label → `server name "aaa….local": label "aaa…" is 64 bytes, longer
    /// than the 63 bytes DNS allows`.
    #[error(
        "server name {input:?}: label {label:?} is {length} bytes, longer than the \
         {MAX_LABEL_LEN} bytes DNS allows"
    )]
    LabelTooLong {
        /// The whole input.
        input: String,
        /// The offending label.
        label: String,
        /// Its length in bytes.
        length: usize,
    },

    /// A label starting or ending with `-`.
    ///
    /// Example: `"-bureau.local"` → `server name "-bureau.local": label "-bureau" starts or ends
    /// with '-'`.
    #[error("server name {input:?}: label {label:?} starts or ends with '-'")]
    LabelHyphen {
        /// The whole input.
        input: String,
        /// The offending label.
        label: String,
    },

    /// A hostname ending in a numeric label (so read as IPv4) that is not an IPv4 address.
    ///
    /// Example: `"999.0.0.1"` → `server name "999.0.0.1": "999.0.0.1" ends in a numeric label,
    /// so it is read as an IPv4 address, but it is not one (expected four numbers 0-255 without
    /// leading zeros, like 192.0.2.1)`.
    #[error(
        "server name {input:?}: {hostname:?} ends in a numeric label, so it is read as an IPv4 \
         address, but it is not one (expected four numbers 0-255 without leading zeros, like \
         192.0.2.1)"
    )]
    InvalidIpv4 {
        /// The whole input.
        input: String,
        /// The hostname part.
        hostname: String,
    },

    /// A port that is not 1–5 digits with a value from 1 to 65535.
    ///
    /// Example: `"bureau.local:0"` → `server name "bureau.local:0": port "0" is not a number
    /// from 1 to 65535`.
    #[error("server name {input:?}: port {port:?} is not a number from 1 to 65535")]
    InvalidPort {
        /// The whole input.
        input: String,
        /// The text after the `:`.
        port: String,
    },
}

impl ServerName {
    /// Parses a Matrix server name: `hostname[:port]`, where hostname is a DNS name, an IPv4
    /// literal or a bracketed IPv6 literal.
    ///
    /// Example: `"bureau.local"` → `Ok`; `"192.0.2.1:8448"` → `Ok`; `"[::1]:8448"` → `Ok`;
    /// `"bureau.local:0"` → `Err(... port "0" is not a number from 1 to 65535)`.
    ///
    /// ```
    /// use bureau::naming::ServerName;
    ///
    /// for good in ["bureau.local", "192.0.2.1:8448", "[::1]:8448", "localhost"] {
    ///     assert_eq!(ServerName::parse(good)?.as_str(), good);
    /// }
    /// let error = ServerName::parse("bureau.local:0").unwrap_err().to_string();
    /// assert!(error.contains("port \"0\""));
    /// # Ok::<(), bureau::naming::ServerNameError>(())
    /// ```
    pub fn parse(input: &str) -> Result<Self, ServerNameError> {
        if input.is_empty() {
            return Err(ServerNameError::Empty);
        }
        let port = if input.starts_with('[') {
            parse_bracketed_ipv6(input)?
        } else {
            let (hostname, port) = match input.split_once(':') {
                Some((hostname, port)) => (hostname, Some(port)),
                None => (input, None),
            };
            check_hostname_characters(input, hostname)?;
            if port.is_some_and(|port| port.contains(':')) {
                return Err(ServerNameError::UnbracketedIpv6 {
                    input: input.to_owned(),
                });
            }
            check_hostname(input, hostname)?;
            port
        };
        if let Some(port) = port {
            check_port(input, port)?;
        }
        Ok(Self(input.to_owned()))
    }

    /// The server name as written.
    ///
    /// Example: `bureau.local:8448` → `"bureau.local:8448"`.
    ///
    /// ```
    /// # use bureau::naming::ServerName;
    /// assert_eq!(ServerName::parse("bureau.local:8448")?.as_str(), "bureau.local:8448");
    /// # Ok::<(), bureau::naming::ServerNameError>(())
    /// ```
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The host, without the port (an IPv6 host keeps its brackets).
    ///
    /// Example: `bureau.local:8448` → `"bureau.local"`; `[::1]:8448` → `"[::1]"`.
    ///
    /// ```
    /// # use bureau::naming::ServerName;
    /// assert_eq!(ServerName::parse("[::1]:8448")?.host(), "[::1]");
    /// # Ok::<(), bureau::naming::ServerNameError>(())
    /// ```
    pub fn host(&self) -> &str {
        self.split_host_port().0
    }

    /// The explicit port, if any.
    ///
    /// Example: `bureau.local:8448` → `Some(8448)`; `bureau.local` → `None`.
    ///
    /// ```
    /// # use bureau::naming::ServerName;
    /// assert_eq!(ServerName::parse("bureau.local:8448")?.port(), Some(8448));
    /// assert_eq!(ServerName::parse("bureau.local")?.port(), None);
    /// # Ok::<(), bureau::naming::ServerNameError>(())
    /// ```
    pub fn port(&self) -> Option<u16> {
        self.split_host_port().1.and_then(|port| port.parse().ok())
    }

    /// Splits the (already validated) name into host and optional port text.
    fn split_host_port(&self) -> (&str, Option<&str>) {
        let host_end = if self.0.starts_with('[') {
            self.0.find(']').map_or(self.0.len(), |end| end + 1)
        } else {
            self.0.find(':').unwrap_or(self.0.len())
        };
        let (host, rest) = self.0.split_at(host_end);
        (host, rest.strip_prefix(':'))
    }
}

/// Validates `[ipv6]` with an optional `:port`; returns the port text.
fn parse_bracketed_ipv6(input: &str) -> Result<Option<&str>, ServerNameError> {
    let Some(close) = input.find(']') else {
        return Err(ServerNameError::UnclosedBracket {
            input: input.to_owned(),
        });
    };
    let address = input.get(1..close).unwrap_or_default();
    if address.parse::<Ipv6Addr>().is_err() {
        return Err(ServerNameError::InvalidIpv6 {
            input: input.to_owned(),
            address: address.to_owned(),
        });
    }
    let rest = input.get(close + 1..).unwrap_or_default();
    if rest.is_empty() {
        return Ok(None);
    }
    match rest.strip_prefix(':') {
        Some(port) => Ok(Some(port)),
        None => Err(ServerNameError::TextAfterIpv6 {
            input: input.to_owned(),
            rest: rest.to_owned(),
        }),
    }
}

/// Rejects the first character of `hostname` (the start of `input`) that cannot appear in a
/// DNS name or IPv4 literal.
fn check_hostname_characters(input: &str, hostname: &str) -> Result<(), ServerNameError> {
    match hostname
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '-' || c == '.'))
    {
        Some((position, character)) => Err(ServerNameError::InvalidCharacter {
            input: input.to_owned(),
            character,
            position,
        }),
        None => Ok(()),
    }
}

/// Validates the structure of a DNS hostname or IPv4 literal (the part of `input` before any
/// `:`), whose characters have been checked.
fn check_hostname(input: &str, hostname: &str) -> Result<(), ServerNameError> {
    if hostname.is_empty() {
        return Err(ServerNameError::EmptyHost {
            input: input.to_owned(),
        });
    }
    if hostname.len() > MAX_HOSTNAME_LEN {
        return Err(ServerNameError::HostnameTooLong {
            input: input.to_owned(),
            length: hostname.len(),
        });
    }
    for label in hostname.split('.') {
        if label.is_empty() {
            return Err(ServerNameError::EmptyLabel {
                input: input.to_owned(),
                hostname: hostname.to_owned(),
            });
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(ServerNameError::LabelTooLong {
                input: input.to_owned(),
                label: label.to_owned(),
                length: label.len(),
            });
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(ServerNameError::LabelHyphen {
                input: input.to_owned(),
                label: label.to_owned(),
            });
        }
    }
    // A top-level label is never all digits, so such a hostname can only be an IPv4 literal.
    let ends_numeric = hostname
        .rsplit('.')
        .next()
        .is_some_and(|last| last.bytes().all(|byte| byte.is_ascii_digit()));
    if ends_numeric && hostname.parse::<Ipv4Addr>().is_err() {
        return Err(ServerNameError::InvalidIpv4 {
            input: input.to_owned(),
            hostname: hostname.to_owned(),
        });
    }
    Ok(())
}

/// Validates a port: 1–5 ASCII digits, value 1–65535.
fn check_port(input: &str, port: &str) -> Result<(), ServerNameError> {
    let valid = !port.is_empty()
        && port.len() <= MAX_PORT_DIGITS
        && port.bytes().all(|byte| byte.is_ascii_digit())
        && port
            .parse::<u32>()
            .is_ok_and(|value| (1..=65535).contains(&value));
    if valid {
        Ok(())
    } else {
        Err(ServerNameError::InvalidPort {
            input: input.to_owned(),
            port: port.to_owned(),
        })
    }
}

impl fmt::Display for ServerName {
    /// Example: `bureau.local:8448` → `bureau.local:8448`.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl FromStr for ServerName {
    type Err = ServerNameError;

    /// Same as [`ServerName::parse`]. Example: `"bureau.local".parse::<ServerName>()` → `Ok`.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        Self::parse(input)
    }
}

impl AsRef<str> for ServerName {
    /// Example: `bureau.local` → `"bureau.local"`.
    fn as_ref(&self) -> &str {
        &self.0
    }
}

serde_as_validated_string!(ServerName);

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::naming::strategies::valid_server_name;

    fn error_text(input: &str) -> String {
        ServerName::parse(input).unwrap_err().to_string()
    }

    #[test]
    fn accepts_hostnames_ip_literals_and_ports() {
        for (input, host, port) in [
            ("bureau.local", "bureau.local", None),
            ("localhost", "localhost", None),
            ("Matrix.Example.ORG", "Matrix.Example.ORG", None),
            ("a-b.c0", "a-b.c0", None),
            ("bureau.local:8448", "bureau.local", Some(8448)),
            ("bureau.local:1", "bureau.local", Some(1)),
            ("bureau.local:65535", "bureau.local", Some(65535)),
            ("192.0.2.1", "192.0.2.1", None),
            ("192.0.2.1:8448", "192.0.2.1", Some(8448)),
            ("[::1]", "[::1]", None),
            ("[::1]:8448", "[::1]", Some(8448)),
            ("[2001:db8::1]:443", "[2001:db8::1]", Some(443)),
            ("[::ffff:192.0.2.1]", "[::ffff:192.0.2.1]", None),
            ("1a.2b", "1a.2b", None),
        ] {
            let server = ServerName::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(server.as_str(), input);
            assert_eq!(server.to_string(), input);
            assert_eq!(server.host(), host, "{input}");
            assert_eq!(server.port(), port, "{input}");
        }
    }

    #[test]
    fn accepts_maximum_label_and_hostname_lengths() {
        let label = "a".repeat(63);
        assert!(ServerName::parse(&format!("{label}.local")).is_ok());
        // 4 labels of 63 + 3 dots = 255 bytes.
        let longest = [label.as_str(); 4].join(".");
        assert_eq!(longest.len(), 255);
        assert!(ServerName::parse(&longest).is_ok());
    }

    #[test]
    fn rejects_empty() {
        assert_eq!(ServerName::parse(""), Err(ServerNameError::Empty));
        assert!(error_text("").contains("is empty"));
    }

    #[test]
    fn rejects_missing_host() {
        assert_eq!(
            ServerName::parse(":8448"),
            Err(ServerNameError::EmptyHost {
                input: ":8448".into()
            })
        );
        assert!(error_text(":8448").contains("no host"));
    }

    #[test]
    fn rejects_unbracketed_ipv6() {
        for input in ["::1", "2001:db8::1", "a:1:2"] {
            let message = error_text(input);
            assert!(message.contains("in brackets"), "{message}");
            assert!(message.contains(&format!("{input:?}")), "{message}");
        }
    }

    #[test]
    fn rejects_bad_ipv6_literals() {
        assert!(matches!(
            ServerName::parse("[::1"),
            Err(ServerNameError::UnclosedBracket { .. })
        ));
        assert!(error_text("[::1").contains("not closed"));
        assert_eq!(
            ServerName::parse("[fe80::zz]"),
            Err(ServerNameError::InvalidIpv6 {
                input: "[fe80::zz]".into(),
                address: "fe80::zz".into(),
            })
        );
        assert!(error_text("[]").contains("\"\" is not an IPv6 address"));
        assert!(error_text("[192.0.2.1]").contains("not an IPv6 address"));
        assert_eq!(
            ServerName::parse("[::1]x"),
            Err(ServerNameError::TextAfterIpv6 {
                input: "[::1]x".into(),
                rest: "x".into(),
            })
        );
        assert!(error_text("[::1]]").contains("after ']'"));
    }

    #[test]
    fn rejects_bad_hostname_characters() {
        assert_eq!(
            ServerName::parse("bureau_local"),
            Err(ServerNameError::InvalidCharacter {
                input: "bureau_local".into(),
                character: '_',
                position: 6,
            })
        );
        let message = error_text("bureau_local");
        assert!(message.contains("'_' at byte 6"), "{message}");
        for input in ["a b", "a/b", "é.local", "a]", "@a", "a[::1]"] {
            assert!(
                matches!(
                    ServerName::parse(input),
                    Err(ServerNameError::InvalidCharacter { .. })
                ),
                "{input}"
            );
        }
    }

    #[test]
    fn rejects_overlong_hostname_and_labels() {
        let label = "a".repeat(63);
        let too_long = format!("{}.a", [label.as_str(); 4].join("."));
        assert_eq!(too_long.len(), 257);
        assert!(matches!(
            ServerName::parse(&too_long),
            Err(ServerNameError::HostnameTooLong { length: 257, .. })
        ));
        assert!(error_text(&too_long).contains("257 bytes"));

        let long_label = "b".repeat(64);
        let input = format!("{long_label}.local");
        assert_eq!(
            ServerName::parse(&input),
            Err(ServerNameError::LabelTooLong {
                input: input.clone(),
                label: long_label.clone(),
                length: 64,
            })
        );
        assert!(error_text(&input).contains("is 64 bytes"));
    }

    #[test]
    fn rejects_empty_labels() {
        for input in ["bureau..local", ".bureau", "bureau.", "."] {
            assert!(
                matches!(
                    ServerName::parse(input),
                    Err(ServerNameError::EmptyLabel { .. })
                ),
                "{input}"
            );
        }
        assert!(error_text("bureau..local").contains("empty label"));
    }

    #[test]
    fn rejects_labels_with_edge_hyphens() {
        assert_eq!(
            ServerName::parse("-bureau.local"),
            Err(ServerNameError::LabelHyphen {
                input: "-bureau.local".into(),
                label: "-bureau".into(),
            })
        );
        assert!(error_text("bureau-.local").contains("\"bureau-\" starts or ends with '-'"));
    }

    #[test]
    fn rejects_numeric_hostnames_that_are_not_ipv4() {
        for input in [
            "999.0.0.1",
            "1.2.3",
            "1.2.3.4.5",
            "01.2.3.4",
            "example.123",
            "8448",
        ] {
            assert!(
                matches!(
                    ServerName::parse(input),
                    Err(ServerNameError::InvalidIpv4 { .. })
                ),
                "{input}"
            );
        }
        assert!(error_text("999.0.0.1").contains("is not one"));
    }

    #[test]
    fn rejects_bad_ports() {
        for input in [
            "a:", "a:0", "a:65536", "a:99999", "a:008448", "a:+1", "a:-1", "a:12a", "[::1]:",
            "[::1]:0",
        ] {
            assert!(
                matches!(
                    ServerName::parse(input),
                    Err(ServerNameError::InvalidPort { .. })
                ),
                "{input}"
            );
        }
        assert_eq!(
            ServerName::parse("bureau.local:0"),
            Err(ServerNameError::InvalidPort {
                input: "bureau.local:0".into(),
                port: "0".into(),
            })
        );
        assert!(error_text("bureau.local:0").contains("from 1 to 65535"));
    }

    #[test]
    fn from_str_and_serde_validate() {
        let server: ServerName = "bureau.local:8448".parse().unwrap();
        let json = serde_json::to_string(&server).unwrap();
        assert_eq!(json, "\"bureau.local:8448\"");
        assert_eq!(serde_json::from_str::<ServerName>(&json).unwrap(), server);
        assert!(serde_json::from_str::<ServerName>("\"a:0\"").is_err());
    }

    proptest! {
        #[test]
        fn valid_server_names_round_trip(input in valid_server_name()) {
            let server = ServerName::parse(&input).unwrap();
            prop_assert_eq!(server.to_string(), input);
        }

        #[test]
        fn ip_literals_round_trip(v4 in any::<Ipv4Addr>(), v6 in any::<Ipv6Addr>(), port in 1u16..) {
            let plain = ServerName::parse(&v4.to_string()).unwrap();
            let v4_text = v4.to_string();
            prop_assert_eq!((plain.host(), plain.port()), (v4_text.as_str(), None));
            let with_port = ServerName::parse(&format!("{v4}:{port}")).unwrap();
            prop_assert_eq!(with_port.port(), Some(port));
            let bracketed = format!("[{v6}]");
            let ipv6 = ServerName::parse(&format!("{bracketed}:{port}")).unwrap();
            prop_assert_eq!((ipv6.host(), ipv6.port()), (bracketed.as_str(), Some(port)));
        }

        #[test]
        fn parse_never_panics(input in any::<String>()) {
            let _ = ServerName::parse(&input);
        }

        #[test]
        fn parse_never_panics_on_near_valid_input(input in "[a-zA-Z0-9.:\\[\\]_-]{0,40}") {
            if let Ok(server) = ServerName::parse(&input) {
                prop_assert_eq!(server.as_str(), input.as_str());
                prop_assert!(server.host().len() <= input.len());
            }
        }
    }
}
