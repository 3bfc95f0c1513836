//! mbox (mboxrd, and mboxo read the same way): mails start at `From ` lines, body lines
//! `>From `, `>>From `, ... lose one '>' (mboxrd), flags come from `Status:`,
//! `X-Status:` and `X-Keywords:` headers, INTERNALDATE from the `From ` line's date.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use rados_mail::Flags;

use super::import::{Folder, Source, SourceMail, valid_keyword};
use crate::error::{Error, Result};

/// Whether `line` separates mails: `From ` at the start of the file or after an empty
/// line (an unescaped `From ` inside a paragraph stays part of the mail).
fn is_separator(line: &[u8], after_empty: bool) -> bool {
    after_empty && line.starts_with(b"From ")
}

/// A body line as stored: one '>' less on `>From `, `>>From `, ... (mboxrd).
pub fn unescape(line: &[u8]) -> &[u8] {
    let quotes = line.iter().take_while(|b| **b == b'>').count();
    if quotes > 0 && line[quotes..].starts_with(b"From ") { &line[1..] } else { line }
}

fn is_empty_line(line: &[u8]) -> bool {
    line == b"\n" || line == b"\r\n"
}

/// Reads an mbox into one folder (`mailbox`): each mail's place in the file, flags,
/// keywords and date. A `From ` line whose date cannot be read gives the mail the file's
/// mtime, and a problem is noted.
pub fn scan(path: &Path, mailbox: &str, problems: &mut Vec<String>) -> Result<Folder> {
    let io = |source| Error::Io { path: path.to_path_buf(), source };
    let file = File::open(path).map_err(io)?;
    let mtime = file
        .metadata()
        .ok()
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64);
    let shared = Arc::new(path.to_path_buf());
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut mails = Vec::new();
    let mut current: Option<Partial> = None;
    let (mut offset, mut after_empty, mut line) = (0u64, true, Vec::new());
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).map_err(io)? as u64;
        if n == 0 {
            break;
        }
        if is_separator(&line, after_empty) {
            if let Some(p) = current.take() {
                mails.push(p.finish(&shared, offset, mails.len()));
            }
            let received = parse_from_line(&line);
            if received.is_none() {
                problems.push(format!("{}: mail {}: no date on its From line", path.display(), mails.len() + 1));
            }
            current = Some(Partial::new(offset + n, received.unwrap_or(mtime)));
        } else if let Some(p) = current.as_mut() {
            p.line(&line, problems);
        } else if !line.iter().all(u8::is_ascii_whitespace) {
            return Err(Error::Usage(format!("{}: not an mbox (no From line first)", path.display())));
        }
        after_empty = is_empty_line(&line);
        offset += n;
    }
    if let Some(p) = current.take() {
        mails.push(p.finish(&shared, offset, mails.len()));
    }
    Ok(Folder {
        mailbox: mailbox.to_string(),
        origin: path.to_path_buf(),
        uidvalidity: None,
        uidnext: None,
        guid: None,
        mails,
    })
}

/// A mail being read.
struct Partial {
    start: u64,
    received: i64,
    in_header: bool,
    flags: Flags,
    keywords: Vec<String>,
    /// Whether the last line was empty, and its length (dropped: it separates mails).
    last_empty: Option<u64>,
}

impl Partial {
    fn new(start: u64, received: i64) -> Partial {
        Partial { start, received, in_header: true, flags: Flags::NONE, keywords: Vec::new(), last_empty: None }
    }

    fn line(&mut self, line: &[u8], problems: &mut Vec<String>) {
        self.last_empty = is_empty_line(line).then_some(line.len() as u64);
        if !self.in_header {
            return;
        }
        if self.last_empty.is_some() {
            self.in_header = false;
            return;
        }
        let Some(colon) = line.iter().position(|b| *b == b':') else { return };
        let name = String::from_utf8_lossy(&line[..colon]).to_ascii_lowercase();
        let value = String::from_utf8_lossy(&line[colon + 1..]);
        match name.as_str() {
            "status" => self.flags = self.flags | status_flags(&value, &[('R', Flags::SEEN)]),
            "x-status" => {
                let known = [('A', Flags::ANSWERED), ('F', Flags::FLAGGED), ('T', Flags::DRAFT), ('D', Flags::DELETED)];
                self.flags = self.flags | status_flags(&value, &known);
            }
            "x-keywords" => {
                for k in value.split(|c: char| c == ',' || c.is_whitespace()).filter(|k| !k.is_empty()) {
                    if valid_keyword(k) {
                        self.keywords.push(k.to_string());
                    } else {
                        problems.push(format!("X-Keywords {k:?} is not an IMAP keyword, left out"));
                    }
                }
            }
            _ => {}
        }
    }

    fn finish(self, path: &Arc<std::path::PathBuf>, end: u64, index: usize) -> SourceMail {
        let end = end - self.last_empty.unwrap_or(0);
        let len = end.saturating_sub(self.start);
        SourceMail {
            source: Source::Mbox { path: path.clone(), offset: self.start, len },
            size: len,
            flags: self.flags,
            keywords: self.keywords,
            received: self.received,
            uid: None,
            guid: None,
            name: format!("mail {} at byte {}", index + 1, self.start),
        }
    }
}

