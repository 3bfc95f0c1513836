//! `user delete` and `user rename`: whole users, done by the library
//! (`MailStore::delete_user`, `MailStore::rename_user`).

use std::io::{BufRead, IsTerminal, Write};

use clap::Subcommand;
use rados_mail::MailStore;

use crate::error::{Error, Result};
use crate::output::print_json;

/// The `user` commands.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Delete a user: every mailbox with its mails, the dict, the mailbox list and any
    /// other object of the user's namespace. Stop the user's sessions first (Dovecot:
    /// `doveadm kick USER`, and keep LMTP from delivering). Running it again after a
    /// failure finishes it
    Delete {
        /// The user
        user: String,
        /// Do not ask (required when stdin is not a terminal)
        #[arg(long)]
        yes: bool,
    },
    /// Rename a user: every object moves from namespace PREFIX/OLD to PREFIX/NEW, copied
    /// exactly, then removed. Stop the user's sessions first. Crash-safe: a marker object
    /// in both namespaces lets a re-run of the same command finish an interrupted rename;
    /// a NEW that already has objects is refused
    Rename {
        /// The current user name
        old: String,
        /// The new user name
        new: String,
    },
}

/// Runs a `user` command.
pub fn run(store: &MailStore, cmd: &UserCommand, json: bool) -> Result<bool> {
    match cmd {
        UserCommand::Delete { user, yes } => {
            if !yes {
                confirm(store, user)?;
            }
            let report = store.delete_user(user)?;
            if json {
                print_json(&report)?;
            } else {
                let mut out = std::io::stdout().lock();
                writeln!(
                    out,
                    "deleted user {user:?}: {} mailboxes, {} more objects",
                    report.mailboxes, report.objects
                )?;
                for d in &report.damage {
                    writeln!(out, "  damaged (removed as it was): {d}")?;
                }
            }
            Ok(false)
        }
        UserCommand::Rename { old, new } => {
            let report = store.rename_user(old, new)?;
            if json {
                print_json(&report)?;
            } else {
                let resumed = if report.resumed { " (an interrupted rename, finished)" } else { "" };
                println!(
                    "renamed user {old:?} to {new:?}{resumed}: {} objects, {} bytes moved",
                    report.objects, report.bytes
                );
            }
            Ok(false)
        }
    }
}

/// Asks the operator to type the user name, when stdin is a terminal.
fn confirm(store: &MailStore, user: &str) -> Result<()> {
    if !std::io::stdin().is_terminal() {
        return Err(Error::Usage(format!("deleting user {user:?} needs --yes when stdin is not a terminal")));
    }
    let objects = store.user(user)?.store().list_objects()?.count();
    eprint!("Delete user {user:?} and all {objects} objects of its namespace? Type the user name to confirm: ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    if line.trim_end_matches(['\r', '\n']) != user {
        return Err(Error::Usage("not confirmed; nothing deleted".into()));
    }
    Ok(())
}
