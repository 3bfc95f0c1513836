//! The listings: `users`, `mailboxes`, `mails`, `cat`, `df`.

use std::collections::BTreeMap;
use std::io::Write;

use clap::Args;
use omap_index::names::{self, Guid, MAILBOX_LIST};
use omap_index::records::{MailboxEntry, MailboxHeader};
use omap_index::{frame, keys};
use rados_mail::{MailRecord, MailStore};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::output::{date, parse_uid_set, print_json, print_table, progress};
use crate::walk::{UserObjects, walk_pool};

/// `users`: every user (a namespace holding a mailbox list) with its object count.
pub fn users(store: &MailStore, json: bool) -> Result<bool> {
    #[derive(Serialize)]
    struct Row {
        user: String,
        namespace: String,
        objects: u64,
    }
    let prefix = &store.config().namespace_prefix;
    let rows: Vec<Row> = walk_pool(store, false)?
        .users
        .into_iter()
        .filter(|(_, u)| u.has_list)
        .map(|(user, u)| Row { namespace: names::namespace_of(prefix, &user), user, objects: u.count })
        .collect();
    if json {
        return print_json(&rows).map(|()| false);
    }
    let table: Vec<Vec<String>> = rows.iter().map(|r| vec![r.user.clone(), r.objects.to_string()]).collect();
    print_table(&["USER", "OBJECTS"], &table)?;
    Ok(false)
}

/// One mailbox as `mailboxes` lists it.
#[derive(Debug, Serialize)]
pub struct MailboxRow {
    name: String,
    guid: Option<String>,
    uidvalidity: Option<u32>,
    uidnext: Option<u32>,
    messages: Option<u32>,
    highestmodseq: Option<u64>,
    psize: Option<u64>,
    vsize: Option<u64>,
    subscribed: bool,
    special_use: Vec<String>,
    /// What could not be read (a corrupt list entry or header), with its object and key.
    error: Option<String>,
}

/// The mailboxes of a user, each from its list entry and its head's header (one read per
/// mailbox); a damaged entry or header is listed with its error.
/// With `subscriptions`, one more read tells which are subscribed.
pub fn mailbox_rows(store: &MailStore, user: &str, subscriptions: bool) -> Result<Vec<MailboxRow>> {
    let u = store.user(user)?;
    let ns = u.store();
    let entries = match ns.omap_all(MAILBOX_LIST, keys::MAILBOX) {
        Ok(e) => e,
        Err(rados_mail::objstore::Error::NotFound { .. }) => {
            return Err(Error::Store(rados_mail::Error::NotFound(format!("user {user:?} (no mailbox list)"))));
        }
        Err(e) => return Err(Error::Store(e.into())),
    };
    let subscribed: Vec<String> = if subscriptions { u.subscriptions("*")? } else { Vec::new() };
    let mut rows = Vec::new();
    for (key, value) in entries {
        let name = key[keys::MAILBOX.len()..].to_string();
        let mut row = MailboxRow {
            subscribed: subscribed.contains(&name),
            name,
            guid: None,
            uidvalidity: None,
            uidnext: None,
            messages: None,
            highestmodseq: None,
            psize: None,
            vsize: None,
            special_use: Vec::new(),
            error: None,
        };
        let entry = match frame::decode::<MailboxEntry>(&value) {
            Ok(e) => e,
            Err(e) => {
                row.error = Some(format!("object {MAILBOX_LIST} key {key}: {e}"));
                rows.push(row);
                continue;
            }
        };
        row.uidvalidity = Some(entry.uidvalidity);
        row.special_use = entry.special_use;
        let Ok(guid) = Guid::from_slice(&entry.guid) else {
            row.error = Some(format!("object {MAILBOX_LIST} key {key}: GUID of {} bytes", entry.guid.len()));
            rows.push(row);
            continue;
        };
        row.guid = Some(guid.to_string());
        let head = names::mailbox_head(&guid);
        match ns.omap_get(&head, &[keys::HDR]).map(|mut m| m.remove(keys::HDR)) {
            Ok(Some(bytes)) => match frame::decode::<MailboxHeader>(&bytes) {
                Ok(h) => {
                    row.uidnext = Some(h.uidnext);
                    row.messages = Some(h.messages);
                    row.highestmodseq = Some(h.highestmodseq);
                    row.psize = Some(h.psize_total);
                    row.vsize = Some(h.vsize_total);
                }
                Err(e) => row.error = Some(format!("object {head} key hdr: {e}")),
            },
            Ok(None) => row.error = Some(format!("object {head}: no hdr key")),
            Err(e) => row.error = Some(format!("object {head}: {e}")),
        }
        rows.push(row);
    }
    Ok(rows)
}

