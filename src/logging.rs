//! Logging the way runc does it, so engines can read it: errors go to stderr
//! as one line, and every message also goes to `--log FILE` as logrus-style
//! text (`time="..." level=error msg="..."`) or JSON lines
//! (`{"level":"error","msg":"...","time":"..."}`), which containerd parses.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::cli::LogFormat;

struct Logger {
    file: Option<Mutex<File>>,
    format: LogFormat,
    debug: bool,
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
/// on stderr once and otherwise ignored, as runc does.
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
    let _ = LOGGER.set(Logger {
        file,
        format,
        debug,
    });
}

/// Writes one message to the log file (if any). Errors are also printed on
/// stderr by `main`, not here, so each error is printed once.
pub fn log(level: Level, msg: &str) {
    let Some(logger) = LOGGER.get() else {
        return;
    };
    if level == Level::Debug && !logger.debug {
        return;
    }
    if level == Level::Warn && logger.file.is_none() {
        eprintln!("rrun: warning: {msg}");
    }
    let Some(file) = &logger.file else {
        return;
    };
    let line = format_line(logger.format, level, msg, &rfc3339_now());
    if let Ok(mut f) = file.lock() {
        let _ = f.write_all(line.as_bytes());
    }
}

pub fn warn(msg: &str) {
    log(Level::Warn, msg);
}

pub fn debug(msg: &str) {
    log(Level::Debug, msg);
}

fn format_line(format: LogFormat, level: Level, msg: &str, time: &str) -> String {
    match format {
        LogFormat::Json => {
            let v = serde_json::json!({"level": level.name(), "msg": msg, "time": time});
            format!("{v}\n")
        }
        LogFormat::Text => format!(
            "time=\"{time}\" level={} msg={}\n",
            level.name(),
            serde_json::Value::String(msg.to_string())
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
        let line = format_line(LogFormat::Text, Level::Warn, "a b", "T");
        assert_eq!(line, "time=\"T\" level=warning msg=\"a b\"\n");
    }
}
