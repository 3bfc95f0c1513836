//! The import engine: folders of source mails (from a Maildir or an mbox) into mailboxes,
//! bodies written by several threads, committed in batches, mails already there skipped.
//!
//! A mail is "already there" when the target mailbox has a mail with its GUID. The GUID
//! is the one the source gives (a `G` extension in `dovecot-uidlist`, as `export` writes),
//! else the first 16 bytes of SHA-256 over a fixed prefix, the SHA-256 of the mail's bytes
//! and its occurrence number among identical mails of the same source folder. The same
//! source imported twice gives the same GUIDs, so a re-run adds nothing, and two identical
//! mails of one folder stay two mails.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::ProgressBar;
use rados_mail::{AppendOptions, CreateOptions, Flags, Guid, Mailbox, ModseqSteps, SavedMail, Transaction, User};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{mbox, parallel, progress};
use crate::error::{Error, Result};

/// A mail to import: where its bytes are and what it carries along.
#[derive(Debug, Clone)]
pub struct SourceMail {
    /// Where the bytes are.
    pub source: Source,
    /// Its size in the source (for progress).
    pub size: u64,
    /// System flags.
    pub flags: Flags,
    /// Keywords (valid IMAP keywords only).
    pub keywords: Vec<String>,
    /// INTERNALDATE, Unix seconds.
    pub received: i64,
    /// The UID it had.
    pub uid: Option<u32>,
    /// The GUID it had.
    pub guid: Option<Guid>,
    /// How to name it in messages (file name, or place in the mbox).
    pub name: String,
}

/// Where a mail's bytes are.
#[derive(Debug, Clone)]
pub enum Source {
    /// A whole file (Maildir).
    File(PathBuf),
    /// `len` bytes of an mbox from `offset`, mboxrd-escaped.
    Mbox {
        /// The mbox file.
        path: Arc<PathBuf>,
        /// Where the mail starts (after its `From ` line).
        offset: u64,
        /// Its length in the file.
        len: u64,
    },
}

impl Source {
    /// The file the bytes are in.
    pub fn path(&self) -> &Path {
        match self {
            Source::File(p) => p,
            Source::Mbox { path, .. } => path,
        }
    }

    /// Feeds the mail's bytes, as they are to be stored, to `sink` piece by piece.
    pub fn stream(&self, sink: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()> {
        let io = |source| Error::Io { path: self.path().to_path_buf(), source };
        let mut file = File::open(self.path()).map_err(io)?;
        match self {
            Source::File(_) => {
                // Small mails are the many: a buffer of their size, 1 MiB at most.
                let size = file.metadata().map_or(0, |m| m.len());
                let mut buf = vec![0u8; size.clamp(4096, 1 << 20) as usize];
                loop {
                    let n = file.read(&mut buf).map_err(io)?;
                    if n == 0 {
                        return Ok(());
                    }
                    sink(&buf[..n])?;
                }
            }
            Source::Mbox { offset, len, .. } => {
                file.seek(SeekFrom::Start(*offset)).map_err(io)?;
                let mut reader = BufReader::with_capacity(1 << 20, file.take(*len));
                let mut line = Vec::new();
                loop {
                    line.clear();
                    if reader.read_until(b'\n', &mut line).map_err(io)? == 0 {
                        return Ok(());
                    }
                    sink(mbox::unescape(&line))?;
                }
            }
        }
    }
}

/// The mails of one source folder, bound for one mailbox.
#[derive(Debug, Clone)]
pub struct Folder {
    /// The target mailbox.
    pub mailbox: String,
    /// The source directory or file (for messages).
    pub origin: PathBuf,
    /// UIDVALIDITY to give the mailbox if it is created.
    pub uidvalidity: Option<u32>,
    /// UIDNEXT to raise the mailbox's to.
    pub uidnext: Option<u32>,
    /// GUID to give the mailbox if it is created.
    pub guid: Option<Guid>,
    /// The mails, in the order their UIDs go up.
    pub mails: Vec<SourceMail>,
}

/// Whether rados-mail takes `k` as a keyword (an IMAP flag-keyword atom).
pub fn valid_keyword(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 128
        && !k.starts_with('\\')
        && k.chars().all(|c| c.is_ascii() && !c.is_ascii_control() && c != ' ' && !"(){%*\"\\]".contains(c))
}

/// What happened to one mailbox.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct MailboxReport {
    /// The mailbox.
    pub mailbox: String,
    /// Mails in the source.
    pub found: usize,
    /// Mails imported now.
    pub imported: usize,
    /// Mails skipped because the mailbox has them already (same GUID).
    pub already_present: usize,
    /// Mails that could not be imported (see the problems).
    pub failed: usize,
    /// Imported mails that did not get the UID they had (it was taken already).
    pub renumbered: usize,
    /// Bytes imported.
    pub bytes: u64,
}