/// `mailboxes USER`.
pub fn mailboxes(store: &MailStore, user: &str, json: bool) -> Result<bool> {
    let rows = mailbox_rows(store, user, true)?;
    let damaged = rows.iter().any(|r| r.error.is_some());
    if json {
        return print_json(&rows).map(|()| damaged);
    }
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                opt(r.guid.clone()),
                opt(r.uidvalidity.map(|v| v.to_string())),
                opt(r.uidnext.map(|v| v.to_string())),
                opt(r.messages.map(|v| v.to_string())),
                opt(r.highestmodseq.map(|v| v.to_string())),
                opt(r.psize.map(|v| v.to_string())),
                if r.subscribed { "yes" } else { "no" }.into(),
                r.special_use.join(" "),
                r.error.as_ref().map(|e| format!("CORRUPT: {e}")).unwrap_or_default(),
            ]
        })
        .collect();
    let header = [
        "NAME",
        "GUID",
        "UIDVALIDITY",
        "UIDNEXT",
        "MESSAGES",
        "HIGHESTMODSEQ",
        "SIZE",
        "SUBSCRIBED",
        "SPECIAL-USE",
        "ERROR",
    ];
    print_table(&header, &table)?;
    Ok(damaged)
}

/// Arguments of `mails`.
#[derive(Debug, Args)]
pub struct MailsArgs {
    /// The user.
    pub user: String,
    /// The mailbox (`/` separates levels; INBOX in any case).
    pub mailbox: String,
    /// Only these UIDs, as IMAP writes them: 5, 1:10, 7:* or 1,3,5:7
    #[arg(long, value_name = "RANGE")]
    pub uid: Option<String>,
}

/// One mail as `mails` lists it.
#[derive(Debug, Serialize)]
struct MailRow {
    uid: u32,
    guid: String,
    body: String,
    flags: Vec<&'static str>,
    keywords: Vec<String>,
    modseq: u64,
    psize: u64,
    vsize: u64,
    received: String,
    saved: String,
}

pub(crate) fn flag_names(bits: u32) -> Vec<&'static str> {
    use omap_index::records::flags as f;
    let all = [(f::SEEN, "\\Seen"), (f::ANSWERED, "\\Answered"), (f::FLAGGED, "\\Flagged")];
    let more = [(f::DELETED, "\\Deleted"), (f::DRAFT, "\\Draft")];
    all.iter().chain(&more).filter(|(b, _)| bits & b != 0).map(|(_, n)| *n).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn mail_row(r: &MailRecord) -> MailRow {
    let body = Guid::from_slice(&r.mail_guid).map_or_else(|e| format!("CORRUPT: {e}"), |g| names::mail(&g));
    MailRow {
        uid: r.uid,
        guid: hex(r.guid()),
        body,
        flags: flag_names(r.flags),
        keywords: r.keywords.clone(),
        modseq: r.modseq,
        psize: r.psize,
        vsize: r.vsize,
        received: date(r.received),
        saved: date(r.saved),
    }
}

/// `mails USER MAILBOX [--uid RANGE]`.
pub fn mails(store: &MailStore, args: &MailsArgs, json: bool) -> Result<bool> {
    let mailbox = store.user(&args.user)?.open_mailbox(&args.mailbox)?;
    let records = match &args.uid {
        None => mailbox.records(1..=u32::MAX)?,
        Some(set) => {
            let last = mailbox.uids()?.last().copied().unwrap_or(1);
            let mut out: BTreeMap<u32, MailRecord> = BTreeMap::new();
            for range in parse_uid_set(set, last)? {
                out.extend(mailbox.records(range)?.into_iter().map(|r| (r.uid, r)));
            }
            out.into_values().collect()
        }
    };
    let rows: Vec<MailRow> = records.iter().map(mail_row).collect();
    if json {
        return print_json(&rows).map(|()| false);
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.uid.to_string(),
                r.guid.clone(),
                r.flags.join(" "),
                r.keywords.join(" "),
                r.modseq.to_string(),
                r.psize.to_string(),
                r.received.clone(),
            ]
        })
        .collect();
    print_table(&["UID", "GUID", "FLAGS", "KEYWORDS", "MODSEQ", "SIZE", "RECEIVED"], &table)?;
    Ok(false)
}