fn status_flags(value: &str, known: &[(char, Flags)]) -> Flags {
    value.trim().chars().filter_map(|c| known.iter().find(|(l, _)| *l == c)).fold(Flags::NONE, |a, (_, f)| a | *f)
}

/// The date of a `From sender Www Mmm dd hh:mm:ss yyyy` line, Unix seconds (UTC, or with
/// the numeric zone some writers add: `... hh:mm:ss +0100 yyyy` or after the year).
pub fn parse_from_line(line: &[u8]) -> Option<i64> {
    let text = String::from_utf8_lossy(line);
    let tokens: Vec<&str> = text.split_whitespace().skip(2).collect();
    const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
    let m = tokens.iter().position(|t| MONTHS.contains(&t.to_ascii_lowercase().as_str()))?;
    let month = MONTHS.iter().position(|x| *x == tokens[m].to_ascii_lowercase())? as i64 + 1;
    let day: i64 = tokens.get(m + 1)?.parse().ok()?;
    let time: Vec<i64> = tokens.get(m + 2)?.split(':').map(|p| p.parse().ok()).collect::<Option<_>>()?;
    let (h, min, s) = (*time.first()?, *time.get(1)?, time.get(2).copied().unwrap_or(0));
    let mut year = None;
    let mut zone = 0;
    for t in &tokens[m + 3..] {
        if (t.starts_with('+') || t.starts_with('-')) && t.len() == 5 {
            let v: i64 = t[1..].parse().ok()?;
            zone = (v / 100 * 3600 + v % 100 * 60) * if t.starts_with('-') { -1 } else { 1 };
        } else if let Ok(y) = t.parse::<i64>() {
            year = year.or(Some(y));
        }
    }
    let year = year?;
    if !(1..=31).contains(&day) || h > 23 || min > 59 || s > 60 || !(1900..=9999).contains(&year) {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86400 + h * 3600 + min * 60 + s - zone)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn from_line_dates() {
        assert_eq!(parse_from_line(b"From a@b Thu Jan  1 00:00:00 1970\n"), Some(0));
        assert_eq!(parse_from_line(b"From a@b Sat Nov 14 22:13:20 2023\n"), Some(1_700_000_000));
        assert_eq!(parse_from_line(b"From a@b Sat Nov 14 23:13:20 +0100 2023\n"), Some(1_700_000_000));
        assert_eq!(parse_from_line(b"From a@b Sat Nov 14 22:13:20 2023 -0000\n"), Some(1_700_000_000));
        assert_eq!(parse_from_line(b"From MAILER-DAEMON Tue Feb 29 12:00:00 2028\n"), Some(1_835_438_400));
        assert_eq!(parse_from_line(b"From a@b\n"), None);
        assert_eq!(parse_from_line(b"From a@b Mon Foo 1 00:00:00 2020\n"), None);
        assert_eq!(parse_from_line(b"From a@b Mon Jan 32 00:00:00 2020\n"), None);
    }

    #[test]
    fn mboxrd_unescaping() {
        assert_eq!(unescape(b">From here\n"), b"From here\n");
        assert_eq!(unescape(b">>From here\n"), b">From here\n");
        assert_eq!(unescape(b"> From here\n"), b"> From here\n");
        assert_eq!(unescape(b">Fromage\n"), b">Fromage\n");
        assert_eq!(unescape(b"From x\n"), b"From x\n");
    }

    fn bytes_of(m: &SourceMail) -> Vec<u8> {
        let mut out = Vec::new();
        m.source
            .stream(&mut |b| {
                out.extend_from_slice(b);
                Ok(())
            })
            .unwrap();
        out
    }

    #[test]
    fn splits_mails_and_reads_flags() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(
            b"From a@b Sat Nov 14 22:13:20 2023\nStatus: RO\nX-Status: AF\nX-Keywords: Junk, $Label1\n\
              Subject: one\n\n>From the start\n>>From twice\nFrom inside a paragraph\n\n\
              From c@d Sat Nov 14 22:13:21 2023\nSubject: two\n\nno newline at end",
        )
        .unwrap();
        let mut problems = Vec::new();
        let folder = scan(f.path(), "Archive", &mut problems).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(folder.mailbox, "Archive");
        assert_eq!(folder.mails.len(), 2);
        let (one, two) = (&folder.mails[0], &folder.mails[1]);
        assert_eq!(one.flags, Flags::SEEN | Flags::ANSWERED | Flags::FLAGGED);
        assert_eq!(one.keywords, ["Junk", "$Label1"]);
        assert_eq!(one.received, 1_700_000_000);
        assert_eq!(
            bytes_of(one),
            b"Status: RO\nX-Status: AF\nX-Keywords: Junk, $Label1\nSubject: one\n\nFrom the start\n>From twice\n\
              From inside a paragraph\n"
        );
        assert_eq!((two.flags, two.received), (Flags::NONE, 1_700_000_001));
        assert_eq!(bytes_of(two), b"Subject: two\n\nno newline at end");
    }

    #[test]
    fn refuses_what_is_no_mbox() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(b"Subject: no From line\n\nbody\n").unwrap();
        assert!(matches!(scan(f.path(), "INBOX", &mut Vec::new()), Err(Error::Usage(_))));
        let empty = tempfile::NamedTempFile::new().unwrap();
        assert_eq!(scan(empty.path(), "INBOX", &mut Vec::new()).unwrap().mails.len(), 0);
    }
}
