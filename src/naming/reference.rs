//! The glob semantics written as directly as possible, to check the real matcher against.
//!
//! Exponential in the worst case: for tests and the fuzz target on small inputs only, never for
//! authorization (use [`Glob`](super::Glob)). Public so the out-of-workspace fuzz crate can reach it.

/// The glob semantics written down as directly as possible (exponential; small inputs only).
pub fn reference_glob_match(pattern: &str, name: &str) -> bool {
    let pattern: Vec<&str> = pattern.split('/').collect();
    let name: Vec<&str> = name.split('/').collect();
    segments_match(&pattern, &name)
}

fn segments_match(pattern: &[&str], name: &[&str]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((&"**", rest)) => (0..=name.len()).any(|skip| segments_match(rest, &name[skip..])),
        Some((segment, rest)) => match name.split_first() {
            Some((first, name_rest)) => {
                segment_match(segment.as_bytes(), first.as_bytes())
                    && segments_match(rest, name_rest)
            }
            None => false,
        },
    }
}

fn segment_match(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|skip| segment_match(rest, &text[skip..])),
        Some((b'?', rest)) => !text.is_empty() && segment_match(rest, &text[1..]),
        Some((literal, rest)) => text.first() == Some(literal) && segment_match(rest, &text[1..]),
    }
}
