//! `import` and `export`: Maildir and mbox in, Maildir out.
//!
//! Owned by the import/export work; `main.rs` only calls [`import`] and [`export`].

use std::path::PathBuf;

use clap::Args;

/// `rados-mail import USER (--maildir DIR | --mbox FILE) [--mailbox NAME]`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The user to import into.
    pub user: String,
    /// A Maildir (its `cur/` and `new/`; sub-folders `.Name` become mailboxes).
    #[arg(long, conflicts_with = "mbox", required_unless_present = "mbox")]
    pub maildir: Option<PathBuf>,
    /// An mbox file (mboxrd or mboxo `From ` lines).
    #[arg(long)]
    pub mbox: Option<PathBuf>,
}

/// `rados-mail export USER DIR`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The user to export.
    pub user: String,
    /// The directory to write Maildirs into.
    pub dir: PathBuf,
}

/// Runs `import` (stub until the import/export work lands): returns whether there were
/// findings (exit code 1).
pub fn run_import(store: &rados_mail::MailStore, args: &ImportArgs, json: bool) -> crate::error::Result<bool> {
    let _ = (store, args, json);
    Err(crate::error::Error::Usage("import: not implemented yet".into()))
}

/// Runs `export` (stub until the import/export work lands): returns whether there were
/// findings (exit code 1).
pub fn run_export(store: &rados_mail::MailStore, args: &ExportArgs, json: bool) -> crate::error::Result<bool> {
    let _ = (store, args, json);
    Err(crate::error::Error::Usage("export: not implemented yet".into()))
}
