//! The request log: one line per request — method, service, path, status, bytes, duration —
//! never a header value or a body.
//!
//! Lines are formatted into one process-wide buffer and written to stderr in batches: when the
//! proxy's event loop is about to go idle ([`flush`] is the runtime's park hook), as soon as the
//! buffer passes [`FLUSH_BYTES`] or its oldest line [`FLUSH_AGE`], and when the proxy exits.
//! Under load that turns one `write(2)` per request into one per event-loop turn; an idle proxy
//! never holds an unwritten line. What a crash can lose is the lines of the requests completed
//! in the current turn; other log lines written meanwhile may come out before them.
//!
//! The lines look like the rest of the log (see `logging`): `<time>  INFO request method=GET
//! service="api" path="/http/api/v1" status=200 bytes="18" duration_us=57`, without the time and
//! with the target when stderr is the journal; nothing is written when the filter leaves out
//! `bureau::proxy::request` at `info`.

use std::io::Write;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::logging::{LogFormat, detect_format};

/// The tracing target a filter can name to silence or keep these lines.
pub const TARGET: &str = "bureau::proxy::request";
/// Buffered bytes that force a write even though the event loop is busy.
pub const FLUSH_BYTES: usize = 16 * 1024;
/// The age of the oldest buffered line that forces a write even though the loop is busy.
pub const FLUSH_AGE: Duration = Duration::from_secs(1);

/// Lines not yet written, and when the first of them was.
struct Pending {
    bytes: Vec<u8>,
    since: Option<Instant>,
}

static PENDING: Mutex<Pending> = Mutex::new(Pending {
    bytes: Vec::new(),
    since: None,
});
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

fn pending() -> MutexGuard<'static, Pending> {
    match PENDING.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Appends `line` (if the log filter keeps request lines); writes the batch when it is big or
/// old enough.
pub fn record(line: &RequestLine<'_>) {
    if !tracing::enabled!(target: TARGET, tracing::Level::INFO) {
        return;
    }
    let format = *FORMAT.get_or_init(detect_format);
    let now = Instant::now();
    let mut pending = pending();
    render(&mut pending.bytes, line, format, SystemTime::now());
    let since = *pending.since.get_or_insert(now);
    if pending.bytes.len() >= FLUSH_BYTES || now.duration_since(since) >= FLUSH_AGE {
        pending.write_out(&mut std::io::stderr().lock());
    }
}

/// Writes every buffered line to stderr. The runtime calls it before it parks; call it on exit.
pub fn flush() {
    let mut pending = pending();
    if !pending.bytes.is_empty() {
        pending.write_out(&mut std::io::stderr().lock());
    }
}

impl Pending {
    /// Writes what it can. A log that cannot be written must not stop the proxy: on an error
    /// the lines are dropped, except on `WouldBlock` (a non-blocking stderr that is full), where
    /// the rest is kept for the next write unless that would grow past 4 × [`FLUSH_BYTES`].
    fn write_out(&mut self, out: &mut impl Write) {
        let mut written = 0;
        while written < self.bytes.len() {
            match out.write(&self.bytes[written..]) {
                Ok(0) => break,
                Ok(count) => written += count,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error)
                    if error.kind() == std::io::ErrorKind::WouldBlock
                        && self.bytes.len() - written <= 4 * FLUSH_BYTES =>
                {
                    self.bytes.drain(..written);
                    // The age clock restarts, so a full stderr is retried once per
                    // FLUSH_AGE (or at the next park), not on every request.
                    self.since = Some(Instant::now());
                    return;
                }
                Err(_) => break,
            }
        }
        self.bytes.clear();
        self.since = None;
        if self.bytes.capacity() > 4 * FLUSH_BYTES {
            self.bytes.shrink_to(FLUSH_BYTES);
        }
    }
}

fn render(out: &mut Vec<u8>, line: &RequestLine<'_>, format: LogFormat, now: SystemTime) {
    // Plain appends: this runs once per request, and `fmt` would cost more than the rest.
    match format {
        LogFormat::Human => {
            timestamp(out, now);
            out.extend_from_slice(b"  INFO request method=");
        }
        LogFormat::Journal => {
            out.extend_from_slice(b" INFO ");
            out.extend_from_slice(TARGET.as_bytes());
            out.extend_from_slice(b": request method=");
        }
    }
    out.extend_from_slice(line.method.as_bytes());
    out.extend_from_slice(b" service=");
    push_quoted(out, line.service);
    out.extend_from_slice(b" path=");
    push_quoted(out, line.path);
    out.extend_from_slice(b" status=");
    push_decimal(out, u128::from(line.status));
    out.extend_from_slice(b" bytes=");
    push_quoted(out, line.bytes);
    out.extend_from_slice(b" duration_us=");
    push_decimal(out, line.duration.as_micros());
    out.push(b'\n');
}

/// `"value"`, with `"` and `\` escaped as tracing's `Debug` of a string does, so a path cannot
/// end its field early (URIs hold no spaces or control characters).
fn push_quoted(out: &mut Vec<u8>, value: &str) {
    out.push(b'"');
    for byte in value.bytes() {
        if byte == b'"' || byte == b'\\' {
            out.push(b'\\');
        }
        out.push(byte);
    }
    out.push(b'"');
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
            " INFO bureau::proxy::request: request method=GET service=\"up\" \
             path=\"/http/up/ping\" status=200 bytes=\"18\" duration_us=57\n"
        );
    }

    #[test]
    fn human_lines_start_with_a_utc_timestamp() {
        let mut out = Vec::new();
        let at = UNIX_EPOCH + Duration::from_micros(1_795_512_345_123_456);
        render(&mut out, &line(), LogFormat::Human, at);
        let text = String::from_utf8(out).expect("utf-8");
        assert!(
            text.starts_with("2026-11-24T09:25:45.123456Z  INFO request method=GET "),
            "{text}"
        );
    }

    #[test]
    fn quotes_in_a_path_cannot_end_its_field() {
        let mut out = Vec::new();
        push_quoted(&mut out, r#"/a"b\c"#);
        assert_eq!(out, br#""/a\"b\\c""#);
    }

    /// Accepts `accept` bytes, then says `WouldBlock`.
    struct Full {
        written: Vec<u8>,
        accept: usize,
    }

    impl Write for Full {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            let count = bytes.len().min(self.accept - self.written.len());
            if count == 0 {
                return Err(std::io::ErrorKind::WouldBlock.into());
            }
            self.written.extend_from_slice(&bytes[..count]);
            Ok(count)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_full_stderr_keeps_the_unwritten_rest_for_later() {
        let mut pending = Pending {
            bytes: b"first line\nsecond line\n".to_vec(),
            since: Some(Instant::now()),
        };
        let mut out = Full {
            written: Vec::new(),
            accept: 11,
        };
        pending.write_out(&mut out);
        assert_eq!(out.written, b"first line\n");
        assert_eq!(pending.bytes, b"second line\n");
        out.accept = 100;
        pending.write_out(&mut out);
        assert_eq!(out.written, b"first line\nsecond line\n");
        assert!(pending.bytes.is_empty() && pending.since.is_none());
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
