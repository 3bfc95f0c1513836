//! `check` and `repair`, for one user or every user of the pool (one walk of the pool).

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use clap::Args;
use rados_mail::MailStore;
use rados_mail::check::{self, CheckReport};
use rados_mail::repair::{self, RepairOptions, RepairReport};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::output::{parse_duration, print_json, progress};
use crate::walk::{UserObjects, walk_pool};

/// Arguments of `check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The user to check
    #[arg(required_unless_present_any = ["all", "blobs"], conflicts_with_all = ["all", "blobs"])]
    pub user: Option<String>,
    /// Check every user of the pool (one walk of the pool, then each user's objects)
    #[arg(long, conflicts_with = "blobs")]
    pub all: bool,
    /// Check the blob store NAME (`rados_mail::blob`) instead of users: torn blobs,
    /// orphan chunks
    #[arg(long, value_name = "NAME")]
    pub blobs: Option<String>,
    /// With --blobs: read every blob whole and check its crc32
    #[arg(long, requires = "blobs")]
    pub deep: bool,
}

/// Arguments of `repair`.
#[derive(Debug, Args)]
pub struct RepairArgs {
    /// The user to repair
    #[arg(required_unless_present_any = ["all", "blobs"], conflicts_with_all = ["all", "blobs"])]
    pub user: Option<String>,
    /// Repair every user of the pool
    #[arg(long, conflicts_with = "blobs")]
    pub all: bool,
    /// Repair the blob store NAME (`rados_mail::blob`) instead of users: remove orphan
    /// chunks older than the grace; damaged blobs are reported and kept
    #[arg(long, value_name = "NAME")]
    pub blobs: Option<String>,
    /// Only say what would be done; write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Leave leftovers younger than this alone (orphan bodies, stale references, bodies a
    /// damaged mail may have held): a save or copy may be in flight (90s, 30m, 1h, 2d)
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    pub grace: Duration,
    /// Repair only this mailbox of USER (what `doveadm force-resync` runs); orphan bodies
    /// are left to a repair of the whole user
    #[arg(long, value_name = "NAME", requires = "user")]
    pub mailbox: Option<String>,
}

/// Human lines for the findings of one check.
fn describe_check(r: &CheckReport) -> Vec<String> {
    let mut out = Vec::new();
    let mut kind = |name: &str, items: Vec<String>| {
        if !items.is_empty() {
            out.push(format!("  {name}: {}", items.len()));
            out.extend(items.into_iter().map(|i| format!("    {i}")));
        }
    };
    kind("missing bodies", r.missing_bodies.iter().map(|(m, u)| format!("mailbox {m:?} UID {u}")).collect());
    kind(
        "corrupt values",
        r.corrupt
            .iter()
            .map(|d| {
                format!("{}{}: {}", d.object, d.key.as_ref().map(|k| format!(" key {k}")).unwrap_or_default(), d.detail)
            })
            .collect(),
    );
    kind("index problems", r.index_problems.clone());
    kind("missing references", r.missing_references.iter().map(|(o, k)| format!("{o} {k}")).collect());
    kind("stale references", r.stale_references.iter().map(|(o, k)| format!("{o} {k}")).collect());
    kind("orphan bodies", r.orphan_bodies.iter().map(|(o, age)| format!("{o} (age {age} s)")).collect());
    kind("orphan chunks", r.orphan_chunks.clone());
    kind("unlisted mailbox objects", r.unlisted_mailbox_objects.clone());
    out
}

/// What `check --all` prints as JSON.
#[derive(Serialize)]
struct AllChecks<'a> {
    users: &'a BTreeMap<String, CheckReport>,
    errors: &'a BTreeMap<String, String>,
}

