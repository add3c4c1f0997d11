//! Logging the way runc does it (logrus), so engines and the tools that read
//! a runtime's stderr understand it. Every message goes to one place: the
//! `--log FILE` if given, otherwise stderr. On stderr a line looks exactly
//! like runc's: `time="2026-01-02T03:04:05Z" level=error msg="..."` (logrus'
//! text format; on a terminal its coloured `ERRO[0000] ...` form), or
//! `{"level":"error","msg":"...","time":"..."}` with `--log-format json`.
//! In the file, lines carry nanosecond times (containerd parses the JSON
//! ones). A fatal error logged to a file is also printed bare on stderr
//! ([`error`]), as runc does.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::cli::LogFormat;

struct Logger {
    file: Option<Mutex<File>>,
    format: LogFormat,
    debug: bool,
    /// stderr is a terminal: logrus' coloured text form.
    tty: bool,
    /// When logging started (the `[0000]` seconds of the coloured form).
    start: Instant,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Level {
    Debug,
    Warn,
    Error,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Warn => "warning",
            Level::Error => "error",
        }
    }
}

/// Sets up the log destination. A log file that cannot be opened is reported
/// on stderr once and otherwise ignored (messages then go to stderr).
pub fn init(path: Option<&Path>, format: LogFormat, debug: bool) {
    let file = path.and_then(
        |p| match OpenOptions::new().create(true).append(true).open(p) {
            Ok(f) => Some(Mutex::new(f)),
            Err(e) => {
                eprintln!("rrun: cannot open log file {}: {e}", p.display());
                None
            }
        },
    );
    // SAFETY: isatty only inspects fd 2.
    let tty = unsafe { libc::isatty(libc::STDERR_FILENO) } == 1;
    let _ = LOGGER.set(Logger {
        file,
        format,
        debug,
        tty,
        start: Instant::now(),
    });
}

/// Writes one message to the log: the `--log` file if there is one,
/// otherwise stderr.
pub fn log(level: Level, msg: &str) {
    let Some(logger) = LOGGER.get() else {
        return;
    };
    if level == Level::Debug && !logger.debug {
        return;
    }
    let Some(file) = &logger.file else {
        let line = if logger.tty && logger.format == LogFormat::Text {
            coloured_line(level, msg, logger.start.elapsed().as_secs())
        } else {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            format_line(logger.format, level, msg, &rfc3339(now.as_secs() as i64, 0))
        };
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
        return;
    };
    let line = format_line(logger.format, level, msg, &rfc3339_now());
    if let Ok(mut f) = file.lock() {
        let _ = f.write_all(line.as_bytes());
    }
}

/// Reports an error that ends the command, as runc's `fatal` does: logged
/// (on stderr, or in the `--log` file), and with a log file also printed
/// bare on stderr, so the caller always sees it there.
pub fn error(msg: &str) {
    log(Level::Error, msg);
    if LOGGER.get().is_some_and(|l| l.file.is_some()) {
        eprintln!("{msg}");
    }
}

pub fn warn(msg: &str) {
    log(Level::Warn, msg);
}

pub fn debug(msg: &str) {
    log(Level::Debug, msg);
}

/// logrus' text form on a terminal: `ERRO[0000] msg` with the level in
/// colour and the message padded to 44 columns.
fn coloured_line(level: Level, msg: &str, secs: u64) -> String {
    let (colour, name) = match level {
        Level::Debug => (37, "DEBU"),
        Level::Warn => (33, "WARN"),
        Level::Error => (31, "ERRO"),
    };
    format!("\x1b[{colour}m{name}\x1b[0m[{secs:04}] {msg:<44} \n")
}

/// A logrus text value: bare when it holds only `[A-Za-z0-9-._/@^+]`,
/// otherwise quoted as Go's `%q` quotes it.
fn text_value(v: &str) -> String {
    let bare = |c: char| c.is_ascii_alphanumeric() || "-._/@^+".contains(c);
    if !v.is_empty() && v.chars().all(bare) {
        return v.to_string();
    }
    let mut q = String::with_capacity(v.len() + 2);
    q.push('"');
    for c in v.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            '\r' => q.push_str("\\r"),
            '\t' => q.push_str("\\t"),
            '\x07' => q.push_str("\\a"),
            '\x08' => q.push_str("\\b"),
            '\x0b' => q.push_str("\\v"),
            '\x0c' => q.push_str("\\f"),
            c if (c as u32) < 0x20 || c == '\x7f' => q.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() => q.push_str(&format!("\\u{:04x}", c as u32)),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

fn format_line(format: LogFormat, level: Level, msg: &str, time: &str) -> String {
    match format {
        LogFormat::Json => {
            let v = serde_json::json!({"level": level.name(), "msg": msg, "time": time});
            format!("{v}\n")
        }
        LogFormat::Text => format!(
            "time={} level={} msg={}\n",
            text_value(time),
            level.name(),
            text_value(msg)
        ),
    }
}

/// The current time as RFC 3339 with nanoseconds in UTC, like Go's
/// `time.RFC3339Nano` (which containerd and runc use).
pub fn rfc3339_now() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(d.as_secs() as i64, d.subsec_nanos())
}

/// Formats seconds since the epoch plus nanoseconds as RFC 3339 UTC.
pub fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let frac = if nanos == 0 {
        String::new()
    } else {
        let s = format!(".{nanos:09}");
        s.trim_end_matches('0').to_string()
    };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}{frac}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_epoch_and_leap_day() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400, 500_000_000), "2000-02-29T00:00:00.5Z");
        assert_eq!(rfc3339(1_798_761_599, 1), "2026-12-31T23:59:59.000000001Z");
    }

    #[test]
    fn json_line_has_the_keys_containerd_reads() {
        let line = format_line(LogFormat::Json, Level::Error, "boom \"x\"", "T");
        let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
        assert_eq!(v["level"], "error");
        assert_eq!(v["msg"], "boom \"x\"");
        assert_eq!(v["time"], "T");
    }

    #[test]
    fn text_line_is_logrus_style() {
        let t = "2026-01-02T03:04:05Z";
        let line = format_line(LogFormat::Text, Level::Warn, "a b", t);
        assert_eq!(line, format!("time=\"{t}\" level=warning msg=\"a b\"\n"));
        // Quoted only when needed, escaped as Go's %q does.
        let line = format_line(LogFormat::Text, Level::Error, "boom", t);
        assert_eq!(line, format!("time=\"{t}\" level=error msg=boom\n"));
        let line = format_line(LogFormat::Text, Level::Error, "a \"b\"\\\n\u{1}", t);
        assert!(
            line.ends_with(
                r#"msg="a \"b\"\\\n\x01"
"#
            ),
            "{line}"
        );
    }

    #[test]
    fn terminal_line_is_logrus_coloured_form() {
        let line = coloured_line(Level::Error, "container does not exist", 0);
        assert_eq!(
            line,
            format!(
                "\x1b[31mERRO\x1b[0m[0000] {:<44} \n",
                "container does not exist"
            )
        );
    }
}
