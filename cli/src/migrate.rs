//! `migrate`: runs the pending steps of the format's migrations. "namespaces": mapping v1
//! (`<prefix><user>`) to v2 (`<prefix>/<user>`), done by the library
//! (`MailStore::plan_namespace_migration`, `MailStore::migrate_namespace`). "layout"
//! (`--layout`): pool format v1 to v2 (`MailStore::begin_layout_migration`,
//! `migrate_user_bodies`, `finish_layout_migration`), bodies to `--data-pool`.
//! Idempotent (a step with nothing left to do is a no-op) and resumable (a rerun finishes
//! an interrupted move).

use std::io::Write;

use clap::Args;
use rados_mail::{MailStore, NamespaceMove, NamespacePlan, RenameReport};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::output::{print_json, progress};

/// Arguments of `migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// A namespace prefix used in the pool before mapping v2 (the rados_namespace_prefix
    /// of a deployment). Give every prefix of every deployment sharing the pool, '' for one
    /// without a prefix: a namespace that several of them match is ambiguous, listed and
    /// left alone. Default: this command's --namespace-prefix (or --doveconf's)
    #[arg(long = "prefix", value_name = "P")]
    pub prefixes: Vec<String>,
    /// Show what would move, change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// The "layout" step instead: pool format v1 to v2 (bodies to --data-pool, or kept in
    /// the index pool without it; references from omap keys to xattrs)
    #[arg(long)]
    pub layout: bool,
    /// With --layout: seconds to wait after switching the format record, so that every
    /// mail process reads it again (they do every 60 s) before bodies move
    #[arg(long, value_name = "SECS", default_value_t = 65)]
    pub refresh_wait: u64,
    /// The "dict" step instead: spread the shared dict over N objects (1 to 4096; 0: one
    /// object). OFFLINE: stop every Dovecot process first (docs/FORMAT.md, "Migrations")
    #[arg(long, value_name = "N")]
    pub dict_shards: Option<u32>,
}

/// Runs the "dict" step: the shared dict re-sharded to `to` objects, then recorded.
fn run_dict(store: &MailStore, to: u32, dry_run: bool, json: bool) -> Result<bool> {
    let mut out = std::io::stdout().lock();
    let from = store.layout()?.dict_shards;
    if dry_run {
        writeln!(out, "dict: the shared dict is spread over {from} objects; would spread it over {to}")?;
        return Ok(false);
    }
    let report = store.reshard_shared_dict(to)?;
    if json {
        let (moved, removed) = report.as_ref().map_or((0, 0), |r| (r.moved, r.removed.len()));
        print_json(
            &serde_json::json!({ "steps": [{ "step": "dict", "from": from, "to": to, "moved": moved, "removed": removed }] }),
        )?;
    } else {
        match report {
            None => writeln!(out, "dict: the shared dict is already spread over {to} objects")?,
            Some(r) => writeln!(
                out,
                "dict: moved {} keys from {from} to {to} objects; removed {} objects",
                r.moved,
                r.removed.len()
            )?,
        }
    }
    Ok(false)
}

/// The "layout" step's outcome, as `--json` prints it.
#[derive(Debug, Serialize)]
struct LayoutReport {
    step: &'static str,
    data_pool: String,
    users: usize,
    moved: rados_mail::LayoutMoved,
    failed: Vec<(String, String)>,
    finished: bool,
}

/// Runs the "layout" step (see the module doc): idempotent and resumable; an error when a
/// user's bodies could not all be moved (`migrating` then stays set: run it again).
fn run_layout(store: &MailStore, args: &MigrateArgs, json: bool) -> Result<bool> {
    let mut out = std::io::stdout().lock();
    let data_pool = store.config().data_pool.clone();
    if args.dry_run {
        let layout = store.layout();
        writeln!(out, "layout: pool format now {layout:?}; would move bodies to {:?}", data_pool)?;
        return Ok(false);
    }
    let (record, changed) = store.begin_layout_migration()?;
    if !json {
        writeln!(
            out,
            "layout: format version {}, data pool {:?}, migrating {}{}",
            record.version,
            record.data_pool,
            record.migrating,
            if changed { " (switched now)" } else { "" }
        )?;
    }
    if changed && args.refresh_wait > 0 {
        if !json {
            writeln!(out, "waiting {} s for every mail process to read the record again", args.refresh_wait)?;
        }
        std::thread::sleep(std::time::Duration::from_secs(args.refresh_wait));
    }
    let mut report = LayoutReport {
        step: "layout",
        data_pool,
        users: 0,
        moved: Default::default(),
        failed: Vec::new(),
        finished: false,
    };
    if record.migrating {
        let users: Vec<String> = crate::walk::walk_pool(store, false)?.users.into_keys().collect();
        report.users = users.len();
        let bar = progress(Some(users.len() as u64), "bodies");
        for user in users {
            bar.set_message(user.clone());
            match store.migrate_user_bodies(&user) {
                Ok(m) => {
                    report.moved.converted += m.converted;
                    report.moved.moved += m.moved;
                    report.moved.objects += m.objects;
                    report.moved.bytes += m.bytes;
                    report.moved.retries += m.retries;
                }
                Err(e) => {
                    bar.suspend(|| eprintln!("rados-mail: bodies of user {user:?}: {e}"));
                    report.failed.push((user, e.to_string()));
                }
            }
            bar.inc(1);
        }
        bar.finish_and_clear();
        if report.failed.is_empty() {
            report.finished = store.finish_layout_migration()?;
        }
    }
    if json {
        print_json(&serde_json::json!({ "steps": [&report] }))?;
    } else {
        let m = &report.moved;
        writeln!(
            out,
            "layout: {} users: {} bodies' references converted, {} bodies moved ({} objects, {} bytes){}",
            report.users,
            m.converted,
            m.moved,
            m.objects,
            m.bytes,
            if report.finished { "; migration finished" } else { "" }
        )?;
    }
    if !report.failed.is_empty() {
        return Err(Error::Partial(format!(
            "the bodies of {} users could not all be moved (each was printed); run migrate --layout again",
            report.failed.len()
        )));
    }
    Ok(false)
}