/// How to import.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Threads writing bodies.
    pub jobs: usize,
    /// Mails per commit, at most.
    pub batch: usize,
    /// Bytes per commit, roughly (a larger mail is a batch of its own).
    pub batch_bytes: u64,
}

/// A failure that spoils one mail only: the rest goes on.
fn spoils_one_mail(e: &Error) -> bool {
    use rados_mail::Error as E;
    matches!(e, Error::Io { .. } | Error::Store(E::TooLarge(_) | E::InvalidInput(_) | E::Input(_)))
}

fn sha256(source: &Source) -> Result<[u8; 32]> {
    let mut h = Sha256::new();
    source.stream(&mut |b| {
        h.update(b);
        Ok(())
    })?;
    let mut out = [0u8; 32];
    out.copy_from_slice(h.finalize().as_slice());
    Ok(out)
}

/// The GUID of the `occurrence`-th (from 0) mail with content hash `hash` in a folder.
pub fn content_guid(hash: &[u8; 32], occurrence: u64) -> Guid {
    let mut h = Sha256::new();
    h.update(b"rados-mail import v1\0");
    h.update(hash);
    h.update(occurrence.to_le_bytes());
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.finalize().as_slice()[..16]);
    Guid(out)
}

/// Gives every mail without one a content GUID (read in parallel); a mail that cannot be
/// read is dropped from its folder and counted in `failed`.
fn assign_guids(folders: &mut [Folder], opts: &Options, failed: &mut [usize], problems: &mut Vec<String>) {
    let todo: Vec<(usize, usize)> = folders
        .iter()
        .enumerate()
        .flat_map(|(f, folder)| {
            folder.mails.iter().enumerate().filter(|(_, m)| m.guid.is_none()).map(move |(i, _)| (f, i))
        })
        .collect();
    let total = todo.iter().map(|&(f, i)| folders[f].mails[i].size).sum();
    let bar = progress(total, "reading");
    let hashes = parallel(opts.jobs, &todo, |&(f, i)| {
        let m = &folders[f].mails[i];
        let h = sha256(&m.source);
        bar.inc(m.size);
        h
    });
    bar.finish_and_clear();
    let mut broken: HashSet<(usize, usize)> = HashSet::new();
    let mut seen: HashMap<(usize, [u8; 32]), u64> = HashMap::new();
    for (&(f, i), hash) in todo.iter().zip(hashes) {
        match hash {
            Ok(hash) => {
                let n = seen.entry((f, hash)).or_insert(0);
                folders[f].mails[i].guid = Some(content_guid(&hash, *n));
                *n += 1;
            }
            Err(e) => {
                problems.push(format!("{}: {e}", folders[f].mails[i].name));
                broken.insert((f, i));
                failed[f] += 1;
            }
        }
    }
    for (f, folder) in folders.iter_mut().enumerate() {
        let mut i = 0;
        folder.mails.retain(|_| {
            i += 1;
            !broken.contains(&(f, i - 1))
        });
    }
}

