//! `dump OBJECT`: any object of the format, decoded (as `doveadm dump` does for Dovecot's
//! files). A value that fails its crc or does not decode is shown as CORRUPT with the
//! error and its raw bytes; the rest of the object is still shown.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use clap::Args;
use omap_index::names::{self, Guid, MAILBOX_LIST};
use omap_index::records::{Change, DeliveryMark, ListCounters, MailRecord, MailboxEntry, MailboxHeader, WalEntry};
use omap_index::{FormatError, frame, keys};
use rados_mail::MailStore;
use rados_mail::objstore::{OMAP_PAGE_MAX, ObjectStore, ReadOp};
use serde_json::{Map, Value, json};

use crate::error::{Error, Result};
use crate::output::{date, print_json, render};

/// Arguments of `dump`.
#[derive(Debug, Args)]
pub struct DumpArgs {
    /// The object: `mailboxes`, `mbox.<guid>` (a mailbox head), `mbox.<guid>.<shard>`,
    /// `mail.<guid>` (a body; `mail.<guid>.<n>` for its chunks), `dict`, or any other
    pub object: String,
    /// The user whose namespace holds the object
    #[arg(long, required_unless_present = "namespace", conflicts_with = "namespace")]
    pub user: Option<String>,
    /// The namespace, as it is (for the shared namespace, `<prefix>/.shared`, or `.shared`
    /// without a prefix)
    #[arg(long)]
    pub namespace: Option<String>,
    /// Also print the object's data (after the dump; in JSON as `data`, lossy UTF-8)
    #[arg(long)]
    pub data: bool,
}

/// Everything stored in one object.
struct Raw {
    size: u64,
    mtime: i64,
    data: Vec<u8>,
    xattrs: BTreeMap<String, Vec<u8>>,
    omap: Vec<(String, Vec<u8>)>,
}

/// `omap`: read the omap too (not on a data pool, which may be erasure-coded: no omap).
fn read_raw(ns: &dyn ObjectStore, oid: &str, with_data: bool, omap: bool) -> Result<Raw> {
    let mut op = ReadOp::new().stat().xattrs();
    if omap {
        op = op.omap_range("", "", OMAP_PAGE_MAX);
    }
    if with_data {
        op = op.read(0, rados_mail::objstore::MAX_READ);
    }
    let first = ns.read_op(oid, &op).map_err(|e| Error::Store(e.into()))?;
    let stat = first.stat.expect("stat requested");
    let page = first.omap_page.unwrap_or_default();
    let mut omap = page.entries;
    if page.more {
        let after = omap.last().map(|(k, _)| k.clone()).unwrap_or_default();
        for (k, v) in ns.omap_all(oid, "").map_err(|e| Error::Store(e.into()))? {
            if k > after {
                omap.push((k, v));
            }
        }
    }
    let mtime = stat.mtime.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    Ok(Raw {
        size: stat.size,
        mtime,
        data: first.data.unwrap_or_default(),
        xattrs: first.xattrs.unwrap_or_default(),
        omap,
    })
}