/// `cat USER MAILBOX UID`: the mail's bytes as stored, on stdout.
pub fn cat(store: &MailStore, user: &str, mailbox: &str, uid: u32) -> Result<bool> {
    let mailbox = store.user(user)?.open_mailbox(mailbox)?;
    let mut body = mailbox.open_body(uid)?;
    let mut out = std::io::stdout().lock();
    std::io::copy(&mut body, &mut out).map_err(|e| match e.into_inner() {
        Some(inner) => match inner.downcast::<rados_mail::Error>() {
            Ok(store_error) => Error::Store(*store_error),
            Err(other) => Error::Output(std::io::Error::other(other)),
        },
        None => Error::Output(std::io::Error::other("copy failed")),
    })?;
    out.flush()?;
    Ok(false)
}

/// One user's usage, for `df`.
#[derive(Debug, Default, Serialize)]
struct Usage {
    user: String,
    mailboxes: u64,
    mails: u64,
    /// Sum of the mails' sizes as stored (from the headers).
    bytes: u64,
    /// Sum of the mails' IMAP sizes (CRLF line ends).
    vbytes: u64,
    /// Objects of the namespace.
    objects: u64,
    /// Bytes of object data in the namespace (stat of every object: only for one user).
    object_bytes: Option<u64>,
    /// Mailboxes whose entry or header could not be read.
    damaged_mailboxes: u64,
}

fn usage_of(store: &MailStore, user: &str) -> Result<Usage> {
    let mut u = Usage { user: user.to_string(), ..Usage::default() };
    for row in mailbox_rows(store, user, false)? {
        u.mailboxes += 1;
        u.damaged_mailboxes += u64::from(row.error.is_some());
        u.mails += u64::from(row.messages.unwrap_or(0));
        u.bytes += row.psize.unwrap_or(0);
        u.vbytes += row.vsize.unwrap_or(0);
    }
    Ok(u)
}

/// `df [USER]`.
pub fn df(store: &MailStore, user: Option<&str>, json: bool) -> Result<bool> {
    let mut all = Vec::new();
    match user {
        Some(name) => {
            let mut u = usage_of(store, name)?;
            let ns = store.user(name)?.store().clone();
            let mut bytes = 0;
            for oid in ns.list_objects()? {
                let oid = oid?;
                u.objects += 1;
                match ns.stat(&oid) {
                    Ok((st, _)) => bytes += st.size,
                    Err(rados_mail::objstore::Error::NotFound { .. }) => {}
                    Err(e) => return Err(Error::Store(e.into())),
                }
            }
            u.object_bytes = Some(bytes);
            all.push(u);
        }
        None => {
            let users: Vec<(String, UserObjects)> =
                walk_pool(store, false)?.users.into_iter().filter(|(_, u)| u.has_list).collect();
            let bar = progress(Some(users.len() as u64), "df");
            for (name, objects) in users {
                let mut u = usage_of(store, &name)?;
                u.objects = objects.count;
                all.push(u);
                bar.inc(1);
            }
            bar.finish_and_clear();
        }
    }
    let damaged = all.iter().any(|u| u.damaged_mailboxes > 0);
    if json {
        return print_json(&all).map(|()| damaged);
    }
    let table: Vec<Vec<String>> = all
        .iter()
        .map(|u| {
            vec![
                u.user.clone(),
                u.mailboxes.to_string(),
                u.mails.to_string(),
                u.bytes.to_string(),
                u.objects.to_string(),
                u.object_bytes.map_or("-".into(), |b| b.to_string()),
            ]
        })
        .collect();
    print_table(&["USER", "MAILBOXES", "MAILS", "BYTES", "OBJECTS", "OBJECT-BYTES"], &table)?;
    Ok(damaged)
}
