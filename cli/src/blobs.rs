//! `check --blobs NAME` and `repair --blobs NAME`: a blob store of `rados_mail::blob`.

use std::io::Write;

use rados_mail::MailStore;
use rados_mail::blob::{BlobReport, RepairOptions};

use crate::error::Result;
use crate::output::print_json;

/// Checks (or, with `repair`, repairs) the blob store `name`; `true` when something was
/// found (check) or left unrepaired (repair): damage, or orphans kept.
pub fn run(store: &MailStore, name: &str, repair: bool, options: &RepairOptions, json: bool) -> Result<bool> {
    let blobs = store.blobs(name)?;
    let report = if repair { blobs.repair(options)? } else { blobs.check(options.deep)? };
    let findings = if repair { !report.damaged.is_empty() || !report.kept.is_empty() } else { !report.is_clean() };
    if json {
        print_json(&report)?;
        return Ok(findings);
    }
    let mut out = std::io::stdout().lock();
    let what = format!("{} blobs, {} bytes", report.blobs, report.bytes);
    let sort = if !report.damaged.is_empty() {
        "DAMAGE"
    } else if findings {
        "leftovers"
    } else {
        "clean"
    };
    writeln!(out, "blobs {name}: {sort} ({what})")?;
    for line in describe(&report, repair) {
        writeln!(out, "  {line}")?;
    }
    Ok(findings)
}

/// Human lines for a report.
fn describe(r: &BlobReport, repair: bool) -> Vec<String> {
    let mut out = Vec::new();
    for d in &r.damaged {
        let key = d.key.escape_ascii();
        out.push(format!("damaged blob {key} ({}, {} references, kept): {}", d.object, d.references, d.problem));
    }
    if repair {
        out.extend(r.removed.iter().map(|o| format!("removed orphan chunk {o}")));
        out.extend(r.kept.iter().map(|o| format!("kept orphan chunk {o} (younger than the grace, or a dry run)")));
    } else {
        out.extend(r.orphans.iter().map(|o| format!("orphan chunk {o}")));
    }
    out.extend(r.unknown.iter().map(|o| format!("unknown object {o}")));
    out
}
