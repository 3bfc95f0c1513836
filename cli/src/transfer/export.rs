//! The export engine: mailboxes into a Maildir++ tree, bodies read by several threads.
//!
//! Every mail becomes `cur/<INTERNALDATE>.<UID>_<GUID>.rados-mail:2,<flags>` (mtime =
//! INTERNALDATE), every folder gets a `dovecot-uidlist` (UIDVALIDITY, UIDNEXT, mailbox
//! GUID; per file its UID and mail GUID) and, when its mails have keywords, a
//! `dovecot-keywords`. Names, lists and bytes depend on the mailbox only, so two exports
//! of the same mail are identical.
//!
//! Into a directory that is not empty (`--force`), an export brings what it wrote before
//! up to date: files already there under the right name are kept, files of this naming
//! scheme (`*.rados-mail:2,*`) that no mail has any more (expunged, or flags changed) are
//! removed, and everything else is left alone.

use std::collections::{BTreeSet, HashSet};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use indicatif::ProgressBar;
use rados_mail::{Guid, MailRecord, Mailbox, MailboxInfo, User};
use serde::Serialize;

use super::maildir::{self, KEYWORDS_FILE, MAX_KEYWORDS, UIDLIST_FILE};
use super::{parallel, progress};
use crate::error::{Error, Result};

/// The marker of the files an export writes.
const MARK: &str = ".rados-mail:2,";

/// What happened to one mailbox.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct MailboxReport {
    /// The mailbox.
    pub mailbox: String,
    /// Its folder, relative to the export directory (empty: the top, INBOX).
    pub folder: String,
    /// Mails in the mailbox.
    pub mails: usize,
    /// Files written now.
    pub written: usize,
    /// Files that were there already, unchanged.
    pub unchanged: usize,
    /// Files of an earlier export removed (mails expunged or with other flags since).
    pub removed: usize,
    /// Mails that could not be exported (see the problems).
    pub failed: usize,
    /// Bytes written.
    pub bytes: u64,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.to_path_buf(), source }
}

/// The hex of a stored GUID (16 bytes; other lengths are written as they are).
fn hex(bytes: &[u8]) -> String {
    match Guid::from_slice(bytes) {
        Ok(g) => g.to_string(),
        Err(_) => bytes.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

/// The file base name of a mail (before `:2,`).
pub fn base_name(rec: &MailRecord) -> String {
    format!("{}.{}_{}.rados-mail", rec.received, rec.uid, hex(rec.guid()))
}

fn mtime(received: i64) -> SystemTime {
    let secs = Duration::from_secs(received.unsigned_abs());
    if received >= 0 { UNIX_EPOCH + secs } else { UNIX_EPOCH - secs }
}

/// Whether an export may write into `dir`: it does not exist or is empty, or `force`.
pub fn check_target(dir: &Path, force: bool) -> Result<()> {
    match fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() && !force {
                return Err(Error::Usage(format!(
                    "{} is not empty; --force brings an earlier export there up to date",
                    dir.display()
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::Io { path: dir.to_path_buf(), source }),
    }
}

/// Writes `text` to `path` through a temporary file beside it.
fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp-export");
    fs::write(&tmp, text).map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))
}

/// Exports `mailboxes` of `user` into `dir`, `jobs` bodies at a time.
pub fn export(
    user: &User,
    dir: &Path,
    mailboxes: &[MailboxInfo],
    jobs: usize,
    problems: &mut Vec<String>,
) -> Result<Vec<MailboxReport>> {
    let mut opened = Vec::new();
    for info in mailboxes {
        let mailbox = user.open_mailbox_info(info)?;
        let status = mailbox.status()?;
        let records = mailbox.records(1..=u32::MAX)?;
        opened.push((mailbox, status, records));
    }
    let total = opened.iter().flat_map(|(_, _, r)| r).map(|r| r.psize).sum();
    let bar = progress(total, "exporting");
    let mut reports = Vec::new();
    for (mailbox, status, records) in &opened {
        bar.set_message(format!("exporting {}", mailbox.info().name));
        reports.push(export_mailbox(dir, mailbox, status, records, jobs, &bar, problems)?);
    }
    bar.finish_and_clear();
    Ok(reports)
}

fn export_mailbox(
    dir: &Path,
    mailbox: &Mailbox,
    status: &rados_mail::Status,
    records: &[MailRecord],
    jobs: usize,
    bar: &ProgressBar,
    problems: &mut Vec<String>,
) -> Result<MailboxReport> {
    let name = &mailbox.info().name;
    let folder_name = maildir::mailbox_to_folder(name);
    let folder = dir.join(&folder_name);
    let (cur, tmp) = (folder.join("cur"), folder.join("tmp"));
    for d in [&cur, &folder.join("new"), &tmp] {
        fs::create_dir_all(d).map_err(io(d))?;
    }
    let mut report =
        MailboxReport { mailbox: name.clone(), folder: folder_name, mails: records.len(), ..Default::default() };

    // Keywords in name order: letter `a` is the first.
    let all: BTreeSet<&str> = records.iter().flat_map(|r| r.keywords.iter().map(String::as_str)).collect();
    let keywords: Vec<String> = all.iter().take(MAX_KEYWORDS).map(|k| k.to_string()).collect();
    for k in all.iter().skip(MAX_KEYWORDS) {
        problems
            .push(format!("{name}: keyword {k:?} left out: Maildir file names carry {MAX_KEYWORDS} keywords at most"));
    }
    let files: Vec<(String, String)> = records
        .iter()
        .map(|r| {
            let idx: Vec<usize> = r.keywords.iter().filter_map(|k| keywords.iter().position(|x| x == k)).collect();
            let base = base_name(r);
            let full = format!("{base}{}", maildir::info_of(rados_mail::Flags::from_bits(r.flags), &idx));
            (base, full)
        })
        .collect();

    let existing: HashSet<String> = fs::read_dir(&cur)
        .map_err(io(&cur))?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<std::io::Result<_>>()
        .map_err(io(&cur))?;
    let todo: Vec<(&MailRecord, &(String, String))> =
        records.iter().zip(&files).filter(|(_, (_, full))| !existing.contains(full)).collect();
    report.unchanged = records.len() - todo.len();
    for (rec, (_, full)) in records.iter().zip(&files) {
        if existing.contains(full) {
            bar.inc(rec.psize);
        }
    }

    let stop = AtomicBool::new(false);
    let results = parallel(jobs, &todo, |(rec, (base, full))| {
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        let r = write_mail(mailbox, rec, &tmp.join(base), &cur.join(full), bar);
        if matches!(r, Err(Failure::Fatal(_))) {
            stop.store(true, Ordering::Relaxed);
        }
        Some(r)
    });
    let mut failed = HashSet::new();
    for ((rec, _), r) in todo.iter().zip(results) {
        match r {
            Some(Ok(n)) => {
                report.written += 1;
                report.bytes += n;
            }
            Some(Err(Failure::Fatal(e))) => return Err(e),
            Some(Err(Failure::Mail(why))) => {
                problems.push(format!("{name}: UID {}: {why}", rec.uid));
                failed.insert(rec.uid);
                report.failed += 1;
            }
            None => {}
        }
    }

    let wanted: HashSet<&str> = files.iter().map(|(_, full)| full.as_str()).collect();
    for stale in existing.iter().filter(|n| n.contains(MARK) && !wanted.contains(n.as_str())) {
        let path = cur.join(stale);
        fs::remove_file(&path).map_err(io(&path))?;
        report.removed += 1;
    }
    // Mails not written are not listed either.
    let lines: Vec<(u32, String, String)> = records
        .iter()
        .zip(&files)
        .filter(|(r, _)| !failed.contains(&r.uid))
        .map(|(r, (base, _))| (r.uid, hex(r.guid()), base.clone()))
        .collect();
    let uidlist = maildir::render_uidlist(status.uidvalidity, status.uidnext, &mailbox.info().guid, &lines);
    write_atomic(&folder.join(UIDLIST_FILE), &uidlist)?;
    let kw_path = folder.join(KEYWORDS_FILE);
    if keywords.is_empty() {
        match fs::remove_file(&kw_path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&kw_path)(e)),
            _ => {}
        }
    } else {
        write_atomic(&kw_path, &maildir::render_keywords(&keywords))?;
    }
    Ok(report)
}

