//! The request log: one line per request — method, service, path, status, bytes, duration —
//! never a header value or a body.
//!
//! Lines are formatted into one process-wide buffer and written to stderr in batches: when the
//! proxy's event loop is about to go idle ([`flush`] is the runtime's park hook), as soon as the
//! buffer passes [`FLUSH_BYTES`], and when the proxy exits. Under load that turns one `write(2)`
//! per request into one per event-loop turn; an idle proxy never holds an unwritten line. What a
//! crash can lose is the lines of the requests completed in the current turn.
//!
//! The lines follow the rest of the log's format (see `logging`): a timestamp first unless
//! stderr is the journal, and nothing when the filter leaves out `bureau::proxy::request` at
//! `info`.

use std::io::Write;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::logging::{LogFormat, detect_format};

/// The tracing target a filter can name to silence or keep these lines.
pub const TARGET: &str = "bureau::proxy::request";
/// Buffered bytes that force a write even though the event loop is busy.
pub const FLUSH_BYTES: usize = 16 * 1024;

static PENDING: Mutex<Vec<u8>> = Mutex::new(Vec::new());
static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// One finished request, as it is logged.
#[derive(Debug, Clone, Copy)]
pub struct RequestLine<'a> {
    pub method: &'a str,
    /// The service for `/http/<service>/…`, else `-`.
    pub service: &'a str,
    pub path: &'a str,
    pub status: u16,
    /// The response's `Content-Length`, or `stream`.
    pub bytes: &'a str,
    pub duration: Duration,
}

fn pending() -> MutexGuard<'static, Vec<u8>> {
    match PENDING.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Appends `line` (if the log filter keeps request lines); writes the batch when it is full.
pub fn record(line: &RequestLine<'_>) {
    if !tracing::enabled!(target: TARGET, tracing::Level::INFO) {
        return;
    }
    let format = *FORMAT.get_or_init(detect_format);
    let mut pending = pending();
    render(&mut pending, line, format, SystemTime::now());
    if pending.len() >= FLUSH_BYTES {
        write_out(&mut pending);
    }
}

/// Writes every buffered line to stderr. The runtime calls it before it parks; call it on exit.
pub fn flush() {
    let mut pending = pending();
    if !pending.is_empty() {
        write_out(&mut pending);
    }
}

fn write_out(pending: &mut Vec<u8>) {
    // A log that cannot be written must not stop the proxy; the lines are dropped.
    let _ = std::io::stderr().lock().write_all(pending);
    pending.clear();
    if pending.capacity() > 4 * FLUSH_BYTES {
        pending.shrink_to(FLUSH_BYTES);
    }
}

fn render(out: &mut Vec<u8>, line: &RequestLine<'_>, format: LogFormat, now: SystemTime) {
    if format == LogFormat::Human {
        timestamp(out, now);
        out.push(b' ');
    }
    // Plain appends: this runs once per request, and `fmt` would cost more than the rest.
    for piece in [
        " INFO ",
        TARGET,
        ": request method=",
        line.method,
        " service=",
        line.service,
        " path=",
        line.path,
        " status=",
    ] {
        out.extend_from_slice(piece.as_bytes());
    }
    push_decimal(out, u128::from(line.status));
    out.extend_from_slice(b" bytes=");
    out.extend_from_slice(line.bytes.as_bytes());
    out.extend_from_slice(b" duration_us=");
    push_decimal(out, line.duration.as_micros());
    out.push(b'\n');
}

fn push_decimal(out: &mut Vec<u8>, mut value: u128) {
    let mut digits = [0u8; 39];
    let mut start = digits.len();
    loop {
        start -= 1;
        // A digit: `value % 10` is below 10.
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

/// RFC 3339 UTC with microseconds, like the other log lines: `2026-11-24T09:30:00.123456Z`.
fn timestamp(out: &mut Vec<u8>, now: SystemTime) {
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since_epoch.as_secs();
    let (year, month, day) = civil_date(seconds / 86_400);
    let in_day = seconds % 86_400;
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        in_day / 3600,
        in_day % 3600 / 60,
        in_day % 60,
        since_epoch.subsec_micros()
    );
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar (Howard
/// Hinnant's days-to-civil algorithm, in 400-year eras).
fn civil_date(days: u64) -> (u64, u64, u64) {
    let shifted = days + 719_468;
    let era = shifted / 146_097;
    let day_of_era = shifted % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line() -> RequestLine<'static> {
        RequestLine {
            method: "GET",
            service: "up",
            path: "/http/up/ping",
            status: 200,
            bytes: "18",
            duration: Duration::from_micros(57),
        }
    }

    #[test]
    fn a_line_names_the_request_and_nothing_else() {
        let mut out = Vec::new();
        render(&mut out, &line(), LogFormat::Journal, UNIX_EPOCH);
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            " INFO bureau::proxy::request: request method=GET service=up path=/http/up/ping \
             status=200 bytes=18 duration_us=57\n"
        );
    }

    #[test]
    fn human_lines_start_with_a_utc_timestamp() {
        let mut out = Vec::new();
        let at = UNIX_EPOCH + Duration::from_micros(1_795_512_345_123_456);
        render(&mut out, &line(), LogFormat::Human, at);
        let text = String::from_utf8(out).expect("utf-8");
        assert!(
            text.starts_with("2026-11-24T09:25:45.123456Z  INFO "),
            "{text}"
        );
    }

    #[test]
    fn decimals_are_written_in_full() {
        for value in [0u128, 7, 10, 200, 1_234_567, u128::from(u64::MAX)] {
            let mut out = Vec::new();
            push_decimal(&mut out, value);
            assert_eq!(out, value.to_string().into_bytes());
        }
    }

    #[test]
    fn civil_dates_across_leap_years_and_centuries() {
        assert_eq!(civil_date(0), (1970, 1, 1));
        assert_eq!(civil_date(59), (1970, 3, 1));
        assert_eq!(civil_date(11_016), (2000, 2, 29));
        assert_eq!(civil_date(11_017), (2000, 3, 1));
        assert_eq!(civil_date(20_781), (2026, 11, 24));
        assert_eq!(civil_date(47_541), (2100, 3, 1));
    }
}