/// Opens the folder's mailbox, creating it with the folder's UIDVALIDITY and GUID when
/// it does not exist (a GUID the user has already is not taken).
fn open_or_create(user: &User, folder: &Folder, problems: &mut Vec<String>) -> Result<Mailbox> {
    match user.open_mailbox(&folder.mailbox) {
        Ok(mb) => {
            if folder.uidvalidity.is_some_and(|v| v != mb.info().uidvalidity) && !folder.mails.is_empty() {
                problems.push(format!(
                    "{}: mailbox {} exists with another UIDVALIDITY; UIDs at or above its UIDNEXT are kept",
                    folder.origin.display(),
                    folder.mailbox
                ));
            }
            return Ok(mb);
        }
        Err(rados_mail::Error::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let options = CreateOptions { guid: folder.guid, uidvalidity: folder.uidvalidity };
    match user.create_mailbox_with(&folder.mailbox, &options) {
        Ok(_) => {}
        Err(rados_mail::Error::AlreadyExists(what)) if folder.guid.is_some() && !user_has(user, &folder.mailbox)? => {
            problems.push(format!("{}: {what}; mailbox {} gets a new GUID", folder.origin.display(), folder.mailbox));
            user.create_mailbox_with(&folder.mailbox, &CreateOptions { guid: None, ..options })?;
        }
        Err(rados_mail::Error::AlreadyExists(_)) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(user.open_mailbox(&folder.mailbox)?)
}

fn user_has(user: &User, mailbox: &str) -> Result<bool> {
    match user.mailbox_info(mailbox) {
        Ok(_) => Ok(true),
        Err(rados_mail::Error::NotFound(_)) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Imports `folders` into `user`'s mailboxes; returns one report per folder. Problems
/// that spoil single mails or details are added to `problems`; store failures stop it.
pub fn import(
    user: &User,
    mut folders: Vec<Folder>,
    opts: &Options,
    problems: &mut Vec<String>,
) -> Result<Vec<MailboxReport>> {
    let mut reports: Vec<MailboxReport> = folders
        .iter()
        .map(|f| MailboxReport { mailbox: f.mailbox.clone(), found: f.mails.len(), ..Default::default() })
        .collect();
    let mut failed = vec![0; folders.len()];
    assign_guids(&mut folders, opts, &mut failed, problems);
    // Open every mailbox and sort out what it has already, before writing anything.
    let mut plans = Vec::new();
    for (folder, report) in folders.into_iter().zip(&mut reports) {
        let mailbox = open_or_create(user, &folder, problems)?;
        let mut have: HashSet<Vec<u8>> = mailbox.records(1..=u32::MAX)?.iter().map(|r| r.guid().to_vec()).collect();
        let before = folder.mails.len();
        let todo: Vec<SourceMail> =
            folder.mails.into_iter().filter(|m| have.insert(m.guid.unwrap_or_default().0.to_vec())).collect();
        report.already_present = before - todo.len();
        plans.push((mailbox, todo, folder.uidnext));
    }
    let total = plans.iter().flat_map(|(_, todo, _)| todo).map(|m| m.size).sum();
    let bar = progress(total, "importing");
    for ((mailbox, todo, uidnext), (report, failed)) in plans.into_iter().zip(reports.iter_mut().zip(failed)) {
        report.failed = failed;
        bar.set_message(format!("importing {}", report.mailbox));
        import_mails(&mailbox, &todo, opts, &bar, report, problems)?;
        if let Some(next) = uidnext {
            mailbox.update(&rados_mail::MailboxUpdate { min_uidnext: Some(next), ..Default::default() })?;
        }
    }
    bar.finish_and_clear();
    Ok(reports)
}

/// Writes `todo` into `mailbox`: bodies by `opts.jobs` threads, one commit per batch, in
/// the order of `todo` (so wanted UIDs, which go up, are kept).
fn import_mails(
    mailbox: &Mailbox,
    todo: &[SourceMail],
    opts: &Options,
    bar: &ProgressBar,
    report: &mut MailboxReport,
    problems: &mut Vec<String>,
) -> Result<()> {
    let stop = AtomicBool::new(false);
    let mut start = 0;
    while start < todo.len() {
        let mut end = start + 1;
        let mut bytes = todo[start].size;
        while end < todo.len() && end - start < opts.batch.max(1) && bytes + todo[end].size <= opts.batch_bytes {
            bytes += todo[end].size;
            end += 1;
        }
        let batch = &todo[start..end];
        // `None`: not tried, because a failure of the store stopped the batch.
        let saved = parallel(opts.jobs, batch, |m| {
            if stop.load(Ordering::Relaxed) {
                return None;
            }
            let r = upload(mailbox, m, bar);
            if r.as_ref().is_err_and(|e| !spoils_one_mail(e)) {
                stop.store(true, Ordering::Relaxed);
            }
            Some(r)
        });
        let mut txn = Transaction::new(ModseqSteps::One);
        let mut wanted = Vec::new();
        let mut fatal = None;
        for (m, r) in batch.iter().zip(saved) {
            match r {
                Some(Ok(mail)) => {
                    let options = AppendOptions {
                        flags: m.flags,
                        keywords: m.keywords.clone(),
                        received: Some(m.received),
                        uid: m.uid.filter(|u| *u != 0 && *u != u32::MAX),
                        guid: m.guid,
                        delivery: None,
                    };
                    wanted.push((options.uid, mail.len()));
                    txn.save(mail, options)?;
                }
                Some(Err(e)) if spoils_one_mail(&e) => {
                    problems.push(format!("{}: {e}", m.name));
                    report.failed += 1;
                }
                Some(Err(e)) => fatal = fatal.or(Some(e)),
                None => {}
            }
        }
        if let Some(e) = fatal {
            // What this batch wrote is removed when `txn` is dropped.
            return Err(e);
        }
        if !txn.is_empty() {
            let done = mailbox.commit(txn)?;
            for ((want, len), got) in wanted.iter().zip(&done.saved) {
                report.imported += 1;
                report.bytes += len;
                report.renumbered += usize::from(want.is_some_and(|w| w != *got));
            }
        }
        start = end;
    }
    Ok(())
}

fn upload(mailbox: &Mailbox, m: &SourceMail, bar: &ProgressBar) -> Result<SavedMail> {
    let mut appender = mailbox.appender(Some(m.received));
    m.source.stream(&mut |piece| {
        appender.write(piece)?;
        bar.inc(piece.len() as u64);
        Ok(())
    })?;
    Ok(appender.finish()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_rados_mail_takes() {
        for ok in ["$Forwarded", "Junk", "$label1", "a.b-c_d"] {
            assert!(valid_keyword(ok), "{ok}");
        }
        for bad in ["", "\\Seen", "two words", "par(en", "quo\"te", "brack]", "ünï", &"x".repeat(129)] {
            assert!(!valid_keyword(bad), "{bad}");
        }
    }

    #[test]
    fn content_guids_differ_by_occurrence_and_content() {
        let (a, b) = ([1u8; 32], [2u8; 32]);
        assert_eq!(content_guid(&a, 0), content_guid(&a, 0));
        assert_ne!(content_guid(&a, 0), content_guid(&a, 1));
        assert_ne!(content_guid(&a, 0), content_guid(&b, 0));
    }

    #[test]
    fn identical_mails_of_a_folder_get_distinct_guids() {
        let dir = tempfile::tempdir().unwrap();
        let mut mails = Vec::new();
        for (i, body) in [&b"same\n"[..], b"same\n", b"other\n"].iter().enumerate() {
            let path = dir.path().join(format!("m{i}"));
            std::fs::write(&path, body).unwrap();
            let name = format!("m{i}");
            let mail = SourceMail {
                source: Source::File(path),
                size: body.len() as u64,
                flags: Flags::NONE,
                keywords: vec![],
                received: 0,
                uid: None,
                guid: None,
                name,
            };
            mails.push(mail);
        }
        let folder = Folder {
            mailbox: "INBOX".into(),
            origin: dir.path().into(),
            uidvalidity: None,
            uidnext: None,
            guid: None,
            mails,
        };
        let mut folders = vec![folder.clone(), folder];
        let opts = Options { jobs: 2, batch: 10, batch_bytes: 1 << 20 };
        let (mut failed, mut problems) = (vec![0, 0], Vec::new());
        assign_guids(&mut folders, &opts, &mut failed, &mut problems);
        let guids: Vec<Guid> = folders[0].mails.iter().map(|m| m.guid.unwrap()).collect();
        assert_eq!(guids.len(), 3);
        assert_ne!(guids[0], guids[1]);
        assert_ne!(guids[1], guids[2]);
        assert_eq!(guids[0], content_guid(&sha256(&folders[0].mails[0].source).unwrap(), 0));
        // The same folder read again gives the same GUIDs.
        assert_eq!(folders[1].mails.iter().map(|m| m.guid.unwrap()).collect::<Vec<_>>(), guids);
        assert_eq!((failed, problems.len()), (vec![0, 0], 0));
    }
}
