//! Fuzzes the proxy's service configuration and rule matching (`bureau::proxy::service`) and its
//! grant matching (`bureau::proxy::state::grant_allows`): nothing panics on arbitrary input, path
//! globs agree with a naive reference matcher for small inputs and keep their stated
//! properties, and validated configurations answer `allows` for any method and path.
//!
//! Input layout: the bytes as UTF-8; the first NUL byte splits them into (a, b) (no NUL: the
//! whole input is `a` and `b` is empty). `a` is a glob, a service name, a `ServiceConfig` as JSON
//! and a grant list as JSON; `b` is a path, a service name to validate under, and a grant target.

#![no_main]

use bureau::proxy::payload::Grant;
use bureau::proxy::service::{ServiceConfig, is_service_name, path_glob_matches};
use bureau::proxy::state::grant_allows;
use libfuzzer_sys::fuzz_target;

/// Inputs up to this many bytes (each) are also checked against the reference matcher.
const REFERENCE_MAX: usize = 24;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let (a, b) = input.split_once('\0').unwrap_or((input, ""));
    check_service_name(a);
    check_service_name(b);
    check_glob(a, b);
    check_service_config(a, b);
    check_grants(a, b);
});

/// The service-name rule, restated: 1-64 of `a-z`, `0-9`, `-`, `_`.
fn check_service_name(name: &str) {
    let expected = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| matches!(c, 'a'..='z' | '0'..='9' | '-' | '_'));
    assert_eq!(is_service_name(name), expected, "{name:?}");
}

/// Path globs: small inputs agree with the reference; literal globs match only themselves;
/// `**` matches everything and `/**` every absolute path (and the empty one); a glob matches itself with its
/// stars removed (each `*` can match nothing, each `**` segment the one empty segment).
fn check_glob(glob: &str, path: &str) {
    let matched = path_glob_matches(glob, path);
    if glob.len() <= REFERENCE_MAX && path.len() <= REFERENCE_MAX {
        assert_eq!(
            matched,
            reference_path_match(glob, path),
            "{glob:?} vs {path:?}"
        );
    }
    if !glob.contains('*') {
        assert_eq!(matched, glob == path, "literal {glob:?} vs {path:?}");
    }
    assert!(path_glob_matches("**", path), "** vs {path:?}");
    // (The empty path is one empty segment, which the glob's leading empty segment matches.)
    assert_eq!(
        path_glob_matches("/**", path),
        path.is_empty() || path.starts_with('/'),
        "/** vs {path:?}"
    );
    let starless = glob.replace('*', "");
    assert!(
        path_glob_matches(glob, &starless),
        "{glob:?} does not match {starless:?}"
    );
}

/// `ServiceConfig` from JSON: validation never panics; a valid one has a valid name and answers
/// `allows` for any method and path (everything when it has no rules) and survives a JSON round
/// trip.
fn check_service_config(json: &str, name: &str) {
    let Ok(config) = serde_json::from_str::<ServiceConfig>(json) else {
        return;
    };
    let valid = config.validate(name).is_ok();
    if let Err(error) = config.validate(name) {
        // Errors are printable (they go into 400 responses).
        assert!(!error.to_string().is_empty());
    }
    if !valid {
        return;
    }
    assert!(is_service_name(name), "validated under bad name {name:?}");
    for method in ["GET", "POST", "delete", "", name] {
        for path in ["/", "/v1/chat/completions", "", "/a/b/c", name, json] {
            let allowed = config.allows(method, path);
            if config.rules.is_empty() {
                assert!(allowed, "no rules, yet {method} {path:?} refused");
            }
        }
    }
    if config.rate.is_none() {
        let text = serde_json::to_string(&config).expect("a config serializes");
        let back: ServiceConfig = serde_json::from_str(&text).expect("its JSON parses back");
        assert_eq!(back, config, "round trip through {text}");
    }
}

/// Grants from JSON: matching never panics, and a target can only narrow what an action
/// allows.
fn check_grants(json: &str, other: &str) {
    let Ok(grants) = serde_json::from_slice::<Vec<Grant>>(json.as_bytes()) else {
        return;
    };
    for (action, target) in [(json, other), (other, other), (other, json)] {
        let with_target = grant_allows(&grants, action, Some(target));
        let without = grant_allows(&grants, action, None);
        assert!(
            !with_target || without,
            "{action:?} allowed on {target:?} but not without a target"
        );
        if grants.is_empty() {
            assert!(!without, "no grants, yet {action:?} allowed");
        }
    }
}

/// The path-glob semantics written down directly: both strings split at every `/`; a glob
/// segment that is exactly `**` matches zero or more whole path segments; any other glob
/// segment matches exactly one path segment, `*` there standing for any run of bytes
/// (so `**` inside a longer segment is just two stars). Memoised recursion, so the worst small
/// inputs stay fast.
fn reference_path_match(glob: &str, path: &str) -> bool {
    let glob: Vec<&str> = glob.split('/').collect();
    let path: Vec<&str> = path.split('/').collect();
    let mut memo = vec![None; (glob.len() + 1) * (path.len() + 1)];
    segments_match(&glob, &path, 0, 0, &mut memo)
}

fn segments_match(
    glob: &[&str],
    path: &[&str],
    g: usize,
    p: usize,
    memo: &mut [Option<bool>],
) -> bool {
    let key = g * (path.len() + 1) + p;
    if let Some(known) = memo[key] {
        return known;
    }
    let result = if g == glob.len() {
        p == path.len()
    } else if glob[g] == "**" {
        (p..=path.len()).any(|next| segments_match(glob, path, g + 1, next, memo))
    } else {
        p < path.len()
            && segment_match(glob[g].as_bytes(), path[p].as_bytes())
            && segments_match(glob, path, g + 1, p + 1, memo)
    };
    memo[key] = Some(result);
    result
}

/// One segment: `*` is any run of bytes, every other byte itself.
fn segment_match(pattern: &[u8], text: &[u8]) -> bool {
    let mut memo = vec![None; (pattern.len() + 1) * (text.len() + 1)];
    bytes_match(pattern, text, 0, 0, &mut memo)
}

fn bytes_match(pattern: &[u8], text: &[u8], i: usize, j: usize, memo: &mut [Option<bool>]) -> bool {
    let key = i * (text.len() + 1) + j;
    if let Some(known) = memo[key] {
        return known;
    }
    let result = match pattern.get(i) {
        None => j == text.len(),
        Some(b'*') => (j..=text.len()).any(|next| bytes_match(pattern, text, i + 1, next, memo)),
        Some(byte) => text.get(j) == Some(byte) && bytes_match(pattern, text, i + 1, j + 1, memo),
    };
    memo[key] = Some(result);
    result
}
