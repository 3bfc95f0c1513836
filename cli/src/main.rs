//! `rados-mail`: the operator command of rados-mail. See `rados-mail --help`.

#![forbid(unsafe_code)]

mod error;
mod transfer;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Inspect, check, repair, import and export the mail that rados-mail keeps in a Ceph pool.
#[derive(Debug, Parser)]
#[command(name = "rados-mail", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Import a Maildir or an mbox file into a user's mailbox (idempotent).
    Import(transfer::ImportArgs),
    /// Export a user's mailboxes as Maildirs.
    Export(transfer::ExportArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = PathBuf::new();
    match cli.command {
        Command::Import(_) | Command::Export(_) => ExitCode::FAILURE,
    }
}