/// Why a mail was not exported.
enum Failure {
    /// The store or the target failed: the export stops.
    Fatal(Error),
    /// This mail's body is not as its record says (damage for `check` to report).
    Mail(String),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Fatal(e)
    }
}

/// Writes one mail to `tmp`, sets its mtime, moves it to `dest`; returns its size.
fn write_mail(
    mailbox: &Mailbox,
    rec: &MailRecord,
    tmp: &PathBuf,
    dest: &Path,
    bar: &ProgressBar,
) -> Result<u64, Failure> {
    let mut body = match mailbox.open_body(rec.uid) {
        Ok(b) => b,
        Err(e) if e.is_temporary() => return Err(Failure::Fatal(e.into())),
        Err(e) => return Err(Failure::Mail(format!("opening the body: {e}"))),
    };
    let mut file = File::create(tmp).map_err(io(tmp))?;
    let mut buf = vec![0u8; rec.psize.clamp(4096, 1 << 20) as usize];
    let mut written = 0u64;
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                let _ = fs::remove_file(tmp);
                return Err(Failure::Mail(format!("reading the body: {e}")));
            }
        };
        file.write_all(&buf[..n]).map_err(io(tmp))?;
        written += n as u64;
        bar.inc(n as u64);
    }
    if written != rec.psize {
        let _ = fs::remove_file(tmp);
        return Err(Failure::Mail(format!("body of {written} bytes, the record says {}", rec.psize)));
    }
    file.set_modified(mtime(rec.received)).map_err(io(tmp))?;
    drop(file);
    fs::rename(tmp, dest).map_err(io(dest))?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_dates() {
        let rec = MailRecord { uid: 7, received: 1_700_000_000, mail_guid: vec![0xab; 16], ..Default::default() };
        assert_eq!(base_name(&rec), format!("1700000000.7_{}.rados-mail", "ab".repeat(16)));
        let given = MailRecord { given_guid: vec![1; 16], ..rec.clone() };
        assert_eq!(base_name(&given), format!("1700000000.7_{}.rados-mail", "01".repeat(16)));
        assert_eq!(mtime(-5), UNIX_EPOCH - Duration::from_secs(5));
        assert_eq!(mtime(5), UNIX_EPOCH + Duration::from_secs(5));
    }

    #[test]
    fn target_must_be_empty_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        check_target(dir.path(), false).unwrap();
        check_target(&dir.path().join("new"), false).unwrap();
        fs::write(dir.path().join("x"), "").unwrap();
        assert!(matches!(check_target(dir.path(), false), Err(Error::Usage(_))));
        check_target(dir.path(), true).unwrap();
    }
}
