//! Output helpers: JSON documents, tables, progress bars, UID ranges, dates.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

use crate::error::{Error, Result};

/// Prints one JSON document on stdout.
pub fn print_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value).map_err(|e| Error::Output(e.into()))?;
    writeln!(out)?;
    Ok(())
}

/// Prints rows as a table with a header, columns padded to their widest cell.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) -> Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = std::io::stdout().lock();
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let parts: Vec<String> = cells.zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        parts.join("  ").trim_end().to_string()
    };
    writeln!(out, "{}", line(&mut header.iter().copied()))?;
    for row in rows {
        writeln!(out, "{}", line(&mut row.iter().map(String::as_str)))?;
    }
    Ok(())
}

/// A progress bar on stderr with rate and ETA, drawn only when stderr is a terminal.
pub fn progress(len: Option<u64>, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let rate = |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
        let _ = write!(w, "{:.0}/s", state.per_sec());
    };
    let template = match len {
        Some(_) => "{prefix:>8} [{bar:40}] {pos}/{len} {rate} ETA {eta} {msg}",
        None => "{prefix:>8} {spinner} {pos} {rate}",
    };
    let style =
        ProgressStyle::with_template(template).expect("a valid template").progress_chars("=> ").with_key("rate", rate);
    let bar = ProgressBar::with_draw_target(len, ProgressDrawTarget::stderr()).with_style(style);
    bar.set_prefix(what.to_string());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// An IMAP-style UID set: `5`, `1:10`, `7:*`, `*`, comma lists. `*` is the highest UID
/// (`last`).
pub fn parse_uid_set(text: &str, last: u32) -> Result<Vec<std::ops::RangeInclusive<u32>>> {
    let bad = || Error::Usage(format!("UID range {text:?}: expected like 5, 1:10, 7:* or 1,3,5:7"));
    let one = |s: &str| -> Result<u32> {
        match s {
            "*" => Ok(last),
            n => n.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(bad),
        }
    };
    let mut out = Vec::new();
    for part in text.split(',') {
        let (a, b) = match part.split_once(':') {
            Some((a, b)) => (one(a)?, one(b)?),
            None => (one(part)?, one(part)?),
        };
        out.push(a.min(b)..=a.max(b));
    }
    Ok(out)
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ` (UTC).
pub fn date(unix: i64) -> String {
    let (days, secs) = (unix.div_euclid(86_400), unix.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs / 60 % 60, secs % 60)
}

/// A duration like `90`, `90s`, `30m`, `1h`, `2d`.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let n: u64 = t[..digits].parse().map_err(|_| format!("{text:?}: expected like 90s, 30m, 1h or 2d"))?;
    let unit = match &t[digits..] {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: unknown unit (s, m, h or d)")),
    };
    Ok(Duration::from_secs(n * unit))
}

/// A JSON value as indented text for humans: objects as `key: value` lines, arrays as
/// `- ` items; a `{"corrupt": ...}` object reads `CORRUPT: ...`.
pub fn render(value: &Value, indent: usize, out: &mut String) {
    let pad = "  ".repeat(indent);
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match v {
                    Value::Object(inner) if inner.contains_key("corrupt") => {
                        out.push_str(&format!("{pad}{k}: CORRUPT: {}\n", scalar(&inner["corrupt"])));
                        if let Some(raw) = inner.get("raw_hex") {
                            out.push_str(&format!("{pad}  raw (hex): {}\n", scalar(raw)));
                        }
                    }
                    Value::Object(inner) if inner.is_empty() => out.push_str(&format!("{pad}{k}: (none)\n")),
                    Value::Array(items) if items.is_empty() => out.push_str(&format!("{pad}{k}: (none)\n")),
                    Value::Object(_) | Value::Array(_) => {
                        out.push_str(&format!("{pad}{k}:\n"));
                        render(v, indent + 1, out);
                    }
                    _ => out.push_str(&format!("{pad}{k}: {}\n", scalar(v))),
                }
            }
        }
        Value::Array(items) => {
            for v in items {
                match v {
                    Value::Object(_) | Value::Array(_) => {
                        out.push_str(&format!("{pad}-\n"));
                        render(v, indent + 1, out);
                    }
                    _ => out.push_str(&format!("{pad}- {}\n", scalar(v))),
                }
            }
        }
        _ => out.push_str(&format!("{pad}{}\n", scalar(value))),
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets() {
        assert_eq!(parse_uid_set("5", 9).unwrap(), [5..=5]);
        assert_eq!(parse_uid_set("1:3,7:*", 9).unwrap(), [1..=3, 7..=9]);
        assert_eq!(parse_uid_set("*", 9).unwrap(), [9..=9]);
        assert_eq!(parse_uid_set("4:2", 9).unwrap(), [2..=4]);
        assert!(parse_uid_set("0", 9).is_err());
        assert!(parse_uid_set("a:b", 9).is_err());
    }

    #[test]
    fn dates() {
        assert_eq!(date(0), "1970-01-01T00:00:00Z");
        assert_eq!(date(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(date(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("1y").is_err());
    }
}