/// Bytes as text when they are printable UTF-8, else as hex.
fn text_or_hex(bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(s) if !s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') => json!(s),
        _ => json!({ "hex": hex(bytes) }),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn corrupt(e: impl std::fmt::Display, raw: &[u8]) -> Value {
    json!({ "corrupt": e.to_string(), "raw_hex": hex(raw) })
}

fn guid(bytes: &[u8]) -> Value {
    Guid::from_slice(bytes)
        .map_or_else(|e| json!({ "corrupt": e.to_string(), "raw_hex": hex(bytes) }), |g| json!(g.to_string()))
}

fn record(r: &MailRecord) -> Value {
    json!({
        "uid": r.uid,
        "mail_guid": guid(&r.mail_guid),
        "instance": format!("{:016x}", r.instance),
        "flags": r.flags,
        "flag_names": crate::list::flag_names(r.flags),
        "keywords": r.keywords,
        "modseq": r.modseq,
        "psize": r.psize,
        "vsize": r.vsize,
        "hdr_len": r.hdr_len,
        "received": date(r.received),
        "saved": date(r.saved),
        "crc32": format!("{:08x}", r.crc32),
        "chunk_size": r.chunk_size,
        "given_guid": if r.given_guid.is_empty() { Value::Null } else { guid(&r.given_guid) },
    })
}

/// A framed value decoded as `$ty` and shown with `$show`, or CORRUPT.
macro_rules! decoded {
    ($raw:expr, $ty:ty, $show:expr) => {
        match frame::decode::<$ty>($raw) {
            Ok(m) => $show(&m),
            Err(e) => corrupt(e, $raw),
        }
    };
}

fn header(h: &MailboxHeader) -> Value {
    json!({
        "guid": guid(&h.guid),
        "uidvalidity": h.uidvalidity,
        "uidnext": h.uidnext,
        "highestmodseq": h.highestmodseq,
        "messages": h.messages,
        "psize_total": h.psize_total,
        "vsize_total": h.vsize_total,
        "shard_bits": h.shard_bits,
        "incarnation": h.incarnation,
    })
}

fn change(c: &Change) -> Value {
    json!({
        "uid": c.uid,
        "prev_modseq": c.prev_modseq,
        "record": c.record.as_ref().map_or(json!("expunged"), record),
    })
}

fn hex_number(raw: &[u8], parse: fn(&[u8]) -> std::result::Result<u64, FormatError>) -> Value {
    parse(raw).map_or_else(|e| corrupt(e, raw), |n| json!(n))
}

fn hex32(raw: &[u8]) -> std::result::Result<u64, FormatError> {
    keys::parse_hex32(raw).map(u64::from)
}

/// The omap of a head: `hdr`, `trim`, `recent`, every `w/` entry, the `damaged/`
/// markers a head rebuild or a repair left for a later repair, and the `dlv/` marks of
/// recent deliveries.
fn head(omap: &[(String, Vec<u8>)]) -> Map<String, Value> {
    let mut out = Map::new();
    let mut wal = Map::new();
    let mut damaged = Map::new();
    let mut deliveries = Map::new();
    let mut other = Map::new();
    for (k, v) in omap {
        match k.as_str() {
            keys::HDR => drop(out.insert("hdr".into(), decoded!(v, MailboxHeader, header))),
            keys::TRIM => drop(out.insert("trim".into(), hex_number(v, keys::parse_hex64))),
            keys::RECENT => drop(out.insert("recent".into(), hex_number(v, hex32))),
            _ if k.starts_with(keys::WAL) => {
                let entry = decoded!(
                    v,
                    WalEntry,
                    |w: &WalEntry| json!({ "modseq": w.modseq, "changes": w.changes.iter().map(change).collect::<Vec<_>>() })
                );
                wal.insert(k.clone(), entry);
            }
            _ if k.starts_with(keys::DAMAGED) => drop(damaged.insert(k.clone(), text_or_hex(v))),
            _ if k.starts_with(keys::DELIVERY) => {
                let mark = decoded!(v, DeliveryMark, |m: &DeliveryMark| json!({ "uid": m.uid, "saved": m.saved }));
                deliveries.insert(k.clone(), mark);
            }
            _ => drop(other.insert(k.clone(), text_or_hex(v))),
        }
    }
    out.insert("wal".into(), Value::Object(wal));
    if !damaged.is_empty() {
        // Lost WAL entries (their bytes) and expunged damaged records (what was wrong):
        // `repair` still looks for the bodies they held.
        out.insert("damaged_awaiting_repair".into(), Value::Object(damaged));
    }
    if !deliveries.is_empty() {
        // Marks of recent deliveries (docs/FORMAT.md, "Delivery keys").
        out.insert("deliveries".into(), Value::Object(deliveries));
    }
    if !other.is_empty() {
        out.insert("unknown_keys".into(), Value::Object(other));
    }
    out
}

/// The omap of a shard: `applied`, `r/` records, `m/` and `x/` keys.
fn shard(omap: &[(String, Vec<u8>)]) -> Map<String, Value> {
    let mut out = Map::new();
    let (mut records, mut modseqs, mut tombstones, mut other) = (Map::new(), Vec::new(), Vec::new(), Map::new());
    for (k, v) in omap {
        if k == keys::APPLIED {
            out.insert("applied".into(), hex_number(v, keys::parse_hex64));
        } else if k.starts_with(keys::RECORD) {
            let rec = match keys::parse_record(k) {
                Ok(_) => decoded!(v, MailRecord, record),
                Err(e) => corrupt(e, v),
            };
            records.insert(k.clone(), rec);
        } else if k.starts_with(keys::MODSEQ) || k.starts_with(keys::EXPUNGED) {
            let item = keys::parse_indexed(k).map_or_else(
                |e| json!({ "key": k, "corrupt": e.to_string() }),
                |(m, u)| json!({ "key": k, "modseq": m, "uid": u }),
            );
            if k.starts_with(keys::MODSEQ) { modseqs.push(item) } else { tombstones.push(item) }
        } else {
            other.insert(k.clone(), text_or_hex(v));
        }
    }
    out.insert("records".into(), Value::Object(records));
    out.insert("modseq_index".into(), Value::Array(modseqs));
    out.insert("tombstones".into(), Value::Array(tombstones));
    if !other.is_empty() {
        out.insert("unknown_keys".into(), Value::Object(other));
    }
    out
}

/// The omap of `mailboxes`: entries, the GUID map, subscriptions, counters.
fn mailbox_list(omap: &[(String, Vec<u8>)]) -> Map<String, Value> {
    let (mut entries, mut guids, mut subs, mut other) = (Map::new(), Map::new(), Vec::new(), Map::new());
    let mut out = Map::new();
    for (k, v) in omap {
        if let Some(name) = k.strip_prefix(keys::MAILBOX) {
            let e = decoded!(v, MailboxEntry, |e: &MailboxEntry| {
                json!({ "guid": guid(&e.guid), "uidvalidity": e.uidvalidity, "special_use": e.special_use, "created": date(e.created) })
            });
            entries.insert(name.to_string(), e);
        } else if let Some(g) = k.strip_prefix(keys::MAILBOX_GUID) {
            let name =
                String::from_utf8(v.clone()).map_or_else(|_| corrupt("mailbox name is not UTF-8", v), Value::from);
            guids.insert(g.to_string(), name);
        } else if let Some(name) = k.strip_prefix(keys::SUBSCRIPTION) {
            subs.push(json!(name));
        } else if k == keys::COUNTERS {
            out.insert(
                "counters".into(),
                decoded!(v, ListCounters, |c: &ListCounters| json!({ "last_uidvalidity": c.last_uidvalidity })),
            );
        } else {
            other.insert(k.clone(), text_or_hex(v));
        }
    }
    out.insert("mailboxes".into(), Value::Object(entries));
    out.insert("guids".into(), Value::Object(guids));
    out.insert("subscriptions".into(), Value::Array(subs));
    if !other.is_empty() {
        out.insert("unknown_keys".into(), Value::Object(other));
    }
    out
}

/// A body: its xattrs (`rm.*`) and references (xattrs `rm.ref.<mailbox>.<instance>` in pool
/// format v2, omap keys `ref/<mailbox>/<instance>` in v1; `"as"` says which).
fn body(raw: &Raw) -> Map<String, Value> {
    let mut out = Map::new();
    let xattr_refs = raw.xattrs.keys().filter_map(|k| k.strip_prefix(names::xattr::REFERENCE)).map(|r| {
        match names::xattr::parse_reference(&format!("{}{r}", names::xattr::REFERENCE)) {
            Some((m, i)) => json!({ "mailbox": m.to_string(), "instance": format!("{i:016x}"), "as": "xattr" }),
            None => json!({ "key": format!("{}{r}", names::xattr::REFERENCE), "corrupt": "malformed reference xattr" }),
        }
    });
    let omap_refs =
        raw.omap.iter().filter_map(|(k, _)| k.strip_prefix(keys::REFERENCE)).map(|r| match r.split_once('/') {
            Some((m, i)) if Guid::parse(m).is_ok() && i.len() == 16 => {
                json!({ "mailbox": m, "instance": i, "as": "omap" })
            }
            _ => json!({ "key": format!("{}{r}", keys::REFERENCE), "corrupt": "malformed reference key" }),
        });
    let refs: Vec<Value> = xattr_refs.chain(omap_refs).collect();
    out.insert("references".into(), Value::Array(refs));
    let other: Map<String, Value> = raw
        .omap
        .iter()
        .filter(|(k, _)| !k.starts_with(keys::REFERENCE))
        .map(|(k, v)| (k.clone(), text_or_hex(v)))
        .collect();
    if !other.is_empty() {
        out.insert("unknown_keys".into(), Value::Object(other));
    }
    out
}

/// What kind of object a name is.
fn kind_of(oid: &str) -> &'static str {
    let mbox = oid.strip_prefix("mbox.").map(|rest| rest.split_once('.').map_or((rest, None), |(g, s)| (g, Some(s))));
    match mbox {
        Some((g, None)) if Guid::parse(g).is_ok() => return "mailbox head",
        Some((g, Some(_))) if Guid::parse(g).is_ok() => return "mailbox index shard",
        _ => {}
    }
    if let Some(rest) = oid.strip_prefix("mail.") {
        let g = rest.split('.').next().unwrap_or_default();
        if Guid::parse(g).is_ok() {
            return if rest.len() == 32 { "mail body" } else { "mail body chunk" };
        }
    }
    match oid {
        MAILBOX_LIST => "mailbox list",
        rados_mail::dict::DICT_OBJECT => "dict",
        rados_mail::RENAME_MARKER => "user rename marker",
        omap_index::format::FORMAT_OBJECT => "pool format record",
        o if o.len() == 9 && o.starts_with("dict.") && o[5..].bytes().all(|b| b.is_ascii_hexdigit()) => "dict shard",
        _ => "unknown",
    }
}

