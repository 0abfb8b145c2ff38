//! Fuzzes `bureau::naming`: every parser on arbitrary text, and glob / user-ID-pattern matching
//! on arbitrary (pattern, name) pairs, checked against the module's invariants and, for small
//! inputs, against a naive reference matcher.
//!
//! Input layout: the bytes as UTF-8; the first NUL byte splits them into (pattern, name) for the
//! matchers (no NUL: the whole input is the pattern and the name is empty).

#![no_main]

use bureau::naming::{
    Glob, Localpart, RoomAlias, ServerName, UserId, UserIdPattern, glob_matches,
    user_id_pattern_matches,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    check_parsers(input);
    let (pattern, name) = input.split_once('\0').unwrap_or((input, ""));
    check_glob(pattern, name);
    check_user_id_pattern(pattern, name);
});

/// Every parser: accepted values display as the input and re-parse to an equal value; the
/// localpart validator agrees with an independent statement of its rules.
fn check_parsers(input: &str) {
    assert_eq!(
        Localpart::parse(input).is_ok(),
        well_formed(input) && input.len() <= 84,
        "{input:?}"
    );
    if let Ok(localpart) = Localpart::parse(input) {
        assert_eq!(localpart.as_str(), input);
        assert!(input.len() <= 84, "{input:?} is over the default limit");
        assert!(
            localpart
                .segments()
                .all(|s| !s.is_empty() && !s.starts_with('.'))
        );
        let glob = Glob::parse(input).expect("a valid localpart is a valid glob");
        assert!(
            glob.matches(input),
            "{input:?} as a glob does not match itself"
        );
        assert!(glob_matches("**", input));
    }
    if let Ok(user_id) = UserId::parse(input) {
        let text = user_id.to_string();
        assert_eq!(text, input);
        assert_eq!(UserId::parse(&text).as_ref(), Ok(&user_id));
        let room = user_id.room_alias();
        assert_eq!(RoomAlias::parse(&room.to_string()).as_ref(), Ok(&room));
        let literal = format!("{}:{}", user_id.localpart(), user_id.server());
        assert!(
            user_id_pattern_matches(&literal, input),
            "{literal:?} vs {input:?}"
        );
    }
    if let Ok(room) = RoomAlias::parse(input) {
        assert_eq!(room.to_string(), input);
        assert_eq!(RoomAlias::parse(&room.to_string()).as_ref(), Ok(&room));
    }
    if let Ok(server) = ServerName::parse(input) {
        assert_eq!(server.to_string(), input);
        assert!(input.starts_with(server.host()));
        if let Some(port) = server.port() {
            assert!(port >= 1);
            assert!(input.ends_with(&port.to_string()));
        }
    }
}

/// Glob matching: `glob_matches` agrees with `Glob`, malformed patterns and names never match,
/// and small inputs agree with the reference matcher.
fn check_glob(pattern: &str, name: &str) {
    let matched = glob_matches(pattern, name);
    match Glob::parse(pattern) {
        Err(_) => assert!(!matched, "malformed {pattern:?} matched {name:?}"),
        Ok(glob) => {
            assert_eq!(glob.matches(name), matched);
            assert_eq!(glob.to_string(), pattern);
            if matched {
                assert!(well_formed(name), "{pattern:?} matched malformed {name:?}");
            }
            if !pattern.contains(['*', '?']) && Localpart::parse(name).is_ok() {
                assert_eq!(matched, pattern == name, "literal {pattern:?} vs {name:?}");
            }
            if pattern.len() <= 24 && name.len() <= 24 {
                assert_eq!(
                    matched,
                    reference_match(pattern, name),
                    "{pattern:?} vs {name:?}"
                );
            }
        }
    }
}

/// User-ID patterns: the convenience function agrees with the types, and malformed input never
/// matches.
fn check_user_id_pattern(pattern: &str, user_id: &str) {
    let matched = user_id_pattern_matches(pattern, user_id);
    match (UserIdPattern::parse(pattern), UserId::parse(user_id)) {
        (Ok(parsed), Ok(id)) => {
            assert_eq!(parsed.matches(&id), matched);
            assert_eq!(parsed.to_string(), pattern);
        }
        _ => assert!(!matched, "malformed {pattern:?} / {user_id:?} matched"),
    }
}

/// The localpart rules other than length, restated independently of the library.
fn well_formed(name: &str) -> bool {
    let allowed = |c: char| matches!(c, 'a'..='z' | '0'..='9' | '.' | '_' | '=' | '-' | '/');
    !name.is_empty()
        && name.chars().all(allowed)
        && name
            .split('/')
            .all(|segment| !segment.is_empty() && !segment.starts_with('.'))
}

/// The glob semantics written down directly (exponential, so only for small inputs), for names
/// that are well-formed localparts.
fn reference_match(pattern: &str, name: &str) -> bool {
    if !well_formed(name) {
        return false;
    }
    bureau::naming::reference::reference_glob_match(pattern, name)
}

