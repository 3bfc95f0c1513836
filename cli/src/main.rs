//! `rados-mail`: the operator command of rados-mail. See `rados-mail --help`.

#![forbid(unsafe_code)]

mod blobs;
mod connect;
mod dump;
mod error;
mod health;
mod list;
mod migrate;
mod output;
mod transfer;
mod users;
mod walk;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::error::Error;

/// Inspect, check, repair, import and export the mail that rados-mail keeps in a Ceph pool.
///
/// Every user is a RADOS namespace (`<namespace-prefix>/<user>`, or `<user>` without a
/// prefix) holding a mailbox list
/// (`mailboxes`), one head and index shards per mailbox (`mbox.<guid>...`), one object per
/// mail body (`mail.<guid>`) and a dict (`dict`); docs/FORMAT.md describes each.
///
/// Exit status: 0 = done, nothing found; 1 = findings (check found something, repair left
/// something unrepaired, a listing or dump met a corrupt value); 2 = error.
#[derive(Debug, Parser)]
#[command(name = "rados-mail", version, max_term_width = 100)]
#[command(after_help = "Examples:\n  \
    rados-mail -c /etc/ceph/ceph.conf --id mail -p mail users\n  \
    rados-mail --doveconf mailboxes alice@example.org\n  \
    rados-mail check --all --json\n  \
    rados-mail repair alice@example.org --dry-run\n  \
    rados-mail migrate --prefix mail- --dry-run")]
struct Cli {
    #[command(flatten)]
    connect: connect::ConnectArgs,
    /// Print one JSON document on stdout instead of text
    #[arg(long, global = true)]
    json: bool,
    /// At the end, print the RADOS operations the command made on stderr (listings, reads,
    /// writes)
    #[arg(long, global = true)]
    stats: bool,
    #[command(subcommand)]
    command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
enum Command {
    /// List every user of the pool (one walk of the pool; users are the namespaces under
    /// the namespace prefix that hold a mailbox list)
    Users,
    /// List a user's mailboxes: name, GUID, UIDVALIDITY, UIDNEXT, messages, HIGHESTMODSEQ,
    /// size, subscription and special use (one read per mailbox)
    Mailboxes {
        /// The user
        user: String,
    },
    /// List the mails of a mailbox: UID, GUID, flags, keywords, modseq, size, dates
    Mails(list::MailsArgs),
    /// Write one mail, as stored, to stdout
    Cat {
        /// The user
        user: String,
        /// The mailbox
        mailbox: String,
        /// The mail's UID
        uid: u32,
    },
    /// Show disk usage: per user, mailboxes, mails and bytes (from the mailbox headers) and
    /// objects; for one user also the bytes of every object (one stat per object)
    Df {
        /// Only this user
        user: Option<String>,
    },
    /// Decode one object of the format for humans (or --json): a mailbox head (header, trim,
    /// recent, WAL entries with their changes), an index shard (applied, records, modseq
    /// and expunge keys), the mailbox list, a dict, a mail body (xattrs, references)
    Dump(dump::DumpArgs),
    /// Check users for orphans, missing bodies, reference mismatches, corrupt values and
    /// WAL/shard inconsistencies (reads only). Exit 1 when anything is found
    Check(health::CheckArgs),
    /// Repair what check finds: rebuild damaged mailbox-list entries and headers, move what
    /// a mailbox can no longer serve into lost+found (the mails of corrupt records and lost
    /// changes, and a report mail naming those and the mails whose body is gone), restore
    /// missing references, remove leftovers older than the grace. Safe while the user is
    /// served. Exit 1 when something could not be repaired
    Repair(health::RepairArgs),
    /// Delete or rename a whole user (stop the user's sessions first)
    #[command(subcommand)]
    User(users::UserCommand),
    /// Import a Maildir or an mbox file into a user's mailbox (idempotent).
    Import(transfer::ImportArgs),
    /// Export a user's mailboxes as Maildirs.
    Export(transfer::ExportArgs),
    /// Run the pending steps of the format's migrations (docs/FORMAT.md, "Migrations"). Step
    /// "namespaces": every namespace `<P><user>` of a prefix P (mapping v1) moves to
    /// `<P>/<user>` (v2), crash-safe and resumable; namespaces that several given prefixes
    /// match are ambiguous and left alone (listed; exit 1). Stop the mail servers of
    /// these prefixes first. Running it again when nothing is pending does nothing
    Migrate(migrate::MigrateArgs),
}

fn run(cli: &Cli) -> error::Result<bool> {
    let store = cli.connect.open()?;
    let result = dispatch(cli, &store);
    // The notifies that commits sent to watchers (fire and forget) must end before the
    // process does: exiting while librados works on one crashes in librados' exit
    // handlers (`boost::bad_get`, segfaults; seen in about one import run of ten).
    if !librados::quiesce(librados::QUIESCE_TIMEOUT) {
        eprintln!("rados-mail: notifies still in flight at exit");
    }
    if cli.stats {
        let ops = store.stats().rados;
        eprintln!(
            "rados operations: {} listings, {} reads, {} writes, {} notifies",
            ops.lists, ops.reads, ops.writes, ops.notifies
        );
    }
    result
}

fn dispatch(cli: &Cli, store: &rados_mail::MailStore) -> error::Result<bool> {
    let (store, json) = (store, cli.json);
    match &cli.command {
        Command::Users => list::users(store, json),
        Command::Mailboxes { user } => list::mailboxes(store, user, json),
        Command::Mails(args) => list::mails(store, args, json),
        Command::Cat { user, mailbox, uid } => list::cat(store, user, mailbox, *uid),
        Command::Df { user } => list::df(store, user.as_deref(), json),
        Command::Dump(args) => dump::dump(store, args, json),
        Command::Check(args) => health::run_check(store, args, json),
        Command::Repair(args) => health::run_repair(store, args, json),
        Command::User(cmd) => users::run(store, cmd, json),
        Command::Import(args) => transfer::run_import(store, args, json),
        Command::Export(args) => transfer::run_export(store, args, json),
        Command::Migrate(args) => migrate::run(store, args, json),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(false) => ExitCode::SUCCESS,
        Ok(true) => ExitCode::from(1),
        Err(Error::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rados-mail: {e}");
            ExitCode::from(2)
        }
    }
}