/// `check [USER | --all]`: findings = anything not clean.
pub fn run_check(store: &MailStore, args: &CheckArgs, json: bool) -> Result<bool> {
    if let Some(name) = &args.blobs {
        let options = rados_mail::blob::RepairOptions { dry_run: true, deep: args.deep, ..Default::default() };
        return crate::blobs::run(store, name, false, &options, json);
    }
    let mut reports = BTreeMap::new();
    let mut errors = BTreeMap::new();
    match &args.user {
        Some(name) => {
            let user = store.user(name)?;
            let report = check::check_user(&user)?;
            if report.is_clean() && report.mailboxes == 0 && user.store().list_objects()?.next().is_none() {
                return Err(Error::Store(rados_mail::Error::NotFound(format!("user {name:?} (no object)"))));
            }
            reports.insert(name.clone(), report);
        }
        None => {
            (reports, errors) = each_user(store, "check", check::check_user_objects)?;
        }
    }
    let findings = reports.values().any(|r| !r.is_clean());
    if json {
        match &args.user {
            Some(u) => print_json(&reports[u])?,
            None => print_json(&AllChecks { users: &reports, errors: &errors })?,
        }
    } else {
        let mut out = std::io::stdout().lock();
        for (name, r) in &reports {
            let what = format!("{} mailboxes, {} records, {} bodies", r.mailboxes, r.records, r.bodies);
            if r.is_clean() {
                writeln!(out, "{name}: clean ({what})")?;
            } else {
                let sort = if r.has_damage() { "DAMAGE" } else { "leftovers" };
                writeln!(out, "{name}: {sort} ({what})")?;
                for line in describe_check(r) {
                    writeln!(out, "{line}")?;
                }
            }
        }
        for (name, e) in &errors {
            writeln!(out, "{name}: ERROR {e}")?;
        }
        if args.all {
            let bad = reports.values().filter(|r| !r.is_clean()).count();
            writeln!(
                out,
                "{} users checked: {} clean, {bad} with findings, {} failed",
                reports.len() + errors.len(),
                reports.len() - bad,
                errors.len()
            )?;
        }
    }
    if !errors.is_empty() {
        return Err(Error::Partial(format!("{} users could not be checked", errors.len())));
    }
    Ok(findings)
}

/// Runs `f` on every user of the pool with the names of its objects, from one walk of the
/// pool, with a progress bar: the reports of the users it worked for, and the errors of
/// the others.
fn each_user<R>(
    store: &MailStore,
    what: &str,
    f: impl Fn(&rados_mail::User, Vec<String>) -> rados_mail::Result<R>,
) -> Result<(BTreeMap<String, R>, BTreeMap<String, String>)> {
    let (mut reports, mut errors) = (BTreeMap::new(), BTreeMap::new());
    let walk = walk_pool(store, true)?;
    let wanted = |o: &UserObjects| o.has_list || o.has_mail;
    let bar = progress(Some(walk.users.values().filter(|o| wanted(o)).count() as u64), what);
    walk.for_each(wanted, |name, objects| {
        bar.set_message(name.to_string());
        match store.user(name).and_then(|u| f(&u, objects)) {
            Ok(r) => drop(reports.insert(name.to_string(), r)),
            Err(e) => drop(errors.insert(name.to_string(), e.to_string())),
        }
        bar.inc(1);
        Ok(())
    })?;
    bar.finish_and_clear();
    Ok((reports, errors))
}

/// What `repair --all` prints as JSON.
#[derive(Serialize)]
struct AllRepairs<'a> {
    users: &'a BTreeMap<String, RepairReport>,
    errors: &'a BTreeMap<String, String>,
}

/// `repair [USER | --all] [--dry-run] [--grace D] [--mailbox NAME]`: findings = something
/// left unrepaired.
pub fn run_repair(store: &MailStore, args: &RepairArgs, json: bool) -> Result<bool> {
    let options = RepairOptions { dry_run: args.dry_run, orphan_grace: args.grace };
    if let Some(name) = &args.blobs {
        let options = rados_mail::blob::RepairOptions { dry_run: args.dry_run, orphan_grace: args.grace, deep: false };
        return crate::blobs::run(store, name, true, &options, json);
    }
    let mut reports = BTreeMap::new();
    let mut errors = BTreeMap::new();
    match &args.user {
        Some(name) => {
            let user = store.user(name)?;
            let report = match &args.mailbox {
                Some(m) => repair::repair_mailbox(&user, m, &options)?,
                None => repair::repair_user(&user, &options)?,
            };
            reports.insert(name.clone(), report);
        }
        None => {
            (reports, errors) =
                each_user(store, "repair", |u, objects| repair::repair_user_objects(u, objects, &options))?;
        }
    }
    let unrepaired = reports.values().any(|r| !r.unrepaired.is_empty());
    if json {
        match &args.user {
            Some(u) => print_json(&reports[u])?,
            None => print_json(&AllRepairs { users: &reports, errors: &errors })?,
        }
    } else {
        let mut out = std::io::stdout().lock();
        let would = if args.dry_run { "would be done (dry run)" } else { "done" };
        for (name, r) in &reports {
            if r.is_empty() {
                writeln!(out, "{name}: nothing to repair")?;
                continue;
            }
            writeln!(out, "{name}: {} actions {would}", r.actions.len())?;
            for a in &r.actions {
                writeln!(out, "  {a}")?;
            }
            for u in &r.unrepaired {
                writeln!(out, "  UNREPAIRED: {u}")?;
            }
        }
        for (name, e) in &errors {
            writeln!(out, "{name}: ERROR {e}")?;
        }
    }
    if !errors.is_empty() {
        return Err(Error::Partial(format!("{} users could not be repaired", errors.len())));
    }
    Ok(unrepaired)
}