/// The decoded object as one JSON value.
fn describe(ns: &dyn ObjectStore, oid: &str, with_data: bool, omap: bool) -> Result<(Value, Vec<u8>)> {
    let raw = read_raw(ns, oid, with_data, omap)?;
    let kind = kind_of(oid);
    let mut out = Map::new();
    out.insert("object".into(), json!(oid));
    out.insert("namespace".into(), json!(ns.namespace()));
    out.insert("kind".into(), json!(kind));
    out.insert("size".into(), json!(raw.size));
    out.insert("mtime".into(), json!(date(raw.mtime)));
    let xattrs: Map<String, Value> = raw.xattrs.iter().map(|(k, v)| (k.clone(), text_or_hex(v))).collect();
    out.insert("xattrs".into(), Value::Object(xattrs));
    let decoded = match kind {
        "mailbox head" => head(&raw.omap),
        "mailbox index shard" => shard(&raw.omap),
        "mailbox list" => mailbox_list(&raw.omap),
        "mail body" | "mail body chunk" => body(&raw),
        _ => {
            let entries: Map<String, Value> = raw.omap.iter().map(|(k, v)| (k.clone(), text_or_hex(v))).collect();
            let name = if kind == "dict" { "entries" } else { "omap" };
            Map::from_iter([(name.to_string(), Value::Object(entries))])
        }
    };
    out.extend(decoded);
    if with_data {
        out.insert("data".into(), json!(String::from_utf8_lossy(&raw.data)));
    }
    Ok((Value::Object(out), raw.data))
}

