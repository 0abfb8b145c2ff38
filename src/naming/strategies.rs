//! Proptest strategies shared by the naming module's tests.

use proptest::prelude::*;

/// Valid localparts: 1–5 segments, each starting with a non-`.` character, within the default
/// 84-byte limit. Example output: `q_0/x.y=z/-`.
pub(crate) fn valid_localpart() -> impl Strategy<Value = String> {
    prop::collection::vec("[a-z0-9_=-][a-z0-9._=-]{0,12}", 1..=5)
        .prop_map(|segments| segments.join("/"))
        .prop_filter("fits the default run dir", |name| name.len() <= 84)
}

/// Valid DNS server names with an optional port. Example output: `a-b.c9:8448`.
pub(crate) fn valid_server_name() -> impl Strategy<Value = String> {
    (
        prop::collection::vec("[a-z]([a-z0-9-]{0,8}[a-z0-9])?", 1..=4),
        prop::option::of(1u16..=65535),
    )
        .prop_map(|(labels, port)| match port {
            Some(port) => format!("{}:{port}", labels.join(".")),
            None => labels.join("."),
        })
}

/// Small valid globs over the alphabet `a`, `b`, `*`, `?` with whole-segment `**`.
/// Example output: `a*/**/?b`.
pub(crate) fn small_glob() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        Just("**".to_owned()),
        "[ab*?]{1,4}".prop_filter("no ** inside a segment", |s| !s.contains("**")),
    ];
    prop::collection::vec(segment, 1..=4).prop_map(|segments| segments.join("/"))
}

/// Small valid names over the alphabet `a`, `b`. Example output: `ab/b/a`.
pub(crate) fn small_name() -> impl Strategy<Value = String> {
    prop::collection::vec("[ab]{1,4}", 1..=5).prop_map(|segments| segments.join("/"))
}
