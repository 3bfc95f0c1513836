//! `import` and `export`: Maildir and mbox in, Maildir out.
//!
//! `main.rs` only calls [`run_import`] and [`run_export`]. The formats are in `maildir`
//! (with `mutf7` for folder names) and `mbox`; the work in `import` and `export`.

mod export;
mod import;
mod maildir;
mod mbox;
mod mutf7;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rados_mail::MailStore;
use serde::Serialize;

use crate::error::{Error, Result};

/// `rados-mail import USER (--maildir DIR | --mbox FILE) [--mailbox NAME] [--jobs N]`.
#[derive(Debug, Args)]
#[command(after_long_help = IMPORT_HELP)]
pub struct ImportArgs {
    /// The user to import into.
    pub user: String,
    /// A Maildir(++): its cur/ and new/ go to INBOX (or --mailbox), each sub-folder
    /// `.A.B` to mailbox A/B. Flags, Dovecot keywords, UIDs and UIDVALIDITY are kept.
    #[arg(long, value_name = "DIR", conflicts_with = "mbox", required_unless_present = "mbox")]
    pub maildir: Option<PathBuf>,
    /// An mbox file (mboxrd; mboxo reads the same): its mails go to INBOX (or --mailbox).
    #[arg(long, value_name = "FILE")]
    pub mbox: Option<PathBuf>,
    /// The mailbox for the mbox, or for the Maildir's top folder.
    #[arg(long, value_name = "NAME", default_value = "INBOX")]
    pub mailbox: String,
    /// Mails read and written at once.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: u16,
}

const IMPORT_HELP: &str = "\
Re-running an import adds nothing twice: a mail is skipped when the target mailbox has a
mail with its GUID. That GUID is the one the source gives (the G field of a
dovecot-uidlist, as `rados-mail export` writes it), else one made from the SHA-256 of the
mail's bytes and its number among identical mails of the same folder or mbox: the same
source gives the same GUIDs, and identical mails in one folder stay distinct mails. A mail
already there is left as it is (flags changed in the source since are not carried over).
An interrupted import is finished by running it again; two imports of the same source
into the same mailbox at the same time may both add a mail.

Maildir: flags from the file names' `:2,` part (D F R S T), keywords from their letters
through the folder's dovecot-keywords, INTERNALDATE = the file's mtime. With a
dovecot-uidlist, mails keep their UIDs (a UID below the mailbox's UIDNEXT is taken already
and a new one is given), mails it does not list get UIDs from its next UID on, a new
mailbox gets the list's UIDVALIDITY and GUID, and UIDNEXT becomes at least the list's.
Folder names are Dovecot's modified UTF-7.

mbox: a line `From ` at the start or after an empty line starts a mail; `>From `,
`>>From `, ... lose one `>` (mboxrd); the empty line before the next `From ` is not part
of the mail. INTERNALDATE is the date of the `From ` line. Status: R, X-Status: A F T D
and X-Keywords: give flags and keywords; the headers stay in the mail as they are.

Exit code 1 when a mail or a detail (a keyword, a UID list) could not be imported; the
summary lists why.";

/// `rados-mail export USER DIR [--mailbox NAME] [--force] [--jobs N]`.
#[derive(Debug, Args)]
#[command(after_long_help = EXPORT_HELP)]
pub struct ExportArgs {
    /// The user to export.
    pub user: String,
    /// The directory to write the Maildir++ tree into (made if missing).
    pub dir: PathBuf,
    /// Only this mailbox (at its usual place in the tree).
    #[arg(long, value_name = "NAME")]
    pub mailbox: Option<String>,
    /// Write into a directory that is not empty, bringing an earlier export there up to
    /// date.
    #[arg(long)]
    pub force: bool,
    /// Mails read and written at once.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: u16,
}

const EXPORT_HELP: &str = "\
Every mailbox becomes a Maildir++ folder: INBOX the top, A/B the folder .A.B (names in
Dovecot's modified UTF-7). Each mail is the file
  cur/<INTERNALDATE>.<UID>_<GUID>.rados-mail:2,<flags>
with its bytes exactly as stored and INTERNALDATE as mtime; flags are D F R S T, then
keyword letters a-z as the folder's dovecot-keywords lists them (26 at most). Each
folder's dovecot-uidlist keeps UIDVALIDITY, UIDNEXT, the mailbox GUID and every file's UID
and GUID, so importing the export elsewhere and exporting that gives identical files.

The directory must be empty or missing, unless --force: then files an earlier export
wrote are kept when still right, removed when their mail is gone or has other flags
now, and files of any other name are left alone. Folders of mailboxes deleted since stay.

Exit code 1 when a mail could not be exported (a missing or damaged body); the summary
lists them.";

/// Runs `f` on every item with `jobs` threads; the results in the order of `items`.
pub(crate) fn parallel<T: Sync, R: Send>(jobs: usize, items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<R>>> = items.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..jobs.clamp(1, items.len().max(1)) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let r = f(item);
                    *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
                }
            });
        }
    });
    slots.into_iter().map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()).expect("every item ran")).collect()
}

