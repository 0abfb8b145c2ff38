//! Process-wide logging through `tracing`.
//!
//! Invariant: logs go to stderr only, and no secret ever reaches a log line (secrets are held in
//! types whose `Debug` is redacted; callers log names, never values).
//!
//! The level comes from `--log-level` if given, else `RUST_LOG`, else the applet's default.
//! Under systemd (stderr is the journal, detected by `JOURNAL_STREAM`) lines are compact, without
//! timestamps or colour, because the journal adds its own; otherwise they are human-oriented.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// How log lines are rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// stderr is the systemd journal: no timestamps, no colour, compact fields.
    Journal,
    /// Anything else: timestamps, colour when stderr is a terminal.
    Human,
}

/// The log level could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid log level {value:?}: {reason}\nHint: use one of error, warn, info, debug, trace, or a \
     filter such as \"bureau=debug,info\""
)]
pub struct LogLevelError {
    value: String,
    reason: String,
}

/// Chooses the format from the environment: `Journal` when `JOURNAL_STREAM` names the device and
/// inode of our stderr (systemd sets it when it connects stderr to the journal).
pub fn detect_format() -> LogFormat {
    match std::env::var("JOURNAL_STREAM") {
        Ok(value) if stderr_is_stream(&value) => LogFormat::Journal,
        _ => LogFormat::Human,
    }
}

/// `JOURNAL_STREAM` is `<device>:<inode>` of the journal socket; it is inherited by children whose
/// stderr may have been redirected, so it counts only when it still matches fd 2.
fn stderr_is_stream(journal_stream: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some((device, inode)) = journal_stream.split_once(':') else {
        return false;
    };
    let (Ok(device), Ok(inode)) = (device.parse::<u64>(), inode.parse::<u64>()) else {
        return false;
    };
    match std::fs::metadata("/proc/self/fd/2") {
        Ok(metadata) => metadata.dev() == device && metadata.ino() == inode,
        // Without /proc (inside a minimal sandbox) trust the variable.
        Err(_) => true,
    }
}

/// Builds the filter: `explicit_level` (from `--log-level`) wins over `RUST_LOG`, which wins over
/// `default_level`.
pub fn filter(
    explicit_level: Option<&str>,
    default_level: &str,
) -> Result<EnvFilter, LogLevelError> {
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .filter(|value| !value.is_empty());
    let directives = explicit_level
        .map(str::to_owned)
        .or(from_env)
        .unwrap_or_else(|| default_level.to_owned());
    EnvFilter::try_new(&directives).map_err(|error| LogLevelError {
        value: directives.clone(),
        reason: error.to_string(),
    })
}

/// Installs the global subscriber. Call once, early, from the applet's entry point.
/// A second call is a no-op (the first subscriber stays), so tests may call it freely.
pub fn init(explicit_level: Option<&str>, default_level: &str) -> Result<(), LogLevelError> {
    let filter = filter(explicit_level, default_level)?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match detect_format() {
        LogFormat::Journal => builder
            .compact()
            .without_time()
            .with_ansi(false)
            .with_target(true)
            .try_init(),
        LogFormat::Human => builder
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
            .try_init(),
    };
    // An already-installed subscriber is fine (see above).
    drop(installed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_level_wins_over_default() {
        let filter = filter(Some("debug"), "warn").expect("debug is a valid level");
        assert_eq!(filter.to_string(), "debug");
    }

    #[test]
    fn bad_level_names_the_value_and_the_fix() {
        let error = filter(Some("loud=[[["), "warn").expect_err("must be rejected");
        let message = error.to_string();
        assert!(message.contains("loud=[[["), "{message}");
        assert!(message.contains("Hint"), "{message}");
    }

    #[test]
    fn journal_stream_that_does_not_match_stderr_is_ignored() {
        assert!(!stderr_is_stream("not-a-pair"));
        assert!(!stderr_is_stream("x:y"));
        // Device 0 inode 1 is never a real stderr.
        assert!(!stderr_is_stream("0:1"));
    }
}
