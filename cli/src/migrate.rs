//! `migrate`: runs the pending steps of the format's migrations. One step so far,
//! "namespaces": mapping v1 (`<prefix><user>`) to v2 (`<prefix>/<user>`), done by the
//! library (`MailStore::plan_namespace_migration`, `MailStore::migrate_namespace`).
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