/// A progress bar over `total` bytes on stderr, with rate and ETA; hidden unless stderr
/// is a terminal.
pub(crate) fn progress(total: u64, what: &'static str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    let template = "{msg:24} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta}";
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what);
    bar
}

/// The summary of an import or export.
#[derive(Debug, Serialize)]
struct Summary<'a, R> {
    user: &'a str,
    mailboxes: Vec<R>,
    problems: Vec<String>,
}

fn print_problems(problems: &[String]) {
    if !problems.is_empty() {
        println!("problems ({}):", problems.len());
        problems.iter().for_each(|p| println!("  {p}"));
    }
}

/// `rados-mail import`: reads the Maildir or mbox, imports what the user does not have
/// yet, prints a summary. Returns true when something could not be imported.
pub fn run_import(store: &MailStore, args: &ImportArgs, json: bool) -> Result<bool> {
    import_and_report(store, args, json)
}

fn import_and_report(store: &MailStore, args: &ImportArgs, json: bool) -> Result<bool> {
    let user = store.user(&args.user)?;
    let mut problems = Vec::new();
    let folders = match (&args.maildir, &args.mbox) {
        (Some(dir), None) => maildir::scan(dir, &args.mailbox, &mut problems)?,
        (None, Some(file)) => vec![mbox::scan(file, &args.mailbox, &mut problems)?],
        _ => return Err(Error::Usage("give one of --maildir DIR and --mbox FILE".into())),
    };
    let opts = import::Options { jobs: usize::from(args.jobs), batch: 100, batch_bytes: 64 << 20 };
    let reports = import::import(&user, folders, &opts, &mut problems)?;
    let failed = reports.iter().any(|r| r.failed > 0) || !problems.is_empty();
    if json {
        crate::output::print_json(&Summary { user: &args.user, mailboxes: reports, problems })?;
        return Ok(failed);
    }
    println!(
        "{:<30} {:>7} {:>8} {:>8} {:>6} {:>10} {:>12}",
        "MAILBOX", "FOUND", "IMPORTED", "PRESENT", "FAILED", "RENUMBERED", "BYTES"
    );
    for r in &reports {
        println!(
            "{:<30} {:>7} {:>8} {:>8} {:>6} {:>10} {:>12}",
            r.mailbox, r.found, r.imported, r.already_present, r.failed, r.renumbered, r.bytes
        );
    }
    let sum = |f: fn(&import::MailboxReport) -> usize| reports.iter().map(f).sum::<usize>();
    println!(
        "{} mails imported, {} already present, {} failed",
        sum(|r| r.imported),
        sum(|r| r.already_present),
        sum(|r| r.failed)
    );
    print_problems(&problems);
    Ok(failed)
}

/// `rados-mail export`: writes the user's mailboxes (or one) as a Maildir++ tree, prints
/// a summary. Returns true when a mail could not be exported.
pub fn run_export(store: &MailStore, args: &ExportArgs, json: bool) -> Result<bool> {
    export_and_report(store, args, json)
}

fn export_and_report(store: &MailStore, args: &ExportArgs, json: bool) -> Result<bool> {
    let user = store.user(&args.user)?;
    export::check_target(&args.dir, args.force)?;
    let mailboxes = match &args.mailbox {
        Some(name) => vec![user.mailbox_info(name)?],
        None => user.list_mailboxes("*")?,
    };
    std::fs::create_dir_all(&args.dir).map_err(|source| Error::Io { path: args.dir.clone(), source })?;
    let mut problems = Vec::new();
    let reports = export::export(&user, &args.dir, &mailboxes, usize::from(args.jobs), &mut problems)?;
    let failed = reports.iter().any(|r| r.failed > 0) || !problems.is_empty();
    if json {
        crate::output::print_json(&Summary { user: &args.user, mailboxes: reports, problems })?;
        return Ok(failed);
    }
    println!(
        "{:<30} {:<24} {:>7} {:>8} {:>9} {:>8} {:>6} {:>12}",
        "MAILBOX", "FOLDER", "MAILS", "WRITTEN", "UNCHANGED", "REMOVED", "FAILED", "BYTES"
    );
    for r in &reports {
        let folder = if r.folder.is_empty() { "." } else { r.folder.as_str() };
        println!(
            "{:<30} {:<24} {:>7} {:>8} {:>9} {:>8} {:>6} {:>12}",
            r.mailbox, folder, r.mails, r.written, r.unchanged, r.removed, r.failed, r.bytes
        );
    }
    let written: usize = reports.iter().map(|r| r.written).sum();
    let failed_mails: usize = reports.iter().map(|r| r.failed).sum();
    println!("{} mailboxes, {written} mails written, {failed_mails} failed", reports.len());
    print_problems(&problems);
    Ok(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_keeps_the_order_and_runs_every_item_once() {
        let items: Vec<u32> = (0..1000).collect();
        let calls = AtomicUsize::new(0);
        let out = parallel(3, &items, |i| {
            calls.fetch_add(1, Ordering::Relaxed);
            i * 2
        });
        assert_eq!(out, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        assert_eq!(calls.load(Ordering::Relaxed), 1000);
        assert!(parallel(4, &Vec::<u32>::new(), |i| *i).is_empty());
    }
}