/// The "namespaces" step's outcome, as `--json` prints it.
#[derive(Debug, Serialize)]
struct StepReport {
    step: &'static str,
    plan: NamespacePlan,
    moved: Vec<Moved>,
    failed: Vec<Failed>,
}

#[derive(Debug, Serialize)]
struct Moved {
    from: String,
    to: String,
    report: RenameReport,
}

#[derive(Debug, Serialize)]
struct Failed {
    from: String,
    to: String,
    error: String,
}

/// Runs `migrate`: exit 1 when namespaces were left alone (ambiguous, or not storable
/// under v2), an error when a move failed (rerun to finish it).
pub fn run(store: &MailStore, args: &MigrateArgs, json: bool) -> Result<bool> {
    if args.layout {
        return run_layout(store, args, json);
    }
    if let Some(to) = args.dict_shards {
        return run_dict(store, to, args.dry_run, json);
    }
    let prefixes =
        if args.prefixes.is_empty() { vec![store.config().namespace_prefix.clone()] } else { args.prefixes.clone() };
    let plan = store.plan_namespace_migration(&prefixes)?;
    let mut report = StepReport { step: "namespaces", plan, moved: Vec::new(), failed: Vec::new() };
    let mut out = std::io::stdout().lock();
    if !json {
        let verb = if args.dry_run { "would move" } else { "moving" };
        writeln!(
            out,
            "namespaces (mapping v1 <prefix><user> to v2 <prefix>/<user>), prefixes {prefixes:?}: {verb} {}, \
             leaving {}",
            report.plan.moves.len(),
            report.plan.skipped.len()
        )?;
        for s in &report.plan.skipped {
            writeln!(out, "  left alone: {:?} (prefixes {:?}): {}", s.namespace, s.prefixes, s.reason)?;
        }
        if args.dry_run {
            for m in &report.plan.moves {
                writeln!(out, "  {:?} -> {:?}", m.from, m.to)?;
            }
        }
    }
    if !args.dry_run {
        let bar = progress(Some(report.plan.moves.len() as u64), "moving");
        let moves: Vec<NamespaceMove> = report.plan.moves.clone();
        for m in moves {
            bar.set_message(m.from.clone());
            match store.migrate_namespace(&m) {
                Ok(r) => report.moved.push(Moved { from: m.from, to: m.to, report: r }),
                Err(e) => {
                    bar.suspend(|| eprintln!("rados-mail: moving namespace {:?} to {:?}: {e}", m.from, m.to));
                    report.failed.push(Failed { from: m.from, to: m.to, error: e.to_string() });
                }
            }
            bar.inc(1);
        }
        bar.finish_and_clear();
    }
    if json {
        print_json(&serde_json::json!({ "steps": [&report] }))?;
    } else if !args.dry_run {
        let (objects, bytes) = report.moved.iter().fold((0, 0), |(o, b), m| (o + m.report.objects, b + m.report.bytes));
        let resumed = report.moved.iter().filter(|m| m.report.resumed).count();
        writeln!(
            out,
            "moved {} namespaces ({resumed} interrupted moves finished): {objects} objects, {bytes} bytes",
            report.moved.len()
        )?;
    }
    if !report.failed.is_empty() {
        return Err(Error::Partial(format!(
            "{} of {} namespaces could not be moved (each was printed); run migrate again",
            report.failed.len(),
            report.plan.moves.len()
        )));
    }
    Ok(!report.plan.skipped.is_empty())
}