/// Whether a dump shows damage (a CORRUPT value anywhere).
fn has_corrupt(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.contains_key("corrupt") || m.values().any(has_corrupt),
        Value::Array(a) => a.iter().any(has_corrupt),
        _ => false,
    }
}

/// `dump OBJECT (--user USER | --namespace NS) [--data]`; findings = a corrupt value.
pub fn dump(store: &MailStore, args: &DumpArgs, json: bool) -> Result<bool> {
    let ns = match (&args.user, &args.namespace) {
        (Some(user), _) => store.user(user)?.store().clone(),
        (None, Some(ns)) => store.pool().with_namespace(ns).map_err(|e| Error::Store(e.into()))?,
        (None, None) => return Err(Error::Usage("dump: --user or --namespace is required".into())),
    };
    // Bodies are in the data pool (the same namespace), which may have no omap.
    let separate = !Arc::ptr_eq(store.data_pool(), store.pool());
    let (ns, omap) = if args.object.starts_with("mail.") && separate {
        (store.data_pool().with_namespace(ns.namespace()).map_err(|e| Error::Store(e.into()))?, false)
    } else {
        (ns, true)
    };
    let (value, data) = describe(ns.as_ref(), &args.object, args.data, omap)?;
    let damaged = has_corrupt(&value);
    if json {
        print_json(&value)?;
        return Ok(damaged);
    }
    let mut text = String::new();
    let mut shown = value;
    if let Value::Object(m) = &mut shown {
        m.remove("data");
    }
    render(&shown, 0, &mut text);
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    if args.data {
        writeln!(out, "data:")?;
        out.write_all(&data)?;
    }
    out.flush()?;
    Ok(damaged)
}
